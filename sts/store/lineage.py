"""Reading the lineage back (DESIGN §5.10, §8): a transaction's tokens, each with the state
of the NHI that acted and of the rule that minted it, for the administrative services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.engine import Connection

from sts.store.models import DelegationRule, IssuedToken, Nhi


@dataclass(frozen=True)
class TokenRecord:
    """One issued token's lineage row, with the facts its state is judged on:
    ``actor_status`` is ``None`` when its actor's NHI is gone, ``rule_status`` when it was
    minted without a rule or its rule is gone."""

    jti: str
    parent_jti: str | None
    txn: str
    grant_type: str
    subject: str
    subject_issuer: str
    client_id: str
    credential_id: str | None
    target: str
    scope: str
    rule_id: str | None
    chain: list[str]
    depth: int
    issued_at: int
    expires_at: int
    revoked_at: int | None
    revocation_id: int | None
    actor_status: str | None
    rule_status: str | None
    rule_expires_at: int | None


def _record(row: Any) -> TokenRecord:
    return TokenRecord(
        row.jti,
        row.parent_jti,
        row.txn,
        row.grant_type,
        row.subject,
        row.subject_issuer,
        row.client_id,
        row.credential_id,
        row.target,
        row.scope,
        row.rule_id,
        list(row.chain or []),
        row.depth,
        row.issued_at,
        row.expires_at,
        row.revoked_at,
        row.revocation_id,
        row.actor_status,
        row.rule_status,
        row.rule_expires_at,
    )


class LineageRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def txn_of(self, jti: str) -> str | None:
        """The transaction of the token with this ``jti``, while its lineage row lasts."""
        found = self._conn.execute(select(IssuedToken.txn).where(IssuedToken.jti == jti))
        txn = found.scalar()
        return None if txn is None else str(txn)

    def transaction(self, txn: str, *, limit: int, by_depth: bool = False) -> list[TokenRecord]:
        """The transaction's tokens in the order they were issued (then by depth, with
        ``by_depth``, then by ``jti``); at most ``limit`` of them."""
        order = (
            (IssuedToken.issued_at, IssuedToken.depth, IssuedToken.jti)
            if by_depth
            else (IssuedToken.issued_at, IssuedToken.jti)
        )
        rows = self._conn.execute(
            select(
                IssuedToken,
                Nhi.status.label("actor_status"),
                DelegationRule.status.label("rule_status"),
                DelegationRule.expires_at.label("rule_expires_at"),
            )
            .outerjoin(Nhi, Nhi.id == IssuedToken.actor_id)
            .outerjoin(DelegationRule, DelegationRule.id == IssuedToken.rule_id)
            .where(IssuedToken.txn == txn)
            .order_by(*order)
            .limit(limit)
        )
        return [_record(r) for r in rows]

    def live_txns_of(self, client_id: str, now: int, limit: int) -> list[str]:
        """Transactions holding an unrevoked, unexpired token that ``client_id`` acted in or
        was addressed to, the most recently issued first."""
        rows = self._conn.execute(
            select(IssuedToken.txn, func.max(IssuedToken.issued_at).label("last"))
            .where(
                or_(IssuedToken.client_id == client_id, IssuedToken.target == client_id),
                IssuedToken.revoked_at.is_(None),
                IssuedToken.expires_at > now,
            )
            .group_by(IssuedToken.txn)
            .order_by(func.max(IssuedToken.issued_at).desc(), IssuedToken.txn)
            .limit(limit)
        )
        return [str(r.txn) for r in rows]
