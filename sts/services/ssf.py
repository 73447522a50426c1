"""The SSF transmitter's work (DESIGN §11): streams a receiver manages, polls, and the push
delivery worker.

A stream belongs to the NHI that created it (its ``aud``); another NHI naming its id gets the
same answer as for an id that does not exist. Every change is checked before anything is
stored: a malformed configuration, a push endpoint that is not https (plain http only to a
loopback address when ``STS_SSF_ALLOW_HTTP_LOOPBACK`` allows it) or that does not answer at
all is refused and nothing is written.

Delivery runs as its own process, ``sts ssf deliver`` (:class:`PushWorker`): any number of
them may run beside any number of STS processes; a stream is pushed by one worker at a time
(a lease taken with ``FOR UPDATE SKIP LOCKED``), one SET after the other, the next only once
the receiver answered 2xx to the previous. A failure holds the stream back with exponential
backoff; nothing is deleted before the receiver took it, so a worker killed mid-push sends that
SET again with the same ``jti`` (RFC 8935 §2: receivers detect duplicates by ``jti``).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from sqlalchemy.engine import Connection, Engine

from sts.core import ssf
from sts.core.clock import Clock
from sts.core.keys import KeyStore
from sts.core.settings import Settings
from sts.services.errors import Invalid, NotFound, ServiceError
from sts.store import ssf as store
from sts.store.audit import record_admin_action
from sts.store.revocation import void_expired_rules

log = logging.getLogger("sts.ssf")

SCOPE = "ssf:manage"
CONFIGURATION_PATH = "/ssf/stream"
STATUS_PATH = "/ssf/status"
VERIFICATION_PATH = "/ssf/verify"
POLL_PATH = "/ssf/poll/"
METADATA_PATH = "/.well-known/ssf-configuration"
#: Most SETs one poll returns (RFC 8936 §2.4 ``maxEvents``), and the default.
MAX_POLL_EVENTS = 1000
DEFAULT_POLL_EVENTS = 100
#: How long a push worker holds a stream before another may take it, seconds.
LEASE_SECONDS = 60


class Unreachable(ServiceError):
    """The push endpoint did not answer at all."""

    code = "endpoint_unreachable"


class TooSoon(ServiceError):
    """A verification came sooner than ``min_verification_interval`` after the last."""

    code = "too_many_requests"


def transmitter_metadata(settings: Settings) -> dict[str, Any]:
    """SSF 1.0 §7.1 transmitter configuration metadata."""
    base = settings.issuer.rstrip("/")
    return {
        "spec_version": ssf.SPEC_VERSION,
        "issuer": settings.issuer,
        "jwks_uri": base + "/jwks.json",
        "delivery_methods_supported": list(ssf.DELIVERY_METHODS),
        "configuration_endpoint": base + CONFIGURATION_PATH,
        "status_endpoint": base + STATUS_PATH,
        "verification_endpoint": base + VERIFICATION_PATH,
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}],
    }


def stream_config(stream: store.StreamRow, settings: Settings) -> dict[str, Any]:
    """SSF 1.0 §8.1.1 stream configuration (the push ``authorization_header`` is never
    shown again)."""
    delivery: dict[str, Any] = {"method": stream.method}
    if stream.method == ssf.POLL:
        delivery["endpoint_url"] = settings.issuer.rstrip("/") + POLL_PATH + stream.id
    else:
        delivery["endpoint_url"] = stream.endpoint_url
    return {
        "stream_id": stream.id,
        "iss": settings.issuer,
        "aud": stream.owner,
        "events_supported": list(ssf.EVENTS_SUPPORTED),
        "events_requested": list(stream.events_requested),
        "events_delivered": ssf.events_delivered(stream.events_requested),
        "delivery": delivery,
        "min_verification_interval": ssf.MIN_VERIFICATION_INTERVAL,
        "description": stream.description,
    }


def probe(url: str, timeout: float) -> None:
    """Refuse a push endpoint nothing answers at (any HTTP answer will do)."""
    try:
        requests.head(url, timeout=timeout, allow_redirects=False)
    except requests.RequestException:
        raise Unreachable("the push endpoint cannot be reached", "delivery.endpoint_url") from None


Probe = Callable[[str, float], None]


@dataclass
class Streams:
    """Stream management for one receiver (the NHI ``owner``), on the caller's transaction."""

    conn: Connection
    owner: str
    settings: Settings
    now: int
    probe: Probe = probe

    def _parse(self, body: Any, current: Mapping[str, Any] | None = None) -> ssf.StreamRequest:
        try:
            req = ssf.parse_stream_request(
                body, allow_http_loopback=self.settings.ssf_allow_http_loopback, current=current
            )
        except ssf.ConfigError as err:
            raise Invalid(err.message, err.field) from None
        if req.endpoint_url is not None:
            self.probe(req.endpoint_url, self.settings.ssf_push_timeout)
        return req

    def get(self, stream_id: Any, *, lock: bool = False) -> store.StreamRow:
        """The receiver's own stream; a foreign or unknown id is the same 404."""
        # No stored id holds a control character (PostgreSQL text cannot even hold NUL).
        if (
            not isinstance(stream_id, str)
            or not 0 < len(stream_id) <= 64
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in stream_id)
        ):
            raise NotFound("no such stream", what="stream")
        stream = store.get_stream(self.conn, stream_id, lock=lock)
        if stream is None or stream.owner != self.owner:
            raise NotFound("no such stream", what="stream")
        return stream

    def config(self, stream: store.StreamRow) -> dict[str, Any]:
        return stream_config(stream, self.settings)

    def list(self) -> list[dict[str, Any]]:
        return [self.config(s) for s in store.streams(self.conn, self.owner)]

    def create(self, body: Any) -> dict[str, Any]:
        req = self._parse(body)
        stream = store.create_stream(self.conn, self.owner, req, self.now)
        self._audit("ssf.stream.created", stream.id, method=req.method)
        return self.config(stream)

    def update(self, body: Any, *, replace: bool) -> dict[str, Any]:
        """PUT replaces the configuration, PATCH changes the members given (SSF 1.0
        §8.1.1.3-4); ``stream_id`` names the stream in both."""
        if not isinstance(body, dict):
            raise Invalid("must be a JSON object", "(body)")
        if "stream_id" not in body:
            raise Invalid("is required", "stream_id")
        stream = self.get(body["stream_id"], lock=True)
        current = self.config(stream)
        merged = body if replace else {**current, **body}
        if not replace and isinstance(body.get("delivery"), dict):
            merged["delivery"] = body["delivery"]
        if not replace and "delivery" not in body and stream.method == ssf.PUSH:
            # The stored push configuration stands as it is (its header is never shown).
            merged["delivery"] = {
                "method": ssf.PUSH,
                "endpoint_url": stream.endpoint_url,
                **(
                    {"authorization_header": stream.authorization_header}
                    if stream.authorization_header
                    else {}
                ),
            }
        req = self._parse(merged, current)
        store.replace_stream(self.conn, stream.id, req, self.now)
        self._audit("ssf.stream.updated", stream.id, method=req.method)
        return self.config(self.get(stream.id))

    def delete(self, stream_id: Any) -> None:
        stream = self.get(stream_id, lock=True)
        store.delete_stream(self.conn, stream.id)
        self._audit("ssf.stream.deleted", stream.id)

    def status(self, stream_id: Any) -> dict[str, Any]:
        stream = self.get(stream_id)
        body = {"stream_id": stream.id, "status": stream.status}
        if stream.status_reason:
            body["reason"] = stream.status_reason
        return body

    def set_status(self, body: Any) -> dict[str, Any]:
        """SSF 1.0 §8.1.2.2: ``stream_id``, ``status`` and an optional ``reason``."""
        if not isinstance(body, dict):
            raise Invalid("must be a JSON object", "(body)")
        unknown = sorted(set(body) - {"stream_id", "status", "reason"})
        if unknown:
            raise Invalid("is not a status member", unknown[0])
        stream = self.get(body.get("stream_id"), lock=True)
        status, reason = body.get("status"), body.get("reason", "")
        if status not in ssf.STATUSES:
            raise Invalid(f"must be one of {', '.join(ssf.STATUSES)}", "status")
        if not isinstance(reason, str) or len(reason) > ssf.MAX_DESCRIPTION:
            raise Invalid(f"must be a string of at most {ssf.MAX_DESCRIPTION} characters", "reason")
        store.set_status(self.conn, stream.id, status, reason, self.now)
        self._audit("ssf.stream.status", stream.id, status=status)
        return self.status(stream.id)

    def verify(self, body: Any, keys: KeyStore) -> None:
        """SSF 1.0 §8.1.4.2: queue a verification event carrying the receiver's ``state``."""
        if not isinstance(body, dict):
            raise Invalid("must be a JSON object", "(body)")
        unknown = sorted(set(body) - {"stream_id", "state"})
        if unknown:
            raise Invalid("is not a verification member", unknown[0])
        stream = self.get(body.get("stream_id"), lock=True)
        state = body.get("state")
        if state is not None and (not isinstance(state, str) or len(state) > 1024):
            raise Invalid("must be a string of at most 1024 characters", "state")
        if stream.status == "disabled":
            raise Invalid("the stream is disabled", "stream_id")
        if self.now - stream.last_verification_at < ssf.MIN_VERIFICATION_INTERVAL:
            raise TooSoon("a verification was requested too recently", "stream_id")
        jti = secrets.token_hex(16)
        claims = ssf.verification_claims(
            self.settings.issuer, stream.owner, stream.id, jti, self.now, state
        )
        signed = ssf.sign(claims, keys.ring.signing_key(self.now))
        store.add_event(self.conn, stream.id, jti, signed, self.now)
        store.note_verification(self.conn, stream.id, self.now)

    def poll(self, stream_id: str, body: Any, sign: store.Signer) -> dict[str, Any]:
        """RFC 8936 §2.4: take the acknowledgements (``ack``; ``setErrs`` are the SETs the
        receiver could not use, which it will not get again either), then return up to
        ``maxEvents`` SETs in order and whether more wait. Answers at once whatever
        ``returnImmediately`` says (the RFC lets a transmitter do so)."""
        if not isinstance(body, dict):
            raise Invalid("must be a JSON object", "(body)")
        unknown = sorted(set(body) - {"maxEvents", "returnImmediately", "ack", "setErrs"})
        if unknown:
            raise Invalid("is not a poll member", unknown[0])
        stream = self.get(stream_id, lock=True)
        if stream.method != ssf.POLL:
            raise Invalid("the stream is not delivered by poll", "stream_id")
        limit = body.get("maxEvents", DEFAULT_POLL_EVENTS)
        if not isinstance(limit, int) or isinstance(limit, bool) or not limit >= 0:
            raise Invalid("must be a non-negative integer", "maxEvents")
        if not isinstance(body.get("returnImmediately", True), bool):
            raise Invalid("must be true or false", "returnImmediately")
        acks = body.get("ack", [])
        if not isinstance(acks, list) or not all(isinstance(a, str) for a in acks):
            raise Invalid("must be a list of SET jti values", "ack")
        errs = body.get("setErrs", {})
        if not isinstance(errs, dict) or not all(isinstance(e, dict) for e in errs.values()):
            raise Invalid("must map SET jti values to error objects", "setErrs")
        if len(acks) + len(errs) > 10 * MAX_POLL_EVENTS:
            raise Invalid("too many acknowledgements in one poll", "ack")
        store.delivered(self.conn, stream.id, [*acks, *errs], self.now)
        if errs:
            log.warning(
                "ssf receiver refused SETs",
                extra={"event": "ssf.set_errors", "stream_id": stream.id, "count": len(errs)},
            )
        if stream.status != "enabled":
            return {"sets": {}, "moreAvailable": False}
        store.expand(
            self.conn,
            stream,
            issuer=self.settings.issuer,
            sign=sign,
            now=self.now,
            max_tokens=self.settings.ssf_set_max_tokens,
        )
        sets = store.pending(self.conn, stream.id, min(limit, MAX_POLL_EVENTS))
        last = sets[-1].id if sets else 0
        more = store.has_more(self.conn, stream.id, last) if sets or limit == 0 else False
        return {"sets": {s.jti: s.set_jwt for s in sets}, "moreAvailable": more}

    def _audit(self, event: str, stream_id: str, **detail: Any) -> None:
        record_admin_action(
            self.conn, self.now, self.owner, event, {"stream_id": stream_id, **detail}
        )


