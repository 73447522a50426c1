"""Access reports without slowing the request: what a service did under a token, sent to the
STS's ``access_report_endpoint`` in the background.

:meth:`AccessReporter.report` only puts the report on a bounded in-memory queue and returns.
One sender thread takes up to :data:`MAX_BATCH` reports at a time and posts them as one batch,
authenticated with the service's own credential. While the STS cannot be reached (or answers
5xx, 429, or refuses the credential) nothing is dropped: the batch stays at the head of the
queue and is sent again after an exponential backoff. Only when the queue is full is a new
report dropped, and counted (:attr:`AccessReporter.dropped`). A report the STS refuses for
itself (its token unknown or past its grace period, a malformed field) is counted in
:attr:`AccessReporter.rejected`: a batch is refused whole, so it is then sent one report at a
time to keep the good ones. The queue is flushed when the process exits.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from chain_sts_client.errors import StsClientError
from chain_sts_client.transport import HttpResponse, Transport

if TYPE_CHECKING:
    from chain_sts_client.exchange import ExchangeClient

__all__ = ["AccessReporter"]

log = logging.getLogger("chain_sts_client.reports")
#: Reports in one batch, at most (the STS's own limit).
MAX_BATCH = 100
#: Bytes of one batch's JSON, at most (below the STS's default request size limit).
MAX_BATCH_BYTES = 48_000
DEFAULT_QUEUE = 10_000
ENDPOINT_PATH = "/access-reports"
JSON = "application/json"
#: Answers after which the same reports are sent again later.
RETRY_STATUSES = frozenset({401, 408, 429, 500, 502, 503, 504})


class AccessReporter:
    """The background sender of one service's access reports (DESIGN §10)."""

    def __init__(
        self,
        client: ExchangeClient,
        *,
        max_queue: int = DEFAULT_QUEUE,
        first_delay: float = 0.5,
        max_delay: float = 30.0,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.time,
        flush_at_exit: float = 5.0,
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.client = client
        self.max_queue = max_queue
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.transport = transport or client.transport
        self.clock = clock
        self._queue: deque[dict[str, Any]] = deque()
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._closed = False
        self._sending = 0
        self._thread: threading.Thread | None = None
        #: Reports refused because the queue was full (never sent).
        self.dropped = 0
        #: Reports the STS stored.
        self.delivered = 0
        #: Reports the STS refused for themselves (they will never be stored).
        self.rejected = 0
        #: Failed attempts to send (each one retried after a backoff).
        self.failures = 0
        if flush_at_exit > 0:
            atexit.register(self.close, flush_at_exit)

    # -- the request side: never blocks on the network ---------------------------------------
    def report(
        self,
        *,
        jti: str,
        resource: str,
        action: str,
        data_classes: Iterable[str] = (),
        records: int | None = None,
        bytes: int | None = None,
        destination: str | None = None,
        outcome: str | None = None,
        at: int | None = None,
    ) -> bool:
        """Queue one report about the token ``jti``; ``False`` if the queue was full and it
        was dropped (counted in :attr:`dropped`)."""
        entry: dict[str, Any] = {
            "jti": jti,
            "resource": resource,
            "action": action,
            "at": int(self.clock()) if at is None else at,
        }
        classes = list(data_classes)
        if classes:
            entry["data_classes"] = classes
        optional = {"records": records, "bytes": bytes, "destination": destination}
        entry.update({k: v for k, v in optional.items() if v is not None})
        if outcome is not None:
            entry["outcome"] = outcome
        with self._cond:
            if len(self._queue) >= self.max_queue:
                self.dropped += 1
                return False
            self._queue.append(entry)
            self._start()
            self._cond.notify_all()
        return True

    @property
    def pending(self) -> int:
        """Reports queued or being sent."""
        with self._cond:
            return len(self._queue)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued report is delivered or refused; ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        self._wake.set()  # a sender asleep in its backoff tries again now
        with self._cond:
            while self._queue:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
                self._wake.set()
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Flush what is queued (for at most ``timeout`` seconds), then stop the sender."""
        if self._thread is not None and not self._closed:
            self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        if self._queue:
            log.warning(
                "access reports not delivered at close",
                extra={"event": "reports.undelivered", "count": len(self._queue)},
            )

    # -- the sender thread ---------------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(
                target=self._run, name="chain-sts-access-reports", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        delay = self.first_delay
        one_at_a_time = 0  # after a refused batch: send this many reports singly
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                batch = self._take(1 if one_at_a_time else MAX_BATCH)
            outcome = self._send(batch)
            with self._cond:
                if outcome == "stored":
                    self._pop(len(batch))
                    self.delivered += len(batch)
                    one_at_a_time = max(one_at_a_time - 1, 0)
                    delay = self.first_delay
                elif outcome == "refused" and len(batch) > 1:
                    one_at_a_time = len(batch)  # find the report at fault, keep the others
                elif outcome == "refused":
                    self._pop(1)
                    self.rejected += 1
                    one_at_a_time = max(one_at_a_time - 1, 0)
                self._cond.notify_all()
                if outcome != "retry":
                    continue
                if self._closed:
                    return
            self.failures += 1
            self._wake.clear()
            self._wake.wait(delay)
            delay = min(delay * 2, self.max_delay)

    def _take(self, limit: int) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        size = 0
        for entry in self._queue:
            size += len(json.dumps(entry)) + 1
            if len(batch) >= limit or (batch and size > MAX_BATCH_BYTES):
                break
            batch.append(entry)
        return batch

    def _pop(self, count: int) -> None:
        for _ in range(count):
            self._queue.popleft()

    def _endpoint(self) -> str:
        endpoint = self.client.metadata.access_report_endpoint
        return endpoint or self.client.issuer.rstrip("/") + ENDPOINT_PATH

    def _send(self, batch: list[dict[str, Any]]) -> str:
        """``stored``, ``refused`` (the STS will never take these reports) or ``retry``."""
        try:
            endpoint = self._endpoint()
            headers = {"Content-Type": JSON, "Accept": JSON}
            members: dict[str, str] = {}
            # private_key_jwt: the assertion is addressed to the issuer (RFC 7523 §3).
            self.client.credential.apply(headers, members, self.client.issuer)
            body = {**members, "reports": batch}
            answer = self.transport(
                "POST", endpoint, headers=headers, body=json.dumps(body).encode()
            )
        except StsClientError as exc:
            log.info(
                "access reports not sent", extra={"event": "reports.retry", "reason": str(exc)}
            )
            return "retry"
        return self._judge(answer, len(batch))

    @staticmethod
    def _judge(answer: HttpResponse, count: int) -> str:
        if answer.status in (200, 201, 202):
            return "stored"
        code = None
        with contextlib.suppress(ValueError, AttributeError):
            code = json.loads(answer.body).get("code")
        if answer.status in RETRY_STATUSES or answer.status >= 500 or code is None:
            log.warning(
                "access reports refused for now",
                extra={"event": "reports.retry", "status": answer.status},
            )
            return "retry"
        log.warning(
            "access report refused",
            extra={"event": "reports.refused", "status": answer.status, "code": code, "n": count},
        )
        return "refused"
