"""Remote JWK Sets (RFC 7517 §5): fetched with a timeout and a size cap, cached.

Used for clients registered with a ``jwks_uri`` and for trusted issuers. A fetch failure is
never fatal to the process: the caller treats the keys as unavailable and refuses the token.
A refresh before the cache expires (after an unknown ``kid``) happens at most once per
``min_refresh`` seconds per URI, so a stream of forged ``kid``s cannot hammer the issuer.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

MAX_JWKS_BYTES = 512 * 1024


class JwksUnavailable(Exception):
    """The JWKS could not be fetched or is malformed."""


@dataclass
class _Entry:
    jwks: dict[str, Any]
    fetched: float


def fetch_jwks(uri: str, timeout: float) -> dict[str, Any]:
    if not uri.startswith(("https://", "http://")):
        raise JwksUnavailable("jwks_uri must be http(s)")
    request = urllib.request.Request(uri, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
            body = resp.read(MAX_JWKS_BYTES + 1)
    except OSError as exc:
        raise JwksUnavailable(f"fetch failed: {type(exc).__name__}") from None
    if len(body) > MAX_JWKS_BYTES:
        raise JwksUnavailable("JWKS too large")
    try:
        data = json.loads(body)
    except ValueError:
        raise JwksUnavailable("JWKS is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise JwksUnavailable("JWKS has no keys array")
    return data


class JwksCache:
    """Fetched JWK Sets by URI. One fetch per URI at a time (others wait for its result), and
    after a failed fetch none for ``min_refresh`` seconds: the last good set is served if
    there is one, else the failure is repeated at once. A down or slow issuer can then cost
    one timeout per interval, not one per request."""

    def __init__(self, timeout: float, ttl: float, min_refresh: float = 30.0) -> None:
        self.timeout = timeout
        self.ttl = ttl
        self.min_refresh = min_refresh
        self._entries: dict[str, _Entry] = {}
        self._failed: dict[str, float] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _usable(self, entry: _Entry | None, refresh: bool) -> bool:
        if entry is None:
            return False
        age = time.monotonic() - entry.fetched
        return age < self.ttl and not (refresh and age >= self.min_refresh)

    def get(self, uri: str, refresh: bool = False) -> dict[str, Any]:
        """The JWKS at ``uri``; ``refresh`` asks for a re-fetch (rate limited)."""
        entry = self._entries.get(uri)
        if self._usable(entry, refresh):
            assert entry is not None
            return entry.jwks
        with self._guard:
            lock = self._locks.setdefault(uri, threading.Lock())
        with lock:
            latest = self._entries.get(uri)
            if latest is not entry and self._usable(latest, False):
                assert latest is not None
                return latest.jwks  # fetched by another request while this one waited
            failed = self._failed.get(uri)
            if failed is not None and time.monotonic() - failed < self.min_refresh:
                if latest is not None:
                    return latest.jwks
                raise JwksUnavailable("fetch failed recently")
            try:
                jwks = fetch_jwks(uri, self.timeout)
            except JwksUnavailable:
                self._failed[uri] = time.monotonic()
                if latest is not None:
                    return latest.jwks
                raise
            self._failed.pop(uri, None)
            self._entries[uri] = _Entry(jwks, time.monotonic())
        return jwks