def signer(keys: KeyStore, now: int) -> store.Signer:
    def sign(claims: dict[str, Any]) -> str:
        return ssf.sign(claims, keys.ring.signing_key(now))

    return sign


# -- administrators --------------------------------------------------------------------------
def grant_all_subjects(
    conn: Connection, stream_id: str, granted: bool, now: int, admin: str
) -> store.StreamRow:
    """Let a stream see events about every token (or take that back)."""
    stream = store.get_stream(conn, stream_id, lock=True)
    if stream is None:
        raise NotFound(f"no stream {stream_id!r}", what="stream")
    store.grant_all(conn, stream_id, granted, now)
    record_admin_action(
        conn, now, admin, "ssf.stream.grant", {"stream_id": stream_id, "all_subjects": granted}
    )
    found = store.get_stream(conn, stream_id)
    assert found is not None
    return found


# -- the push worker -------------------------------------------------------------------------
def backoff(settings: Settings) -> Callable[[int], int]:
    """Seconds before attempt ``n + 1``: 1, 2, 4, ... up to ``STS_SSF_RETRY_MAX_SECONDS``."""

    def wait(attempts: int) -> int:
        return int(min(2 ** min(attempts - 1, 30), settings.ssf_retry_max_seconds))

    return wait


@dataclass
class PushReport:
    streams: int = 0
    delivered: int = 0
    failed: list[str] = field(default_factory=list)


