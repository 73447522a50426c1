"""Remote JWK Sets (RFC 7517 §5): fetched with a timeout and a size cap, cached.

Used for clients registered with a ``jwks_uri`` and for trusted issuers. A fetch failure is
never fatal to the process: the caller treats the keys as unavailable and refuses the token.
A refresh before the cache expires (after an unknown ``kid``) happens at most once per
``min_refresh`` seconds per URI, so a stream of forged ``kid``s cannot hammer the issuer.

The cache is the service SDK's (:class:`chain_sts_client.jwks.JwksDocuments`), so the STS and
the services that verify its tokens fetch and keep keys by the same rules.
"""

from __future__ import annotations

from chain_sts_client.jwks import MAX_JWKS_BYTES, JwksDocuments, JwksUnavailable
from chain_sts_client.transport import UrllibTransport

__all__ = ["MAX_JWKS_BYTES", "JwksCache", "JwksUnavailable"]


class JwksCache(JwksDocuments):
    """Fetched JWK Sets by URI, each fetch bounded by ``timeout`` seconds, kept ``ttl``
    seconds. One fetch per URI at a time (others wait for its result), and after a failed
    fetch none for ``min_refresh`` seconds: the last good set is served if there is one, else
    the failure is repeated at once. A down or slow issuer can then cost one timeout per
    interval, not one per request. A JWKS carries no credential, so redirects are followed."""

    def __init__(self, timeout: float, ttl: float, min_refresh: float = 30.0) -> None:
        self._http = UrllibTransport(timeout, follow_redirects=True)
        super().__init__(self._http, ttl=ttl, min_refresh=min_refresh)

    @property
    def timeout(self) -> float:
        return self._http.timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        self._http.timeout = value
