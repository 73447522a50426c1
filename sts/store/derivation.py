"""What derives from what (DESIGN §7): the tokens a revocation kills directly, and every
token derived from them at any depth, as SQL a revocation runs in one statement.

A token is derived from another when it descends from it (``parent_jti``) or was minted with
it as the actor token (``actor_jti``); a descendant of such a token may itself have served as
an actor token, so the walk follows both edges until nothing new turns up. It is one recursive
CTE over the two indexes whatever the size of the blast radius: no per-token round trip.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import aliased

from sts.store.models import Credential, DelegationRule, IssuedToken, Nhi, TrustedIssuer


class UnknownTarget(LookupError):
    """Nothing of the kind to revoke goes by this name (for a token or a transaction: no
    token of it is in the lineage)."""

    def __init__(self, kind: str, target: str) -> None:
        super().__init__(kind)
        self.kind = kind
        self.target = target


def _exists(conn: Connection, query: Select[Any]) -> bool:
    return conn.execute(query.limit(1)).first() is not None


def seeds(conn: Connection, kind: str, target: str) -> Select[Any]:
    """The tokens killed directly (the walk adds what derives from them); raises
    :class:`UnknownTarget` when there is nothing of ``kind`` named ``target``."""
    token = IssuedToken
    if kind == "token":
        condition = token.jti == target
        known = _exists(conn, select(token.jti).where(condition))
    elif kind == "txn":
        condition = token.txn == target
        known = _exists(conn, select(token.jti).where(condition))
    elif kind == "nhi":
        nhi_id = conn.execute(select(Nhi.id).where(Nhi.client_id == target)).scalar()
        # Every token it minted as the actor (its chains descend from those) and every token
        # addressed to it (``aud``), so none comes back to life if it is enabled again.
        condition = or_(token.actor_id == nhi_id, token.target == target)
        known = nhi_id is not None
    elif kind == "credential":
        condition = token.credential_id == target
        known = _exists(conn, select(Credential.id).where(Credential.id == target))
    elif kind == "rule":
        condition = token.rule_id == target
        known = _exists(conn, select(DelegationRule.id).where(DelegationRule.id == target))
    elif kind == "issuer":
        # Chains whose subject it vouched for, and hops whose actor token it signed.
        condition = or_(token.subject_issuer == target, token.actor_issuer == target)
        known = _exists(conn, select(TrustedIssuer.id).where(TrustedIssuer.issuer == target))
    else:
        raise ValueError(f"no revocation of kind {kind!r}")
    if not known:
        raise UnknownTarget(kind, target)
    return select(token.jti).where(condition)


def derived(start: Select[Any]) -> Any:
    """``start`` and every token derived from it: descendants (``parent_jti``) and tokens
    minted with one of them as the actor token (``actor_jti``), at any depth. ``UNION``, not
    ``UNION ALL``: a token reached along both edges is walked once, so the walk ends on any
    shape of lineage and no bound on its depth is needed."""
    walk = start.cte("derived", recursive=True)
    token = aliased(IssuedToken)
    return walk.union(
        select(token.jti).join(
            walk, or_(token.parent_jti == walk.c.jti, token.actor_jti == walk.c.jti)
        )
    )


def live(walk: Any, now: int) -> Select[str, str]:
    """The walked tokens not yet revoked nor expired, with their transactions."""
    return select(IssuedToken.jti, IssuedToken.txn).where(
        IssuedToken.jti.in_(select(walk.c.jti)),
        IssuedToken.revoked_at.is_(None),
        IssuedToken.expires_at > now,
    )
