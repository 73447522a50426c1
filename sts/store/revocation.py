"""Revocation (DESIGN §7): a token, an NHI, a credential, a rule, an issuer or a transaction,
and every live token derived from it at any depth (:mod:`sts.store.derivation` says what
derives from what). Disabling an NHI or a rule is the same containment: its tokens die for
good, and enabling it again only allows new exchanges.

Each call runs a bounded number of statements whatever the size of the blast radius: the
affected set is one recursive walk from the seeds, marked by one UPDATE.

Race freedom on PostgreSQL: an exchange holds ``FOR SHARE`` locks on the rows its decision
rests on (its client's NHI and its target's, the root rows of the transactions of its subject
and actor tokens, the rules it uses, the trusted issuer) until it commits. A revocation first
takes ``FOR UPDATE`` on the same rows, so it either waits for an in-flight exchange to commit
(and its marking statement, which runs later with a fresh snapshot, sees the new token), or
the exchange waits for the revocation to commit and then reads the revoked state and refuses.
A token derived through an actor token, or minted while the revocation waited for a rule or
an issuer, may live in a transaction whose root was not locked yet: the marking statement
returns every transaction it reached, and while one of them is new its root is locked and
the marking runs again (no extra statement when none is). SQLite serialises writers outright.

:func:`cascade` does the work and reports it; :func:`revoke` also writes the audit event
naming the administrator. Administrators come through :mod:`sts.services.revocation` (and
the disable of :mod:`sts.services.nhis` and :mod:`sts.services.rules`), which check the
request and write their own event; a client revoking its own token (RFC 7009) comes through
the protocol store, which records the client as who did it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, func, insert, select, update
from sqlalchemy.engine import Connection

from sts.core import metrics
from sts.store.audit import record_admin_action
from sts.store.derivation import UnknownTarget, derived, live, seeds
from sts.store.models import (
    Credential,
    DelegationRule,
    IssuedToken,
    Nhi,
    Revocation,
    TrustedIssuer,
)
from sts.store.ssf import enqueue

__all__ = ["KINDS", "Result", "RevocationRecord", "UnknownTarget", "cascade", "revoke"]

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


def _lock_roots(conn: Connection, txns: Select[Any] | Iterable[str]) -> set[str]:
    """Take the transaction roots in-flight exchanges hold FOR SHARE, in key order (see the
    module docstring); the roots locked."""
    if conn.dialect.name != "postgresql":
        return set()
    return set(
        conn.execute(
            select(IssuedToken.jti)
            .where(IssuedToken.jti.in_(txns if isinstance(txns, Select) else sorted(txns)))
            .order_by(IssuedToken.jti)
            .with_for_update()
        ).scalars()
    )


def _disable_source(
    conn: Connection, kind: str, target: str, now: int, reason: str, *, contain: bool
) -> None:
    """Stop the revoked thing from minting anything new (and take its row lock). A disabled
    NHI (``contain``) keeps its credentials, so that enabling it again is all it takes."""
    if kind == "nhi":
        status_reason = reason if contain else reason or "revoked"
        conn.execute(
            update(Nhi)
            .where(Nhi.client_id == target)
            .values(status="disabled", status_reason=status_reason, updated_at=now)
        )
        if contain:
            return
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


def _mark(
    conn: Connection, start: Select[Any], now: int, revocation_id: int, locked: set[str]
) -> list[Any]:
    """Mark every live token derived from ``start``; while the marking reaches a transaction
    whose root is not locked yet, lock it and mark again (see the module docstring)."""
    marked: list[Any] = []
    while True:
        # A fresh statement (fresh snapshot): sees every token committed before the locks.
        # UPDATE ... FROM the walk (a join, not IN): the walk already yields each token once.
        walk = derived(start)
        rows = conn.execute(
            update(IssuedToken)
            .where(
                IssuedToken.jti == walk.c.jti,
                IssuedToken.revoked_at.is_(None),
                IssuedToken.expires_at > now,
            )
            .values(revoked_at=now, revocation_id=revocation_id)
            .returning(IssuedToken.jti, IssuedToken.txn)
        ).all()
        marked += rows
        reached = {r.txn for r in rows} - locked
        if not reached or conn.dialect.name != "postgresql":
            return marked
        _lock_roots(conn, reached)
        locked |= reached


def serialize(conn: Connection) -> None:
    """One revocation at a time (PostgreSQL; SQLite serialises every writer anyway): revocation
    ids then commit in order, so the feed's cursor never passes one that commits later. The
    lock is held until the transaction ends and may be taken again by the same transaction."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(REVOCATION_LOCK)))


