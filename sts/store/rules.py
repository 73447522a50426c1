"""Delegation rules in the registry (DESIGN §5.5), for the administrative services.

The token endpoint reads rules through the protocol store (:mod:`sts.store.sql`); these are
the administrator's reads and writes: create, find an identical one, list, disable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import aliased

from sts.store.models import DelegationRule, Nhi, RuleTarget

#: How a rule's "any registered target" reads (a target row whose NHI is NULL).
ANY_TARGET = "*"


@dataclass(frozen=True)
class RuleTerms:
    """What a rule says, its NHIs resolved to ids (``None`` among the targets: any)."""

    actor_id: int
    target_ids: frozenset[int | None]
    subject_type: str
    subject_value: str
    upstream_id: int | None
    scopes: str
    max_depth: int | None
    max_ttl: int | None
    expires_at: int | None
    #: A ``sub`` subject's trusted issuer (``None``: an NHI subject).
    subject_issuer: str | None = None
    #: Only a DPoP-bound request may mint under the rule (DESIGN §12).
    require_dpop: bool = False


@dataclass(frozen=True)
class RuleRecord:
    """A rule as it reads: its NHIs by name, its targets sorted (``*`` for any)."""

    id: str
    actor: str
    targets: list[str]
    scopes: str
    subject_type: str
    subject_value: str
    upstream: str | None
    max_depth: int | None
    max_ttl: int | None
    expires_at: int | None
    status: str
    created_at: int
    subject_issuer: str | None = None
    require_dpop: bool = False


def _same(column: Any, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


def _query() -> Any:
    actor, upstream = aliased(Nhi), aliased(Nhi)
    return (
        select(
            DelegationRule,
            actor.client_id.label("actor_name"),
            upstream.client_id.label("upstream_name"),
        )
        .join(actor, actor.id == DelegationRule.actor_id)
        .outerjoin(upstream, upstream.id == DelegationRule.upstream_id)
    ), actor


def _record(row: Any, targets: list[str]) -> RuleRecord:
    return RuleRecord(
        row.id,
        row.actor_name,
        targets,
        row.scopes,
        row.subject_type,
        row.subject_value,
        row.upstream_name,
        row.max_depth,
        row.max_ttl,
        row.expires_at,
        row.status,
        row.created_at,
        row.subject_issuer,
        bool(row.require_dpop),
    )


def _columns(terms: RuleTerms) -> dict[str, Any]:
    """A rule's row as its terms say it (its id, status and creation time aside)."""
    return {
        "actor_id": terms.actor_id,
        "subject_type": terms.subject_type,
        "subject_value": terms.subject_value,
        "subject_issuer": terms.subject_issuer,
        "upstream_id": terms.upstream_id,
        "scopes": terms.scopes,
        "max_depth": terms.max_depth,
        "max_ttl": terms.max_ttl,
        "expires_at": terms.expires_at,
        "require_dpop": terms.require_dpop,
    }


class RuleRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def insert(self, rule_id: str, terms: RuleTerms, now: int) -> None:
        """A new, enabled rule."""
        self._conn.execute(
            insert(DelegationRule).values(
                id=rule_id, status="enabled", created_at=now, **_columns(terms)
            )
        )
        self._insert_targets(rule_id, terms)

    def _insert_targets(self, rule_id: str, terms: RuleTerms) -> None:
        for target_id in sorted(terms.target_ids, key=lambda t: -1 if t is None else t):
            self._conn.execute(insert(RuleTarget).values(rule_id=rule_id, target_id=target_id))

    def enabled_with(self, terms: RuleTerms) -> str | None:
        """The oldest enabled rule that says exactly ``terms``, if there is one."""
        candidates = self._conn.execute(
            select(DelegationRule.id)
            .where(
                DelegationRule.actor_id == terms.actor_id,
                DelegationRule.status == "enabled",
                DelegationRule.subject_type == terms.subject_type,
                DelegationRule.subject_value == terms.subject_value,
                _same(DelegationRule.subject_issuer, terms.subject_issuer),
                DelegationRule.scopes == terms.scopes,
                _same(DelegationRule.upstream_id, terms.upstream_id),
                _same(DelegationRule.max_depth, terms.max_depth),
                _same(DelegationRule.max_ttl, terms.max_ttl),
                _same(DelegationRule.expires_at, terms.expires_at),
                DelegationRule.require_dpop == terms.require_dpop,
            )
            .order_by(DelegationRule.created_at, DelegationRule.id)
        ).scalars()
        for rule_id in candidates:
            ids = self._conn.execute(
                select(RuleTarget.target_id).where(RuleTarget.rule_id == rule_id)
            )
            if frozenset(ids.scalars()) == terms.target_ids:
                return str(rule_id)
        return None

    def update(self, rule_id: str, terms: RuleTerms) -> None:
        """New terms for a rule (its id, status and creation time stay)."""
        self._conn.execute(
            update(DelegationRule).where(DelegationRule.id == rule_id).values(**_columns(terms))
        )
        self._conn.execute(delete(RuleTarget).where(RuleTarget.rule_id == rule_id))
        self._insert_targets(rule_id, terms)

    def enable(self, rule_id: str) -> None:
        self._conn.execute(
            update(DelegationRule).where(DelegationRule.id == rule_id).values(status="enabled")
        )

    def delete(self, rule_id: str) -> None:
        self._conn.execute(delete(RuleTarget).where(RuleTarget.rule_id == rule_id))
        self._conn.execute(delete(DelegationRule).where(DelegationRule.id == rule_id))

    def terms(self, rule_id: str) -> RuleTerms | None:
        """What a rule says, its NHIs as ids."""
        row = self._conn.execute(select(DelegationRule).where(DelegationRule.id == rule_id)).first()
        if row is None:
            return None
        targets = self._conn.execute(
            select(RuleTarget.target_id).where(RuleTarget.rule_id == rule_id)
        ).scalars()
        return RuleTerms(
            actor_id=row.actor_id,
            target_ids=frozenset(targets),
            subject_type=row.subject_type,
            subject_value=row.subject_value,
            upstream_id=row.upstream_id,
            scopes=row.scopes,
            max_depth=row.max_depth,
            max_ttl=row.max_ttl,
            expires_at=row.expires_at,
            subject_issuer=row.subject_issuer,
            require_dpop=row.require_dpop,
        )

    def find(self, rule_id: str) -> RuleRecord | None:
        query, _ = _query()
        row = self._conn.execute(query.where(DelegationRule.id == rule_id)).first()
        if row is None:
            return None
        return _record(row, self._targets([rule_id])[rule_id])

    def page(
        self, *, actor: str | None, status: str | None, limit: int, offset: int
    ) -> tuple[list[RuleRecord], int]:
        """Rules oldest first, one page of them, and how many match in all."""
        query, actor_nhi = _query()
        if actor:
            query = query.where(actor_nhi.client_id == actor)
        if status:
            query = query.where(DelegationRule.status == status)
        total = self._conn.execute(select(func.count()).select_from(query.subquery()))
        count = int(total.scalar_one())
        rows = self._conn.execute(
            query.order_by(DelegationRule.created_at, DelegationRule.id).limit(limit).offset(offset)
        ).all()
        targets = self._targets([r.id for r in rows])
        return [_record(r, targets[r.id]) for r in rows], count

    def _targets(self, rule_ids: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {r: [] for r in rule_ids}
        rows = self._conn.execute(
            select(RuleTarget.rule_id, Nhi.client_id)
            .outerjoin(Nhi, Nhi.id == RuleTarget.target_id)
            .where(RuleTarget.rule_id.in_(rule_ids))
        )
        for rule_id, name in rows:
            out[rule_id].append(name or ANY_TARGET)
        return {k: sorted(v) for k, v in out.items()}
