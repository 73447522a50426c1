"""The exchange client: trade the token a service received for one addressed to the next hop.

One :class:`ExchangeClient` per service identity. It discovers the STS from its issuer URL
(RFC 8414), authenticates as the service, and performs RFC 8693 token exchanges. Tokens are
cached per (subject token, actor token, audience, resource, scope) until shortly before they
expire, so a hop that calls the same downstream service many times within one request, or
across requests carrying the same incoming token, asks the STS once.

Every request to the token endpoint carries a DPoP proof (RFC 9449) of the process's key by
default, so each token the service obtains is bound to it (``token_type: DPoP``); pass
``dpop=False`` for bearer tokens, or a :class:`~chain_sts_client.dpop.DpopKey` of your own.
A ``use_dpop_nonce`` answer is retried once with the STS's nonce.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from chain_sts_client import tracecontext
from chain_sts_client.credentials import ClientCredential
from chain_sts_client.discovery import ServerMetadata, discover
from chain_sts_client.dpop import DpopKey, process_key
from chain_sts_client.errors import StsUnavailable, UseDpopNonce
from chain_sts_client.scopes import scope_set, scope_str
from chain_sts_client.token_types import ACCESS_TOKEN_TYPE, CLIENT_CREDENTIALS, TOKEN_EXCHANGE
from chain_sts_client.token_types import JWT_TOKEN_TYPE as JWT_TOKEN_TYPE  # named here before
from chain_sts_client.transport import Transport, UrllibTransport, post_form

#: Refresh a cached token this many seconds before it expires (at most half its lifetime).
REFRESH_MARGIN = 30.0
CACHE_SIZE = 1024


@dataclass(frozen=True)
class IssuedToken:
    """A token the STS issued (RFC 8693 §2.2.1). ``repr`` never shows the token itself."""

    access_token: str = field(repr=False)
    issued_at: float
    expires_at: float
    scope: str | None = None
    token_type: str = "Bearer"  # noqa: S105
    issued_token_type: str | None = None

    @property
    def scopes(self) -> frozenset[str]:
        return scope_set(self.scope)

    @property
    def bound(self) -> bool:
        """Bound to a DPoP key (RFC 9449): sent as ``Authorization: DPoP`` with a proof."""
        return self.token_type.lower() == "dpop"


def _digest(value: str | None) -> str | None:
    """Cache keys hold a hash of a token, not the token."""
    return None if value is None else hashlib.sha256(value.encode()).hexdigest()


def _scope_key(scope: str | None) -> str | None:
    return None if scope is None else scope_str(scope_set(scope))


CacheKey = tuple[str | None, ...]


class ExchangeClient:
    """Token exchange and client credentials for one client identity.

    ``credential`` is a :class:`ClientSecret` or a :class:`PrivateKeyJwt`. Pass ``metadata``
    to skip discovery; otherwise it is fetched on first use (so a service may start before
    the STS does) and kept.
    """

    def __init__(
        self,
        issuer: str,
        credential: ClientCredential,
        *,
        metadata: ServerMetadata | None = None,
        transport: Transport | None = None,
        refresh_margin: float = REFRESH_MARGIN,
        cache_size: int = CACHE_SIZE,
        clock: Callable[[], float] = time.time,
        dpop: DpopKey | bool = True,
    ) -> None:
        self.issuer = issuer
        #: The key tokens are bound to (``None``: bearer tokens).
        self.dpop_key: DpopKey | None = (
            dpop if isinstance(dpop, DpopKey) else process_key() if dpop else None
        )
        self.credential = credential
        self.transport: Transport = transport or UrllibTransport()
        self.refresh_margin = refresh_margin
        self.cache_size = cache_size
        self.clock = clock
        self._metadata = metadata
        self._cache: OrderedDict[CacheKey, IssuedToken] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def client_id(self) -> str:
        return self.credential.client_id

    @property
    def metadata(self) -> ServerMetadata:
        if self._metadata is None:
            self._metadata = discover(self.issuer, self.transport)
        return self._metadata

    # -- grants ----------------------------------------------------------------------------
    def exchange(
        self,
        subject_token: str,
        *,
        audience: str | None = None,
        scope: str | None = None,
        resource: str | None = None,
        actor_token: str | None = None,
        subject_token_type: str = ACCESS_TOKEN_TYPE,
        actor_token_type: str = ACCESS_TOKEN_TYPE,
        use_cache: bool = True,
    ) -> IssuedToken:
        """RFC 8693 §2.1: exchange ``subject_token`` for a token addressed to ``audience`` (or
        ``resource``), with ``scope`` at most. Raises the typed
        :class:`~chain_sts_client.errors.OAuthError` the STS answers with."""
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": subject_token,
            "subject_token_type": subject_token_type,
            "requested_token_type": ACCESS_TOKEN_TYPE,
        }
        if actor_token is not None:
            form["actor_token"] = actor_token
            form["actor_token_type"] = actor_token_type
        key = self._key(TOKEN_EXCHANGE, subject_token, actor_token, audience, resource, scope)
        return self._issue(key, form, audience, resource, scope, use_cache)

    def client_credentials(
        self,
        *,
        audience: str | None = None,
        scope: str | None = None,
        resource: str | None = None,
        use_cache: bool = True,
    ) -> IssuedToken:
        """A token for this client itself: the root of a chain no person started, or (without
        an audience) a credential good only for exchange and the revocation feed."""
        key = self._key(CLIENT_CREDENTIALS, None, None, audience, resource, scope)
        return self._issue(
            key, {"grant_type": CLIENT_CREDENTIALS}, audience, resource, scope, use_cache
        )

    def forget(
        self,
        subject_token: str,
        *,
        audience: str | None = None,
        scope: str | None = None,
        resource: str | None = None,
        actor_token: str | None = None,
    ) -> None:
        """Drop a cached exchange result (say, the next hop refused it as revoked)."""
        key = self._key(TOKEN_EXCHANGE, subject_token, actor_token, audience, resource, scope)
        with self._lock:
            self._cache.pop(key, None)

    def forget_own_token(self) -> None:
        """Drop every cached ``client_credentials`` token."""
        with self._lock:
            for key in [k for k in self._cache if k[0] == CLIENT_CREDENTIALS]:
                del self._cache[key]

    # -- internals -------------------------------------------------------------------------
    def _key(
        self,
        grant: str,
        subject_token: str | None,
        actor_token: str | None,
        audience: str | None,
        resource: str | None,
        scope: str | None,
    ) -> CacheKey:
        return (
            grant,
            _digest(subject_token),
            _digest(actor_token),
            audience,
            resource,
            _scope_key(scope),
        )

    def _issue(
        self,
        key: CacheKey,
        form: dict[str, str],
        audience: str | None,
        resource: str | None,
        scope: str | None,
        use_cache: bool,
    ) -> IssuedToken:
        if use_cache:
            cached = self._cached(key)
            if cached is not None:
                return cached
        if audience is not None:
            form["audience"] = audience
        if resource is not None:
            form["resource"] = resource
        if scope is not None:
            form["scope"] = scope
        endpoint = self.metadata.token_endpoint
        now = self.clock()
        answer = self._post(endpoint, form)
        token = _issued(answer, now)
        with self._lock:
            self._cache[key] = token
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return token

    def _post(self, endpoint: str, form: dict[str, str]) -> dict[str, object]:
        """POST to the token endpoint with a fresh DPoP proof; once more with the STS's
        nonce when it asks for one (RFC 9449 §8)."""
        for attempt in (1, 2):
            # The STS joins the caller's trace (W3C Trace Context).
            headers: dict[str, str] = {tracecontext.HEADER: tracecontext.current_traceparent()}
            self.credential.apply(headers, form, endpoint)
            if self.dpop_key is not None:
                headers["DPoP"] = self.dpop_key.proof("POST", endpoint)
            try:
                answer: dict[str, object] = post_form(self.transport, endpoint, form, headers)
                return answer
            except UseDpopNonce as exc:
                if self.dpop_key is None or exc.nonce is None or attempt == 2:
                    raise
                self.dpop_key.remember_nonce(endpoint, exc.nonce)
        raise AssertionError("unreachable")  # pragma: no cover

    def _cached(self, key: CacheKey) -> IssuedToken | None:
        now = self.clock()
        with self._lock:
            token = self._cache.get(key)
            if token is None:
                return None
            if now >= self._refresh_at(token):
                del self._cache[key]
                return None
            self._cache.move_to_end(key)
            return token

    def _refresh_at(self, token: IssuedToken) -> float:
        lifetime = token.expires_at - token.issued_at
        return token.expires_at - min(self.refresh_margin, lifetime / 2)

    def __repr__(self) -> str:
        return f"ExchangeClient(issuer={self.issuer!r}, client_id={self.client_id!r})"


def _issued(answer: dict[str, object], now: float) -> IssuedToken:
    """RFC 6749 §5.1 / RFC 8693 §2.2.1: the fields the SDK relies on, checked."""
    token = answer.get("access_token")
    token_type = answer.get("token_type")
    expires_in = answer.get("expires_in")
    scope = answer.get("scope")
    if not isinstance(token, str) or not token:
        raise StsUnavailable("token response without access_token")
    if not isinstance(token_type, str) or token_type.lower() not in {"bearer", "dpop"}:
        raise StsUnavailable("token response is neither a Bearer nor a DPoP token")
    if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
        raise StsUnavailable("token response without a positive expires_in")
    issued_type = answer.get("issued_token_type")
    return IssuedToken(
        access_token=token,
        issued_at=now,
        expires_at=now + expires_in,
        scope=scope if isinstance(scope, str) else None,
        token_type="DPoP" if token_type.lower() == "dpop" else "Bearer",
        issued_token_type=issued_type if isinstance(issued_type, str) else None,
    )
