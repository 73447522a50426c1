"""JSON Web Key Sets (RFC 7517 §5): fetched by URI and cached, and the keys a verifier uses.

:class:`JwksDocuments` is the one cache of JWK Set documents by URI, for services and the STS
alike (the STS fetches the JWKS of clients registered with a ``jwks_uri`` and of trusted
issuers). A document is kept ``ttl`` seconds. A caller that met an unknown ``kid`` may ask for
a refresh, granted at most once per ``min_refresh`` seconds per URI, so that tokens with
made-up ``kid`` values cannot make anyone hammer the key's publisher. One fetch per URI runs
at a time (others wait for its result), and after a failed fetch none for ``min_refresh``
seconds: the last good document is served if there is one, else the failure is repeated at
once. A down or slow publisher then costs one timeout per interval, not one per request.

:class:`JwksCache` is a service's view of the STS's signing keys, ``kid`` to key, over such a
cache. :class:`StaticJwks` is a fixed key set, for an identity provider whose keys are
configured rather than fetched.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from jwt import PyJWK
from jwt.exceptions import PyJWTError

from chain_sts_client.errors import InvalidToken, StsUnavailable, VerificationUnavailable
from chain_sts_client.transport import Transport, UrllibTransport, check_url

log = logging.getLogger("chain_sts_client.jwks")

MAX_JWKS_BYTES = 512 * 1024
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
PublicJwk = dict[str, Any]


class JwksUnavailable(StsUnavailable):
    """A JWK Set could not be fetched or is malformed."""


def fetch_jwks(uri: str, transport: Transport) -> dict[str, Any]:
    """The JWK Set at ``uri``: an http(s) URL answering 2xx with a JSON object of at most
    :data:`MAX_JWKS_BYTES` that has a ``keys`` array; else :class:`JwksUnavailable`."""
    try:
        check_url(uri)
    except ValueError:
        raise JwksUnavailable("jwks_uri must be http(s)") from None
    try:
        response = transport("GET", uri, headers={"Accept": "application/json"}, body=None)
    except StsUnavailable as exc:
        raise JwksUnavailable(str(exc)) from None
    if not 200 <= response.status < 300:
        raise JwksUnavailable(f"fetch failed: HTTP {response.status}")
    if len(response.body) > MAX_JWKS_BYTES:
        raise JwksUnavailable("JWKS too large")
    try:
        data = json.loads(response.body)
    except (ValueError, RecursionError):
        raise JwksUnavailable("JWKS is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise JwksUnavailable("JWKS has no keys array")
    return data


@dataclass
class _Entry:
    document: dict[str, Any]
    fetched: float


class JwksDocuments:
    """Fetched JWK Sets by URI (see the module documentation for the rules). ``log``, when
    given, records each failed fetch."""

    def __init__(
        self,
        transport: Transport | None = None,
        *,
        ttl: float = 300.0,
        min_refresh: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        log: logging.Logger | None = None,
    ) -> None:
        self.transport: Transport = transport or UrllibTransport()
        self.ttl = ttl
        self.min_refresh = min_refresh
        self.clock = clock
        self.log = log
        #: How many times a JWKS was fetched (for metrics and tests).
        self.fetches = 0
        self._entries: dict[str, _Entry] = {}
        self._failed: dict[str, float] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _usable(self, entry: _Entry | None, refresh: bool) -> bool:
        if entry is None:
            return False
        age = self.clock() - entry.fetched
        return age < self.ttl and not (refresh and age >= self.min_refresh)

    def get(self, uri: str, refresh: bool = False) -> dict[str, Any]:
        """The JWKS at ``uri``; ``refresh`` asks for a re-fetch (rate limited)."""
        entry = self._entries.get(uri)
        if self._usable(entry, refresh):
            assert entry is not None
            return entry.document
        with self._guard:
            lock = self._locks.setdefault(uri, threading.Lock())
        with lock:
            latest = self._entries.get(uri)
            if latest is not entry and self._usable(latest, False):
                assert latest is not None
                return latest.document  # fetched by another caller while this one waited
            failed = self._failed.get(uri)
            if failed is not None and self.clock() - failed < self.min_refresh:
                if latest is not None:
                    return latest.document
                raise JwksUnavailable("fetch failed recently")
            try:
                document = fetch_jwks(uri, self.transport)
            except JwksUnavailable as exc:
                self._failed[uri] = self.clock()
                if self.log is not None:
                    self.log.warning("JWKS fetch failed: %s", exc)
                if latest is not None:
                    return latest.document
                raise
            self._failed.pop(uri, None)
            self._entries[uri] = _Entry(document, self.clock())
            self.fetches += 1
        return document


class KeySource(Protocol):
    def key(self, kid: str, alg: str) -> PyJWK:
        """The key named ``kid``, for verifying with ``alg``; :class:`InvalidToken` if there
        is none or it does not fit ``alg``."""
        ...


def parse_jwks(document: Any) -> dict[str, PublicJwk]:
    """Public signature keys by ``kid``. Keys without a ``kid``, for encryption, or symmetric
    (``oct``: never trusted, RFC 8725 §3.1) are left out, and so are private members."""
    keys = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(keys, list):
        raise StsUnavailable("JWKS has no keys array")
    parsed: dict[str, PublicJwk] = {}
    for jwk in keys:
        if not isinstance(jwk, Mapping) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("use", "sig") != "sig" or jwk.get("kty") not in ("EC", "RSA", "OKP"):
            continue
        parsed[jwk["kid"]] = {k: v for k, v in jwk.items() if k not in PRIVATE_MEMBERS}
    return parsed


def verification_key(jwk: PublicJwk, alg: str) -> PyJWK:
    """The key as PyJWT uses it, for ``alg`` only: a key that names another algorithm, or
    whose type cannot do ``alg``, is refused."""
    if jwk.get("alg", alg) != alg:
        raise InvalidToken("key does not match the token's algorithm")
    try:
        return PyJWK(jwk, algorithm=alg)
    except PyJWTError:
        raise InvalidToken("key does not match the token's algorithm") from None


class StaticJwks:
    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._keys = parse_jwks(jwks)

    def key(self, kid: str, alg: str) -> PyJWK:
        found = self._keys.get(kid)
        if found is None:
            raise InvalidToken("unknown key id")
        return verification_key(found, alg)


class JwksCache:
    """The signing keys at ``jwks_uri`` (the STS's), kept ``max_age`` seconds and fetched
    again early when a token names a ``kid`` they lack (the STS rotated its key), at most
    once per ``min_refresh_interval``. Keys that cannot be had at all are
    :class:`VerificationUnavailable`: no token is vouched for without them."""

    def __init__(
        self,
        jwks_uri: str,
        transport: Transport | None = None,
        *,
        max_age: float = 300.0,
        min_refresh_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jwks_uri = jwks_uri
        self.documents = JwksDocuments(
            transport, ttl=max_age, min_refresh=min_refresh_interval, clock=clock, log=log
        )
        self._lock = threading.Lock()
        self._document: dict[str, Any] | None = None
        self._keys: dict[str, PublicJwk] = {}

    @property
    def transport(self) -> Transport:
        return self.documents.transport

    @property
    def max_age(self) -> float:
        return self.documents.ttl

    @property
    def min_refresh_interval(self) -> float:
        return self.documents.min_refresh

    @property
    def fetches(self) -> int:
        """How many times the JWKS was fetched (for metrics and tests)."""
        return self.documents.fetches

    def key(self, kid: str, alg: str) -> PyJWK:
        try:
            keys = self._parsed(self.documents.get(self.jwks_uri))
            if kid not in keys:  # the STS may have rotated its key since we last looked
                keys = self._parsed(self.documents.get(self.jwks_uri, refresh=True))
        except JwksUnavailable as exc:
            raise VerificationUnavailable("signing keys unavailable") from exc
        found = keys.get(kid)
        if found is None:
            raise InvalidToken("unknown key id")
        return verification_key(found, alg)

    def _parsed(self, document: dict[str, Any]) -> dict[str, PublicJwk]:
        """The keys of ``document``, parsed once per fetched document."""
        with self._lock:
            if document is not self._document:
                self._keys = parse_jwks(document)
                self._document = document
            return self._keys
