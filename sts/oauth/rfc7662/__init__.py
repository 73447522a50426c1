"""RFC 7662: token introspection (DESIGN §7).

Framework-free, like every endpoint here: it takes an :class:`OAuthRequest` and the store
whose transaction the caller owns, and returns ``(status, body, headers)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sts.core import errors
from sts.core.response import JSON_NO_STORE, Response
from sts.oauth.audit_facts import Denied

if TYPE_CHECKING:
    from sts.core.ports import Store
    from sts.oauth.rfc6749.request import OAuthRequest
    from sts.oauth.server import ChainAuthorizationServer
    from sts.oauth.validation import ValidatedToken

INACTIVE: dict[str, Any] = {"active": False}


def own_live_token(
    server: ChainAuthorizationServer, store: Store, now: int, token: str
) -> ValidatedToken | None:
    """The token if it is ours, verifies, has a live lineage and has not expired."""
    try:
        found = server.validator.validate(token, "introspected", store, now)
    except errors.InvalidRequest:
        return None
    if not found.own or found.exp <= now:
        return None
    return found


def token_param(request: OAuthRequest) -> str:
    request.reject_repeated_parameters()
    token = request.param("token")
    if not token:
        raise errors.InvalidRequest("missing token parameter", "Missing token.")
    return token


def introspect(server: ChainAuthorizationServer, request: OAuthRequest, store: Store) -> Response:
    """RFC 7662 §2. Only the token's audience or the client it was issued to may learn about
    it; for anyone else, and for revoked, expired, unknown or malformed tokens, the answer is
    ``{"active": false}`` and nothing more (§2.2)."""
    try:
        token = token_param(request)
        caller = server.authenticate(request, store).client
    except (Denied, errors.StsError) as exc:
        return server.refuse(store, request, exc, "introspection.denied")
    found = own_live_token(server, store, request.now, token)
    if found is None or caller.client_id not in {found.claims.get("client_id"), *found.aud}:
        return 200, dict(INACTIVE), JSON_NO_STORE
    claims = found.claims
    body: dict[str, Any] = {
        "active": True,
        # RFC 9449 §6.2: a bound token's ``cnf`` (its key's thumbprint) and type.
        "token_type": "DPoP" if "cnf" in claims else "Bearer",
        **{
            k: claims[k]
            for k in (
                "iss",
                "sub",
                "aud",
                "client_id",
                "scope",
                "exp",
                "iat",
                "nbf",
                "jti",
                "txn",
                "act",
                "sub_id",
                "cnf",
            )
            if k in claims
        },
        "depth": found.chain.depth,
    }
    return 200, body, JSON_NO_STORE
