"""Revocation (DESIGN §7): a token, an NHI, a credential, a rule, an issuer or a transaction,
and every live token derived from it at any depth.

Each call runs a bounded number of statements whatever the size of the blast radius: the
affected set is one recursive walk down ``parent_jti`` from the seeds, marked by one UPDATE.

Race freedom on PostgreSQL: an exchange holds ``FOR SHARE`` locks on the rows its decision
rests on (its client's NHI row, the root row of its transaction, the rules it uses, the
trusted issuer) until it commits. A revocation first takes ``FOR UPDATE`` on the same rows,
so it either waits for an in-flight exchange to commit (and its marking statement, which runs
later with a fresh snapshot, sees the new token), or the exchange waits for the revocation to
commit and then reads the revoked state and refuses. SQLite serialises writers outright.

:func:`cascade` does the work and reports it; :func:`revoke` also writes the audit event
naming who revoked (the protocol store's RFC 7009 path). Administrators come through
:mod:`sts.services.revocation`, which checks the request and writes that event itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, func, insert, literal, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import aliased

from sts.core.domain import MAX_LINEAGE
from sts.store.audit import record_admin_action
from sts.store.models import (
    Credential,
    DelegationRule,
    IssuedToken,
    Nhi,
    Revocation,
    TrustedIssuer,
)

KINDS = ("token", "nhi", "credential", "rule", "issuer", "txn")
REVOCATION_LOCK = 8_626_017
#: How many affected jtis a result lists (the count is always exact).
LISTED = 1000


@dataclass
class Result:
    kind: str
    target: str
    dry_run: bool
    tokens: int
    transactions: int
    jtis: list[str] = field(default_factory=list)
    revocation_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "dry_run": self.dry_run,
            "tokens": self.tokens,
            "transactions": self.transactions,
            "jtis": self.jtis,
            "jtis_listed": len(self.jtis),
            "revocation_id": self.revocation_id,
        }

    def audit_event(self, reason: str) -> tuple[str, dict[str, Any]]:
        """The audit event that records this revocation (or this look at a blast radius):
        its name and its detail."""
        if self.dry_run:
            return f"admin.revoke.{self.kind}.dry_run", {
                "target": self.target,
                "tokens": self.tokens,
            }
        return f"admin.revoke.{self.kind}", {
            "target": self.target,
            "reason": reason,
            "tokens": self.tokens,
            "revocation_id": self.revocation_id,
        }


@dataclass(frozen=True)
class RevocationRecord:
    id: int
    kind: str
    target: str
    reason: str
    revoked_by: str
    created_at: int


class UnknownTarget(LookupError):
    """Nothing of the kind to revoke goes by this name (for a token or a transaction: no
    token of it is in the lineage)."""

    def __init__(self, kind: str, target: str) -> None:
        super().__init__(kind)
        self.kind = kind
        self.target = target


def _seeds(conn: Connection, kind: str, target: str) -> Select[Any]:
    """The tokens revoked directly; the walk adds their descendants."""
    token = IssuedToken
    if kind == "token":
        condition = token.jti == target
    elif kind == "txn":
        condition = token.txn == target
    elif kind == "nhi":
        row = conn.execute(select(Nhi.id).where(Nhi.client_id == target)).first()
        if row is None:
            raise UnknownTarget(kind, target)
        condition = token.actor_id == row.id
    elif kind == "credential":
        if conn.execute(select(Credential.id).where(Credential.id == target)).first() is None:
            raise UnknownTarget(kind, target)
        condition = token.credential_id == target
    elif kind == "rule":
        if (
            conn.execute(select(DelegationRule.id).where(DelegationRule.id == target)).first()
            is None
        ):
            raise UnknownTarget(kind, target)
        condition = token.rule_id == target
    elif kind == "issuer":
        if (
            conn.execute(select(TrustedIssuer.id).where(TrustedIssuer.issuer == target)).first()
            is None
        ):
            raise UnknownTarget(kind, target)
        condition = token.subject_issuer == target
    else:
        raise ValueError(f"no revocation of kind {kind!r}")
    if (
        kind in ("token", "txn")
        and conn.execute(select(token.jti).where(condition).limit(1)).first() is None
    ):
        raise UnknownTarget(kind, target)
    return select(token.jti).where(condition)


def _affected(seeds: Select[Any]) -> Any:
    """Seeds and all their descendants: one recursive CTE over the parent_jti index."""
    walk = seeds.add_columns(literal(0).label("n")).cte("affected", recursive=True)
    child = aliased(IssuedToken)
    return walk.union_all(
        select(child.jti, (walk.c.n + 1).label("n"))
        .join(walk, child.parent_jti == walk.c.jti)
        .where(walk.c.n < MAX_LINEAGE)
    )


def _live(affected: Any, now: int) -> Select[str, str]:
    return select(IssuedToken.jti, IssuedToken.txn).where(
        IssuedToken.jti.in_(select(affected.c.jti)),
        IssuedToken.revoked_at.is_(None),
        IssuedToken.expires_at > now,
    )


def _lock(conn: Connection, live: Select[str, str]) -> None:
    """Take the rows in-flight exchanges hold FOR SHARE (see the module docstring)."""
    if conn.dialect.name != "postgresql":
        return
    txns = select(live.subquery().c.txn).distinct()
    conn.execute(
        select(IssuedToken.jti)
        .where(IssuedToken.jti.in_(txns))
        .order_by(IssuedToken.jti)
        .with_for_update()
    )


def _disable_source(conn: Connection, kind: str, target: str, now: int, reason: str) -> None:
    """Stop the revoked thing from minting anything new (and take its row lock)."""
    if kind == "nhi":
        conn.execute(
            update(Nhi)
            .where(Nhi.client_id == target)
            .values(status="disabled", status_reason=reason or "revoked", updated_at=now)
        )
        nhi_id = select(Nhi.id).where(Nhi.client_id == target).scalar_subquery()
        conn.execute(
            update(Credential)
            .where(Credential.nhi_id == nhi_id, Credential.status == "active")
            .values(status="revoked", revoked_at=now)
        )
    elif kind == "credential":
        owner = select(Credential.nhi_id).where(Credential.id == target).scalar_subquery()
        conn.execute(
            update(Credential)
            .where(Credential.id == target)
            .values(status="revoked", revoked_at=now)
        )
        # Touch the owner's row: exchanges authenticated with this credential hold it shared.
        conn.execute(update(Nhi).where(Nhi.id == owner).values(updated_at=now))
    elif kind == "rule":
        conn.execute(
            update(DelegationRule).where(DelegationRule.id == target).values(status="disabled")
        )
    elif kind == "issuer":
        conn.execute(
            update(TrustedIssuer).where(TrustedIssuer.issuer == target).values(status="revoked")
        )


def serialize(conn: Connection) -> None:
    """One revocation at a time (PostgreSQL; SQLite serialises every writer anyway): revocation
    ids then commit in order, so the feed's cursor never passes one that commits later. The
    lock is held until the transaction ends and may be taken again by the same transaction."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(REVOCATION_LOCK)))


