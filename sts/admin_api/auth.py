"""Who may call the admin API: the STS vouches for its own administrators.

A caller presents a bearer token this STS issued by ``client_credentials`` to an NHI for
itself, and the scopes it carries say what it may do (:data:`~sts.admin_api.openapi.ADMIN`
everything, :data:`~sts.admin_api.openapi.AUDIT` read only,
:data:`~sts.admin_api.openapi.REVOKE` containment only). The token is judged by the same
:class:`~sts.oauth.validation.TokenValidator` as any subject token (signature, lifetime, lineage,
revocation, disabled identities), then it must be the root of its own chain: no parent, no
``act``, minted by ``client_credentials``, ``sub`` the NHI's own, audience this STS. A token
minted by a token exchange is never an admin credential, whoever it was minted for.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import request
from sqlalchemy.engine import Connection

from sts.admin_api.errors import forbidden, unauthorized
from sts.core import errors
from sts.core.token_types import CLIENT_CREDENTIALS
from sts.runtime import Runtime
from sts.store.sql import SqlStore


@dataclass(frozen=True)
class Admin:
    """An authenticated administrator: the NHI and the scopes its token carries."""

    client_id: str
    scopes: frozenset[str]
    jti: str

    def require(self, scopes: tuple[str, ...]) -> None:
        """403 unless the token carries one of ``scopes``."""
        if not self.scopes & set(scopes):
            raise forbidden(scopes)


def bearer_token() -> str:
    header = request.headers.get("Authorization")
    if header is None:
        raise unauthorized("missing_token", "A bearer token is required.")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized(
            "invalid_token", "The Authorization header must carry a bearer token.", "not bearer"
        )
    return token.strip()


def authenticate(conn: Connection, rt: Runtime, now: int) -> Admin:
    """The administrator behind the request's bearer token, or a 401."""
    return admin_of_token(bearer_token(), conn, rt, now)


def admin_of_token(token: str, conn: Connection, rt: Runtime, now: int) -> Admin:
    """The administrator ``token`` vouches for (the checks above), or a 401. The console
    judges the token its sign-in obtains by the same rules."""
    store = SqlStore(conn)

    def refuse(reason: str) -> Exception:
        return unauthorized("invalid_token", "The token is not a valid admin token.", reason)

    try:
        found = rt.server.validator.validate(token, "admin", store, now)
    except errors.InvalidRequest as err:
        raise refuse(err.reason) from None
    if not found.own:
        raise refuse("not issued by this STS")
    if found.exp <= now:
        raise refuse("expired")
    if len(found.hops) != 1 or found.hops[0].parent_jti is not None:
        raise refuse("not the root of its chain")
    hop = found.hops[0]
    if hop.grant_type != CLIENT_CREDENTIALS:
        raise refuse("not minted by client_credentials")
    if found.chain.depth or "act" in found.claims:
        raise refuse("carries an act chain")
    if found.aud != (rt.settings.issuer,):
        raise refuse("audience is not this STS")
    client = store.client(hop.client_id, now)
    if (
        client is None
        or not client.active
        or found.claims.get("client_id") != client.client_id
        or found.sub != client.sub
    ):
        raise refuse("not a client_credentials token of an active NHI for itself")
    return Admin(client.client_id, found.scopes or frozenset(), found.jti or "")
