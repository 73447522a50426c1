"""The STS's signing keys, as a resource server sees them (RFC 7517).

:class:`JwksCache` fetches the JWKS from ``jwks_uri``, keeps it for ``max_age`` seconds, and
refetches early when a token names a ``kid`` it does not know (the STS rotated its key), at
most once per ``min_refresh_interval`` so that tokens with made-up ``kid`` values cannot make
a service hammer the STS. :class:`StaticJwks` is a fixed key set, for an identity provider
whose keys are configured rather than fetched.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from jwt import PyJWK
from jwt.exceptions import PyJWTError

from chain_sts_client.errors import InvalidToken, StsUnavailable, VerificationUnavailable
from chain_sts_client.transport import Transport, UrllibTransport, get_json

log = logging.getLogger("chain_sts_client.jwks")


PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
PublicJwk = dict[str, Any]


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
        self.transport: Transport = transport or UrllibTransport()
        self.max_age = max_age
        self.min_refresh_interval = min_refresh_interval
        self.clock = clock
        self._keys: dict[str, PublicJwk] | None = None
        self._fetched_at = 0.0
        self._lock = threading.Lock()
        #: How many times the JWKS was fetched (for metrics and tests).
        self.fetches = 0

    def key(self, kid: str, alg: str) -> PyJWK:
        with self._lock:
            now = self.clock()
            if self._keys is None or now - self._fetched_at >= self.max_age:
                self._refresh(now)
            elif kid not in self._keys and now - self._fetched_at >= self.min_refresh_interval:
                # An unknown kid: the STS may have rotated its key since we last looked.
                self._refresh(now)
            assert self._keys is not None
            found = self._keys.get(kid)
        if found is None:
            raise InvalidToken("unknown key id")
        return verification_key(found, alg)

    def _refresh(self, now: float) -> None:
        try:
            document = get_json(self.transport, self.jwks_uri)
            keys = parse_jwks(document)
        except StsUnavailable as exc:
            if self._keys is None:
                raise VerificationUnavailable("signing keys unavailable") from exc
            # Keep verifying with the keys we have; try again after min_refresh_interval.
            log.warning("JWKS refresh failed: %s", exc)
            self._fetched_at = now - self.max_age + self.min_refresh_interval
            return
        self.fetches += 1
        self._keys = keys
        self._fetched_at = now