def cascade(
    conn: Connection,
    kind: str,
    target: str,
    *,
    now: int,
    by: str,
    reason: str = "",
    dry_run: bool = False,
) -> Result:
    """Revoke ``target`` of ``kind`` and everything derived from it, recording ``by`` as who
    did it; with ``dry_run``, only report the blast radius and change nothing. Raises
    :class:`UnknownTarget` when there is no such thing."""
    seeds = _seeds(conn, kind, target)
    live = _live(_affected(seeds), now)
    if dry_run:
        sub = live.subquery()
        tokens, txns = conn.execute(
            select(func.count(), func.count(sub.c.txn.distinct())).select_from(sub)
        ).one()
        jtis = list(conn.execute(select(sub.c.jti).order_by(sub.c.jti).limit(LISTED)).scalars())
        return Result(kind, target, True, int(tokens), int(txns), jtis)
    serialize(conn)
    # Lock order matches an exchange's (client NHI, transaction root, issuer, rule), so the
    # two can wait for each other but never deadlock.
    if kind in ("nhi", "credential"):
        _disable_source(conn, kind, target, now, reason)
    _lock(conn, live)
    if kind in ("rule", "issuer"):
        _disable_source(conn, kind, target, now, reason)
    revocation_id = conn.execute(
        insert(Revocation)
        .values(
            kind=kind,
            target=target,
            reason=reason,
            revoked_by=by,
            created_at=now,
        )
        .returning(Revocation.id)
    ).scalar_one()
    # A fresh statement (fresh snapshot): sees every token committed before the locks.
    # UPDATE ... FROM the walk (a join, not IN): no de-duplication pass over the whole set.
    affected = _affected(_seeds(conn, kind, target))
    marked = conn.execute(
        update(IssuedToken)
        .where(
            IssuedToken.jti == affected.c.jti,
            IssuedToken.revoked_at.is_(None),
            IssuedToken.expires_at > now,
        )
        .values(revoked_at=now, revocation_id=revocation_id)
        .returning(IssuedToken.jti, IssuedToken.txn)
    ).all()
    jtis = sorted(r.jti for r in marked)
    return Result(
        kind, target, False, len(marked), len({r.txn for r in marked}), jtis[:LISTED], revocation_id
    )


def revoke(
    conn: Connection,
    kind: str,
    target: str,
    *,
    now: int,
    admin: str,
    reason: str = "",
    dry_run: bool = False,
) -> Result:
    """:func:`cascade`, and the audit event naming ``admin`` as who did it (asking for a
    blast radius is an act too: audited, nothing else)."""
    result = cascade(conn, kind, target, now=now, by=admin, reason=reason, dry_run=dry_run)
    record_admin_action(conn, now, admin, *result.audit_event(reason))
    return result


class RevocationRepository:
    """Revocations for the administrative services, on the caller's transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def cascade(
        self, kind: str, target: str, *, now: int, by: str, reason: str, dry_run: bool
    ) -> Result:
        return cascade(self._conn, kind, target, now=now, by=by, reason=reason, dry_run=dry_run)

    def records(self, ids: list[int]) -> list[RevocationRecord]:
        """These revocations, by id."""
        if not ids:
            return []
        rows = self._conn.execute(
            select(Revocation).where(Revocation.id.in_(ids)).order_by(Revocation.id)
        )
        return [
            RevocationRecord(r.id, r.kind, r.target, r.reason, r.revoked_by, r.created_at)
            for r in rows
        ]
