"""A background poller: ``poll()`` every ``poll_interval`` seconds in a daemon thread, for the
revocation sources of a verifier (the cursor feed, an SSF stream)."""

from __future__ import annotations

import logging
import threading

from chain_sts_client.errors import StsClientError

log = logging.getLogger("chain_sts_client")


class Poller:
    """Mixin: the class sets ``poll_interval``, ``_lock``, ``_stop`` (an Event) and
    ``_thread`` (None) in its ``__init__`` and defines ``poll()``."""

    #: The thread's name, and what a failed poll is called in the log.
    thread_name = "sts-poller"
    poll_interval: float
    _lock: threading.Lock
    _stop: threading.Event
    _thread: threading.Thread | None

    def poll(self) -> object:
        raise NotImplementedError

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