def _recorded_reason(reason: str, contain: bool) -> str:
    if not contain:
        return reason
    return f"disabled: {reason}" if reason else "disabled"


def cascade(
    conn: Connection,
    kind: str,
    target: str,
    *,
    now: int,
    by: str,
    reason: str = "",
    dry_run: bool = False,
    contain: bool = False,
    initiator: str = "admin",
    expired: bool = False,
) -> Result:
    """Revoke ``target`` of ``kind`` and everything derived from it, recording ``by`` as who
    did it; with ``dry_run``, only report the blast radius and change nothing. With
    ``contain`` (an NHI or a rule being disabled) the same tokens die, the revocation's
    reason says it was a disable, and a disabled NHI keeps its credentials. ``initiator`` is
    who caused it as SSF events say it (``admin``, or ``user`` for a client revoking its own
    token). With ``expired`` (a rule whose expiry passed, see :func:`void_expired_rules`) the
    rule is left as it is. Raises :class:`UnknownTarget` when there is no such thing."""
    if contain and kind not in ("nhi", "rule"):
        raise ValueError(f"only an NHI or a rule is disabled, not a {kind}")
    start = seeds(conn, kind, target)
    alive = live(derived(start), now)
    if dry_run:
        sub = alive.subquery()
        tokens, txns = conn.execute(
            select(func.count(), func.count(sub.c.txn.distinct())).select_from(sub)
        ).one()
        jtis = list(conn.execute(select(sub.c.jti).order_by(sub.c.jti).limit(LISTED)).scalars())
        return Result(kind, target, True, int(tokens), int(txns), jtis)
    serialize(conn)
    # Lock order matches an exchange's (NHIs, transaction roots, issuer, rule), so the two
    # can wait for each other but not deadlock.
    if kind in ("nhi", "credential"):
        _disable_source(conn, kind, target, now, reason, contain=contain)
    locked = _lock_roots(conn, select(alive.subquery().c.txn).distinct())
    if kind in ("rule", "issuer") and not expired:
        _disable_source(conn, kind, target, now, reason, contain=contain)
    revocation_id = conn.execute(
        insert(Revocation)
        .values(
            kind=kind,
            target=target,
            reason=_recorded_reason(reason, contain),
            revoked_by=by,
            created_at=now,
        )
        .returning(Revocation.id)
    ).scalar_one()
    marked = _mark(conn, start, now, revocation_id, locked)
    if marked:
        # The SSF outbox (DESIGN §11), in this transaction: one statement, any blast radius.
        enqueue(conn, revocation_id, initiator, now)
    metrics.record_revocation(kind, len(marked))
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


#: The reason recorded when a rule's expiry voids what it minted.
RULE_EXPIRED = "rule expired"


def void_expired_rules(conn: Connection, now: int) -> list[Result]:
    """Rules whose expiry has passed while tokens they minted are still live: those tokens,
    and every token derived from them, are void (a hop whose rule is no longer in force,
    DESIGN §5.5). Mark them revoked now, one revocation per rule, so the feed and the SSF
    streams hear of it (CAEP ``initiating_entity`` ``policy``); run again, it finds nothing."""
    live_token = (
        select(IssuedToken.jti)
        .where(
            IssuedToken.rule_id == DelegationRule.id,
            IssuedToken.revoked_at.is_(None),
            IssuedToken.expires_at > now,
        )
        .exists()
    )
    due = (
        select(DelegationRule.id)
        .where(DelegationRule.expires_at <= now, live_token)
        .order_by(DelegationRule.id)
    )
    if conn.execute(due.limit(1)).first() is None:
        return []
    serialize(conn)  # another sweep may have marked them meanwhile: look again, in turn
    rules = conn.execute(due).scalars()
    return [
        cascade(
            conn,
            "rule",
            rule_id,
            now=now,
            by="system",
            reason=RULE_EXPIRED,
            initiator="policy",
            expired=True,
        )
        for rule_id in list(rules)
    ]


class RevocationRepository:
    """Revocations for the administrative services, on the caller's transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def cascade(
        self, kind: str, target: str, *, now: int, by: str, reason: str, dry_run: bool
    ) -> Result:
        return cascade(self._conn, kind, target, now=now, by=by, reason=reason, dry_run=dry_run)

    def contain(self, kind: str, target: str, *, now: int, by: str, reason: str) -> Result:
        """Disable an NHI or a rule, and revoke every live token it appears in or minted."""
        return cascade(self._conn, kind, target, now=now, by=by, reason=reason, contain=True)

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
