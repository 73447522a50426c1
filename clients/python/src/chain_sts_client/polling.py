"""The revocation sources of a verifier (the cursor feed, an SSF stream): a table of revoked
``jti``s kept fresh by ``poll()`` every ``poll_interval`` seconds in a daemon thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from chain_sts_client.errors import StsClientError

log = logging.getLogger("chain_sts_client")


class Poller:
    """Mixin: the class sets ``poll_interval``, ``_lock``, ``_stop`` (an Event), ``_thread``
    (None) and ``_revoked`` in its ``__init__``, and defines ``poll()`` and ``_ensure_fresh()``
    (which raises when the table is too stale to answer)."""

    #: The thread's name, and what a failed poll is called in the log.
    thread_name = "sts-poller"
    poll_interval: float
    _lock: threading.Lock
    _stop: threading.Event
    _thread: threading.Thread | None
    _revoked: Mapping[str, object]

    def poll(self) -> object:
        raise NotImplementedError

    def _ensure_fresh(self) -> None:
        raise NotImplementedError

    def is_revoked(self, jti: str) -> bool:
        self._ensure_fresh()
        with self._lock:
            return jti in self._revoked

    @property
    def revoked_count(self) -> int:
        with self._lock:
            return len(self._revoked)

    def start(self) -> None:
        """Poll every ``poll_interval`` seconds in a daemon thread (idempotent)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            try:
                self.poll()
            except StsClientError as exc:
                log.warning("%s: poll failed: %s", self.thread_name, exc)
            if self._stop.wait(self.poll_interval):
                return