class PushWorker:
    """Pushes every enabled push stream's SETs (RFC 8935), in order, with retries."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        keys: KeyStore,
        clock: Clock,
        session: requests.Session | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.keys = keys
        self.clock = clock
        self.session = session or requests.Session()
        self.backoff = backoff(settings)

    def run_once(self) -> PushReport:
        """Note the tokens that expired rules have voided (:func:`void_expired_rules`), then
        push every stream that has something due, until each is empty or failing."""
        with self.engine.begin() as conn:
            void_expired_rules(conn, self.clock.now())
        report = PushReport()
        done: list[str] = []
        while True:
            now = self.clock.now()
            with self.engine.begin() as conn:
                stream_id = store.claim_push(conn, now, LEASE_SECONDS, done)
            if stream_id is None:
                return report
            done.append(stream_id)
            report.streams += 1
            sent, error = self._push(stream_id)
            report.delivered += sent
            if error:
                report.failed.append(stream_id)

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Until ``stop`` is set: push what is due, then wait ``interval`` seconds."""
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("ssf delivery round failed", extra={"event": "ssf.worker_error"})
            stop.wait(interval)

    def _push(self, stream_id: str) -> tuple[int, str]:
        sent = 0
        with self.engine.begin() as conn:
            stream = store.get_stream(conn, stream_id)
            if stream is None:  # deleted since the lease was taken
                return 0, ""
            now = self.clock.now()
            while store.expand(
                conn,
                stream,
                issuer=self.settings.issuer,
                sign=signer(self.keys, now),
                now=now,
                max_tokens=self.settings.ssf_set_max_tokens,
            ):
                pass
        while True:
            with self.engine.begin() as conn:
                batch = store.pending(conn, stream_id, 100)
            if not batch:
                break
            for event in batch:
                error = self._post(stream, event)
                now = self.clock.now()
                with self.engine.begin() as conn:
                    if error:
                        retry_at = store.push_failed(conn, stream_id, now, error, self.backoff)
                        log.warning(
                            "ssf push failed",
                            extra={
                                "event": "ssf.push_failed",
                                "stream_id": stream_id,
                                "error": error,
                                "retry_at": retry_at,
                            },
                        )
                        return sent, error
                    store.delivered(conn, stream_id, [event.jti], now)
                    store.renew(conn, stream_id, now + LEASE_SECONDS)
                sent += 1
        with self.engine.begin() as conn:
            store.release(conn, stream_id)
        return sent, ""

    def _post(self, stream: store.StreamRow, event: store.PendingSet) -> str:
        """Push one SET; "" when the receiver took it (2xx, or a 400 refusing it for good,
        RFC 8935 §2.3, which sending again cannot change), else why not."""
        headers = {"Content-Type": ssf.SET_MEDIA_TYPE, "Accept": "application/json"}
        if stream.authorization_header:
            headers["Authorization"] = stream.authorization_header
        assert stream.endpoint_url is not None
        try:
            answer = self.session.post(
                stream.endpoint_url,
                data=event.set_jwt.encode(),
                headers=headers,
                timeout=self.settings.ssf_push_timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return f"unreachable: {type(exc).__name__}"
        if 200 <= answer.status_code < 300:
            return ""
        if answer.status_code == 400:
            log.warning(
                "ssf receiver refused a SET",
                extra={"event": "ssf.set_refused", "stream_id": stream.id, "jti": event.jti},
            )
            return ""
        return f"HTTP {answer.status_code}"


# -- what operators look at ------------------------------------------------------------------
def overview(conn: Connection, now: int, stream_id: str | None = None) -> list[dict[str, Any]]:
    """Every stream (or one) with its backlog: revocations not yet made SETs (``outbox``),
    SETs not yet taken (``pending``), and ``lag``, the age of the oldest, seconds."""
    found = store.stats(conn, stream_id)
    if stream_id is not None and not found:
        raise NotFound(f"no stream {stream_id!r}", what="stream")
    return [
        {
            "stream_id": s.stream.id,
            "owner": s.stream.owner,
            "method": s.stream.method,
            "endpoint_url": s.stream.endpoint_url,
            "status": s.stream.status,
            "all_subjects": s.stream.all_subjects,
            "outbox": s.outbox,
            "pending": s.pending,
            "lag": 0 if s.oldest is None else max(0, now - s.oldest),
            "delivered": s.stream.delivered,
            "last_delivery_at": s.stream.last_delivery_at,
            "attempts": s.stream.attempts,
            "next_attempt_at": s.stream.next_attempt_at or None,
            "last_error": s.stream.last_error,
        }
        for s in found
    ]


def pending_events(conn: Connection, stream_id: str, limit: int) -> list[dict[str, Any]]:
    """The SETs waiting for a stream, oldest first (their ``jti`` and time, never the SET)."""
    if store.get_stream(conn, stream_id) is None:
        raise NotFound(f"no stream {stream_id!r}", what="stream")
    return [
        {"jti": p.jti, "created_at": p.created_at} for p in store.pending(conn, stream_id, limit)
    ]
