"""RFC 7009: token revocation by the client a token was issued to (DESIGN §7)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sts.core import errors
from sts.core.ports import AuditRecord
from sts.core.response import JSON_NO_STORE, Response
from sts.oauth.audit_facts import Denied
from sts.oauth.rfc7662 import own_live_token, token_param

if TYPE_CHECKING:
    from sts.core.ports import Store
    from sts.oauth.rfc6749.client_auth import Authenticated
    from sts.oauth.rfc6749.request import OAuthRequest
    from sts.oauth.server import ChainAuthorizationServer
    from sts.oauth.validation import ValidatedToken

#: The audit event of a client revoking its own token: its act, never an administrator's.
REVOKED = "token.revoked"
REASON = "revoked by its client (RFC 7009)"


def revoke(server: ChainAuthorizationServer, request: OAuthRequest, store: Store) -> Response:
    """RFC 7009 §2: a client revokes a token issued to it, and with it every descendant.
    The answer is 200 whether or not anything was revoked (§2.2), so it reveals nothing."""
    try:
        token = token_param(request)
        auth = server.authenticate(request, store)
    except (Denied, errors.StsError) as exc:
        return server.refuse(store, request, exc, "revocation.denied")
    # Serialise with other revocations before reading the lineage: reading takes shared row
    # locks that a revocation would otherwise have to upgrade (a deadlock with another one).
    store.serialize_revocations()
    found = own_live_token(server, store, request.now, token)
    caller = auth.client.client_id
    if found is not None and found.jti and found.claims.get("client_id") == caller:
        tokens = store.revoke_token(found.jti, request.now, caller, REASON)
        store.audit(_revoked(request, auth, found, tokens))
    return 200, {}, JSON_NO_STORE


def _revoked(
    request: OAuthRequest, auth: Authenticated, found: ValidatedToken, tokens: int
) -> AuditRecord:
    """DESIGN §8: the event names the client that revoked, with the token it revoked."""
    scope = found.claims.get("scope")
    return AuditRecord(
        at=request.now,
        event=REVOKED,
        decision="allowed",
        reason=REASON,
        request_id=request.request_id,
        client_id=auth.client.client_id,
        credential_id=auth.credential_id,
        subject=found.sub,
        target=found.aud[0] if found.aud else None,
        scope=scope if isinstance(scope, str) else None,
        jti=found.jti,
        parent_jti=found.hops[0].parent_jti if found.hops else None,
        txn=found.txn,
        chain=found.chain.subs(),
        detail={"tokens": tokens},
    )
