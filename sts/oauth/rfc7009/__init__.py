"""RFC 7009: token revocation by the client a token was issued to (DESIGN §7)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sts.core import errors
from sts.core.response import JSON_NO_STORE, Response
from sts.oauth.audit_facts import Denied
from sts.oauth.rfc7662 import own_live_token, token_param

if TYPE_CHECKING:
    from sts.core.ports import Store
    from sts.oauth.rfc6749.request import OAuthRequest
    from sts.oauth.server import ChainAuthorizationServer


def revoke(server: ChainAuthorizationServer, request: OAuthRequest, store: Store) -> Response:
    """RFC 7009 §2: a client revokes a token issued to it, and with it every descendant.
    The answer is 200 whether or not anything was revoked (§2.2), so it reveals nothing."""
    try:
        token = token_param(request)
        caller = server.authenticate(request, store).client
    except (Denied, errors.StsError) as exc:
        return server.refuse(store, request, exc, "revocation.denied")
    # Serialise with other revocations before reading the lineage: reading takes shared row
    # locks that a revocation would otherwise have to upgrade (a deadlock with another one).
    store.serialize_revocations()
    found = own_live_token(server, store, request.now, token)
    if found is not None and found.jti and found.claims.get("client_id") == caller.client_id:
        store.revoke_token(
            found.jti, request.now, caller.client_id, "revoked by its client (RFC 7009)"
        )
    return 200, {}, JSON_NO_STORE
