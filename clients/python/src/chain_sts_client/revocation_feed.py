"""Following the STS's revocation feed (``GET /revocations?since=``, DESIGN §7).

A resource server learns that a token was revoked by polling the feed: the revoked, still
unexpired ``jti`` values after a cursor. :class:`RevocationFeed` polls in a background thread
and answers :meth:`RevocationFeed.is_revoked` from memory. It fails closed: when the feed has
not been read successfully for ``max_staleness`` seconds it tries once more in the caller's
thread and, failing that, raises :class:`~chain_sts_client.errors.VerificationUnavailable` instead
of vouching for a token it cannot check.

The feed is read as the service itself: HTTP Basic with a client secret, or else a bearer
token the service gets for itself by ``client_credentials``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

from chain_sts_client.credentials import ClientSecret
from chain_sts_client.errors import InvalidClient, StsClientError, VerificationUnavailable
from chain_sts_client.polling import Poller
from chain_sts_client.transport import Transport, get_json

if TYPE_CHECKING:
    from chain_sts_client.exchange import ExchangeClient

log = logging.getLogger("chain_sts_client.feed")
#: Pages read in one poll at most (1000 jtis each), so one poll cannot run forever.
MAX_PAGES = 100


class RevocationFeed(Poller):
    thread_name = "sts-revocation-feed"

    def __init__(
        self,
        feed_url: str,
        authorization: Callable[[], str],
        transport: Transport,
        *,
        poll_interval: float = 5.0,
        max_staleness: float = 60.0,
        expiry_grace: float = 120.0,
        on_unauthorized: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.feed_url = feed_url
        self.authorization = authorization
        self.transport = transport
        self.poll_interval = poll_interval
        self.max_staleness = max_staleness
        #: Keep a revoked jti this long after its token expired (covers verifier leeway).
        self.expiry_grace = expiry_grace
        self.on_unauthorized = on_unauthorized
        self.clock = clock
        self.wall_clock = wall_clock
        self._revoked: dict[str, int] = {}
        self._cursor = ""
        self._last_success: float | None = None
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_client(
        cls, client: ExchangeClient, *, poll_interval: float = 5.0, max_staleness: float = 60.0
    ) -> RevocationFeed:
        """The feed of ``client``'s STS, read with ``client``'s own credential."""
        url = client.metadata.revocation_feed_endpoint
        if url is None:
            raise ValueError("the STS metadata names no revocation_feed_endpoint")
        credential = client.credential
        if isinstance(credential, ClientSecret):
            return cls(
                url,
                credential.basic_authorization,
                client.transport,
                poll_interval=poll_interval,
                max_staleness=max_staleness,
            )

        def bearer() -> str:
            return "Bearer " + client.client_credentials().access_token

        return cls(
            url,
            bearer,
            client.transport,
            poll_interval=poll_interval,
            max_staleness=max_staleness,
            on_unauthorized=client.forget_own_token,
        )

    # -- reading (is_revoked, revoked_count: Poller) ------------------------------------------
    def _ensure_fresh(self) -> None:
        last = self._last_success
        if last is not None and self.clock() - last < self.max_staleness:
            return
        try:
            self.poll()
        except StsClientError as exc:
            raise VerificationUnavailable("revocation feed unavailable") from exc

    # -- polling -----------------------------------------------------------------------------
    def poll(self) -> int:
        """Read every page after the cursor; return how many new jtis were revoked."""
        with self._poll_lock:
            started = self.clock()
            added = 0
            for _ in range(MAX_PAGES):
                page = self._page()
                entries = page.get("revoked")
                cursor = page.get("next")
                if not isinstance(entries, list) or not isinstance(cursor, str):
                    raise VerificationUnavailable("malformed revocation feed page")
                with self._lock:
                    for entry in entries:
                        jti = entry.get("jti") if isinstance(entry, dict) else None
                        exp = entry.get("exp") if isinstance(entry, dict) else None
                        if isinstance(jti, str) and isinstance(exp, int):
                            added += jti not in self._revoked
                            self._revoked[jti] = exp
                    self._cursor = cursor
                if not page.get("more"):
                    break
            self._purge()
            self._last_success = started
            return added

    def _page(self) -> dict[str, object]:
        url = f"{self.feed_url}?since={quote(self._cursor, safe='')}"
        try:
            page: dict[str, object] = get_json(
                self.transport, url, {"Authorization": self.authorization()}
            )
        except InvalidClient:
            # A bearer token of ours may have expired or been revoked: get a new one next time.
            if self.on_unauthorized is not None:
                self.on_unauthorized()
            raise
        return page

    def _purge(self) -> None:
        """Forget jtis whose tokens have expired anyway (verification refuses those)."""
        now = self.wall_clock()
        with self._lock:
            for jti in [j for j, exp in self._revoked.items() if exp < now - self.expiry_grace]:
                del self._revoked[jti]
