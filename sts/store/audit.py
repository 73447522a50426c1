"""The audit trail (DESIGN §8): administrative events written, events read back.

The token endpoint writes its own events through the protocol store
(:meth:`sts.store.sql.SqlStore.audit`); this module writes what an administrator did and
reads the trail for the four questions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, insert, or_, select
from sqlalchemy.engine import Connection

from sts.store.models import AuditEvent

#: The event every issued token leaves, with its own copy of the hop.
ISSUED = "token.issued"
#: The event a client revoking its own token leaves (RFC 7009).
REVOKED = "token.revoked"


@dataclass(frozen=True)
class EventRecord:
    """One audit event, its members in the order the admin API and CLI print them."""

    id: int
    at: int
    event: str
    decision: str
    reason: str
    request_id: str
    client_id: str | None
    credential_id: str | None
    subject: str | None
    target: str | None
    scope: str | None
    jti: str | None
    parent_jti: str | None
    txn: str | None
    rule_id: str | None
    chain: list[str]
    detail: dict[str, Any]


def _record(row: Any) -> EventRecord:
    return EventRecord(
        row.id,
        row.at,
        row.event,
        row.decision,
        row.reason,
        row.request_id,
        row.client_id,
        row.credential_id,
        row.subject,
        row.target,
        row.scope,
        row.jti,
        row.parent_jti,
        row.txn,
        row.rule_id,
        list(row.chain or []),
        row.detail or {},
    )


def record_admin_action(
    conn: Connection, now: int, admin: str, event: str, detail: dict[str, Any]
) -> None:
    """An administrative act, done, naming who did it."""
    conn.execute(
        insert(AuditEvent).values(
            at=now,
            event=event,
            decision="done",
            client_id=admin,
            detail=detail,
            chain=[],
            request_id="",
            reason="",
        )
    )


class AuditRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def record_admin(self, now: int, admin: str, event: str, detail: dict[str, Any]) -> None:
        record_admin_action(self._conn, now, admin, event, detail)

    def txn_of_issued(self, jti: str) -> str | None:
        """The transaction of the token with this ``jti``, as its issuing event tells it."""
        found = self._conn.execute(
            select(AuditEvent.txn).where(AuditEvent.jti == jti, AuditEvent.event == ISSUED)
        ).scalar()
        return None if found is None else str(found)

    def revoked_by_clients(self, jtis: list[str]) -> set[tuple[str, str]]:
        """``(jti, client)`` for each of these tokens a client revoked itself (RFC 7009)."""
        if not jtis:
            return set()
        rows = self._conn.execute(
            select(AuditEvent.jti, AuditEvent.client_id).where(
                AuditEvent.jti.in_(jtis), AuditEvent.event == REVOKED
            )
        )
        return {(r.jti, r.client_id) for r in rows}

    def issued(self, txn: str, limit: int) -> list[EventRecord]:
        """The transaction's issuing events, oldest first."""
        return self._run(
            select(AuditEvent)
            .where(AuditEvent.txn == txn, AuditEvent.event == ISSUED)
            .order_by(AuditEvent.at, AuditEvent.id)
            .limit(limit)
        )

    def denied(self, txn: str, limit: int) -> list[EventRecord]:
        """The transaction's denied attempts, oldest first."""
        return self._run(
            select(AuditEvent)
            .where(AuditEvent.txn == txn, AuditEvent.decision == "denied")
            .order_by(AuditEvent.at, AuditEvent.id)
            .limit(limit)
        )

    def events(
        self,
        *,
        actor: str | None,
        subject: str | None,
        since: int | None,
        decision: str | None,
        event: str | None,
        limit: int,
    ) -> list[EventRecord]:
        """Events matching every filter given, newest first."""
        query: Select[Any] = select(AuditEvent)
        if actor:
            query = query.where(AuditEvent.client_id == actor)
        if subject:
            query = query.where(AuditEvent.subject == subject)
        if since is not None:
            query = query.where(AuditEvent.at >= since)
        if decision:
            query = query.where(AuditEvent.decision == decision)
        if event:
            query = query.where(AuditEvent.event == event)
        return self._run(query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit))

    def recent_transactions(
        self,
        *,
        subject: str | None,
        party: str | None,
        target: str | None,
        decision: str | None,
        since: int | None,
        until: int | None,
        limit: int,
    ) -> list[str]:
        """Transactions with an exchange event (issued or denied) matching every filter
        given, the most recently active first. ``party`` is an NHI that acted or was the
        target."""
        query = select(AuditEvent.txn, func.max(AuditEvent.at).label("last")).where(
            AuditEvent.txn.is_not(None), AuditEvent.decision.in_(("allowed", "denied"))
        )
        if subject:
            query = query.where(AuditEvent.subject == subject)
        if party:
            query = query.where(or_(AuditEvent.client_id == party, AuditEvent.target == party))
        if target:
            query = query.where(AuditEvent.target == target)
        if decision:
            query = query.where(AuditEvent.decision == decision)
        if since is not None:
            query = query.where(AuditEvent.at >= since)
        if until is not None:
            query = query.where(AuditEvent.at <= until)
        query = query.group_by(AuditEvent.txn).order_by(
            func.max(AuditEvent.at).desc(), AuditEvent.txn
        )
        return [str(r.txn) for r in self._conn.execute(query.limit(limit))]

    def exchange_events(self, txns: list[str], limit: int) -> list[EventRecord]:
        """The issued and denied events of these transactions, oldest first."""
        if not txns:
            return []
        return self._run(
            select(AuditEvent)
            .where(AuditEvent.txn.in_(txns), AuditEvent.decision.in_(("allowed", "denied")))
            .order_by(AuditEvent.at, AuditEvent.id)
            .limit(limit)
        )

    def _run(self, query: Select[Any]) -> list[EventRecord]:
        return [_record(r) for r in self._conn.execute(query)]
