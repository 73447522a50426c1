"""SQL implementation of :class:`sts.ports.Store`: Core statements on one connection."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import and_, delete, insert, literal, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import aliased

from sts.domain import Client, CredentialView, Target, scope_set
from sts.ports import AuditRecord, Hop, IssuedRecord, IssuerConfig, RuleView
from sts.revocation import revoke
from sts.store.models import (
    AuditEvent,
    ClientAssertionJti,
    Credential,
    DelegationRule,
    IssuedToken,
    Nhi,
    NhiResource,
    RuleTarget,
    TrustedIssuer,
)

#: Lineage walks stop here whatever the data says (the chain depth cap is far below).
MAX_LINEAGE = 64

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
_TARGET_COLUMNS = (Nhi.id, Nhi.client_id, Nhi.sub, Nhi.status, Nhi.kind)


class SqlStore:
    """Reads made for a decision take ``FOR SHARE`` row locks on PostgreSQL (the client's NHI,
    the transaction's root token, the issuer, the rules), held until the request commits, so
    a concurrent revocation either waits for the new token or is seen by the exchange (see
    :mod:`sts.revocation`). SQLite serialises writers and needs none."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = conn.dialect.name == "postgresql"

    def _shared(self, stmt: Any, *of: Any) -> Any:
        return stmt.with_for_update(read=True, of=list(of) or None) if self._lock else stmt

    def client(self, client_id: str, now: int) -> Client | None:
        rows = self.conn.execute(
            self._shared(_CLIENT_QUERY.where(Nhi.client_id == client_id), Nhi)
        ).all()
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
        # RETURNING, not rowcount: psycopg reports -1 for a conflict-skipping INSERT.
        return self.conn.execute(stmt.returning(ClientAssertionJti.jti)).first() is not None

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

    def nhi_by_sub(self, sub: str) -> Target | None:
        row = self.conn.execute(select(*_TARGET_COLUMNS).where(Nhi.sub == sub)).first()
        return Target(*row) if row else None

    def trusted_issuer(self, issuer: str) -> IssuerConfig | None:
        row = self.conn.execute(
            self._shared(select(TrustedIssuer).where(TrustedIssuer.issuer == issuer))
        ).first()
        if row is None:
            return None
        return IssuerConfig(
            row.issuer,
            row.jwks,
            row.jwks_uri,
            tuple(row.algorithms.split()),
            tuple(row.audiences or ()),
            row.scope_mode,
            row.status,
        )

    def lineage(self, jti: str, now: int) -> list[Hop]:
        """A recursive walk up ``parent_jti`` joined with actor and rule state, after locking
        the transaction's root row."""
        if self._lock:
            txn = select(IssuedToken.txn).where(IssuedToken.jti == jti).scalar_subquery()
            self.conn.execute(
                select(IssuedToken.jti).where(IssuedToken.jti == txn).with_for_update(read=True)
            )
        walk = (
            select(IssuedToken.jti, IssuedToken.parent_jti, literal(0).label("n"))
            .where(IssuedToken.jti == jti)
            .cte("walk", recursive=True)
        )
        parent = aliased(IssuedToken)
        walk = walk.union_all(
            select(parent.jti, parent.parent_jti, (walk.c.n + 1).label("n"))
            .join(walk, parent.jti == walk.c.parent_jti)
            .where(walk.c.n < MAX_LINEAGE)
        )
        rows = self.conn.execute(
            select(
                IssuedToken,
                Nhi.status.label("actor_status"),
                DelegationRule.status.label("rule_status"),
                DelegationRule.expires_at.label("rule_expires_at"),
            )
            .join(walk, walk.c.jti == IssuedToken.jti)
            .outerjoin(Nhi, Nhi.id == IssuedToken.actor_id)
            .outerjoin(DelegationRule, DelegationRule.id == IssuedToken.rule_id)
            .order_by(walk.c.n)
        ).all()
        return [
            Hop(
                jti=r.jti,
                parent_jti=r.parent_jti,
                txn=r.txn,
                subject=r.subject,
                subject_issuer=r.subject_issuer,
                client_id=r.client_id,
                actor_id=r.actor_id,
                actor_status=r.actor_status,
                rule_id=r.rule_id,
                rule_in_force=r.rule_id is None
                or (
                    r.rule_status == "enabled"
                    and (r.rule_expires_at is None or r.rule_expires_at > now)
                ),
                revoked=r.revoked_at is not None,
                chain=tuple(r.chain or ()),
                target=r.target,
                scope=r.scope,
                expires_at=r.expires_at,
                grant_type=r.grant_type,
            )
            for r in rows
        ]

    def rules_for(self, actor_id: int, target_id: int, now: int) -> list[RuleView]:
        upstream = aliased(Nhi)
        matching = select(RuleTarget.rule_id).where(
            or_(RuleTarget.target_id == target_id, RuleTarget.target_id.is_(None))
        )
        rows = self.conn.execute(
            self._shared(
                select(DelegationRule, upstream.sub.label("upstream_sub"))
                .outerjoin(upstream, upstream.id == DelegationRule.upstream_id)
                .where(
                    DelegationRule.actor_id == actor_id,
                    DelegationRule.status == "enabled",
                    or_(DelegationRule.expires_at.is_(None), DelegationRule.expires_at > now),
                    DelegationRule.id.in_(matching),
                )
                .order_by(DelegationRule.created_at, DelegationRule.id),
                DelegationRule,
            )
        ).all()
        targets: dict[str, set[int | None]] = {r.id: set() for r in rows}
        if rows:
            for rule_id, tid in self.conn.execute(
                select(RuleTarget.rule_id, RuleTarget.target_id).where(
                    RuleTarget.rule_id.in_(list(targets))
                )
            ):
                targets[rule_id].add(tid)
        return [
            RuleView(
                r.id,
                r.actor_id,
                r.subject_type,
                r.subject_value,
                r.upstream_sub,
                scope_set(r.scopes),
                r.max_depth,
                r.max_ttl,
                r.expires_at,
                frozenset(targets[r.id]),
            )
            for r in rows
        ]

    def revoke_token(self, jti: str, now: int, by: str, reason: str) -> int:
        return revoke(self.conn, "token", jti, now=now, admin=by, reason=reason).tokens

    def revoked_since(
        self, cursor: tuple[int, str], now: int, limit: int
    ) -> list[tuple[int, str, int]]:
        rid, jti = cursor
        rows = self.conn.execute(
            select(IssuedToken.revocation_id, IssuedToken.jti, IssuedToken.expires_at)
            .where(
                IssuedToken.revocation_id.is_not(None),
                or_(
                    IssuedToken.revocation_id > rid,
                    and_(IssuedToken.revocation_id == rid, IssuedToken.jti > jti),
                ),
                IssuedToken.expires_at > now,
            )
            .order_by(IssuedToken.revocation_id, IssuedToken.jti)
            .limit(limit)
        ).all()
        return [(int(r.revocation_id), r.jti, int(r.expires_at)) for r in rows]
