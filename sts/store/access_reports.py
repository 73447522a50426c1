"""Access reports (DESIGN §10): what the audience of a token did under it.

The endpoint writes them through the protocol store (:meth:`sts.store.sql.SqlStore.
record_access_reports`); the audit services read them back here, by transaction and by the
resource touched. A report keeps its token's ``jti``, ``txn``, subject and chain, so it
outlives the lineage row (``sts gc``) and is never touched by a revocation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from sts.core.ports import AccessReport, ReportedToken
from sts.store.models import AccessReportRow, IssuedToken

_REPORTED_TOKEN = select(
    IssuedToken.jti,
    IssuedToken.txn,
    IssuedToken.target,
    IssuedToken.issued_at,
    IssuedToken.expires_at,
    IssuedToken.subject,
    IssuedToken.subject_issuer,
    IssuedToken.chain,
)


def reported_tokens(conn: Connection, jtis: list[str]) -> dict[str, ReportedToken]:
    if not jtis:
        return {}
    rows = conn.execute(_REPORTED_TOKEN.where(IssuedToken.jti.in_(sorted(set(jtis)))))
    return {
        row.jti: ReportedToken(
            jti=row.jti,
            txn=row.txn,
            target=row.target,
            issued_at=row.issued_at,
            expires_at=row.expires_at,
            subject=row.subject,
            subject_issuer=row.subject_issuer,
            chain=tuple(row.chain or ()),
        )
        for row in rows
    }


def record(conn: Connection, reports: list[AccessReport]) -> None:
    """Insert every report in one statement (the caller's transaction: all or nothing)."""
    if not reports:
        return
    rows = []
    for r in reports:
        values = dict(r.__dict__)
        values["data_classes"] = list(r.data_classes)
        values["chain"] = list(r.chain)
        rows.append(values)
    conn.execute(insert(AccessReportRow), rows)


@dataclass(frozen=True)
class ReportRecord:
    """One stored report, its members in the order the admin API and the CLI show them."""

    id: int
    jti: str
    txn: str
    reported_by: str
    subject: str
    subject_issuer: str
    chain: list[str]
    resource: str
    action: str
    data_classes: list[str]
    records: int | None
    bytes: int | None
    destination: str | None
    outcome: str | None
    at: int
    received_at: int


def _record(row: Any) -> ReportRecord:
    return ReportRecord(
        row.id,
        row.jti,
        row.txn,
        row.reported_by,
        row.subject,
        row.subject_issuer,
        list(row.chain or []),
        row.resource,
        row.action,
        list(row.data_classes or []),
        row.records,
        row.bytes,
        row.destination,
        row.outcome,
        row.at,
        row.received_at,
    )


class AccessReportRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def for_transaction(self, txn: str, limit: int) -> list[ReportRecord]:
        """The transaction's reports, in the order the accesses happened."""
        rows = self._conn.execute(
            select(AccessReportRow)
            .where(AccessReportRow.txn == txn)
            .order_by(AccessReportRow.at, AccessReportRow.id)
            .limit(limit)
        )
        return [_record(r) for r in rows]

    def touching(self, resource: str, since: int | None, limit: int) -> list[ReportRecord]:
        """Reports of accesses to ``resource`` at or after ``since``, newest first."""
        query = select(AccessReportRow).where(AccessReportRow.resource == resource)
        if since is not None:
            query = query.where(AccessReportRow.at >= since)
        rows = self._conn.execute(
            query.order_by(AccessReportRow.at.desc(), AccessReportRow.id.desc()).limit(limit)
        )
        return [_record(r) for r in rows]
