"""SQL implementation of :class:`sts.ports.Store`: Core statements on one connection."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from sts.domain import Client, CredentialView, Target, scope_set
from sts.ports import AuditRecord, IssuedRecord
from sts.store.models import (
    AuditEvent,
    ClientAssertionJti,
    Credential,
    IssuedToken,
    Nhi,
    NhiResource,
)

_CLIENT_QUERY = select(
    Nhi.id,
    Nhi.client_id,
    Nhi.kind,
    Nhi.sub,
    Nhi.owner,
    Nhi.status,
    Nhi.scopes,
    Nhi.grants,
    Credential.id.label("cred_id"),
    Credential.type,
    Credential.secret_hash,
    Credential.jwks,
    Credential.jwks_uri,
    Credential.expires_at,
).outerjoin(Credential, and_(Credential.nhi_id == Nhi.id, Credential.status == "active"))
_TARGET_COLUMNS = (Nhi.id, Nhi.client_id, Nhi.sub, Nhi.status)


class SqlStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def client(self, client_id: str, now: int) -> Client | None:
        rows = self.conn.execute(_CLIENT_QUERY.where(Nhi.client_id == client_id)).all()
        if not rows:
            return None
        first = rows[0]
        creds = tuple(
            CredentialView(r.cred_id, r.type, r.secret_hash, r.jwks, r.jwks_uri)
            for r in rows
            if r.cred_id is not None and (r.expires_at is None or r.expires_at > now)
        )
        return Client(
            first.id,
            first.client_id,
            first.kind,
            first.sub,
            first.owner,
            first.status,
            scope_set(first.scopes),
            scope_set(first.grants),
            creds,
        )

    def remember_assertion(self, client_id: str, jti: str, expires_at: int, now: int) -> bool:
        self.conn.execute(
            delete(ClientAssertionJti).where(
                ClientAssertionJti.client_id == client_id, ClientAssertionJti.expires_at < now
            )
        )
        values = {"client_id": client_id, "jti": jti, "expires_at": expires_at}
        dialect = self.conn.dialect.name
        stmt: Any
        if dialect == "postgresql":
            stmt = postgresql.insert(ClientAssertionJti).values(values).on_conflict_do_nothing()
        else:
            stmt = sqlite.insert(ClientAssertionJti).values(values).on_conflict_do_nothing()
        return self.conn.execute(stmt).rowcount == 1

    def target_by_name(self, name: str) -> Target | None:
        row = self.conn.execute(select(*_TARGET_COLUMNS).where(Nhi.client_id == name)).first()
        return Target(*row) if row else None

    def target_by_resource(self, uri: str) -> Target | None:
        row = self.conn.execute(
            select(*_TARGET_COLUMNS)
            .outerjoin(NhiResource, NhiResource.nhi_id == Nhi.id)
            .where(or_(NhiResource.uri == uri, Nhi.sub == uri))
            .limit(1)
        ).first()
        return Target(*row) if row else None

    def record_token(self, record: IssuedRecord) -> None:
        values = asdict(record)
        values["chain"] = list(record.chain)
        values["depth"] = len(record.chain)
        self.conn.execute(insert(IssuedToken).values(values))

    def audit(self, record: AuditRecord) -> None:
        values = asdict(record)
        values["chain"] = list(record.chain)
        self.conn.execute(insert(AuditEvent).values(values))
