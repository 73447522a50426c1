"""SQL implementation of :class:`sts.core.ports.Store`: the statements of
:mod:`sts.store.statements`, built once at import, run on one connection whose transaction the
request owns. On PostgreSQL an exchange reads ahead (:meth:`SqlStore.expect`): its client,
issuer, target and rules in one statement, or its tokens' root locks and lineages in one
statement each; any other read is one round trip of its own.

Reads made for a decision take ``FOR SHARE`` row locks on PostgreSQL (the client's NHI, the
transaction's root token, the issuer, the rules), held until the request commits, so a
concurrent revocation either waits for the new token or is seen by the exchange (see
:mod:`sts.store.revocation`). SQLite serialises writers and needs none.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from psycopg.rows import namedtuple_row
from psycopg.types.json import Json
from sqlalchemy.engine import Connection

from sts.core import metrics
from sts.core.domain import Client, CredentialView, Target
from sts.core.lineage import rule_in_force
from sts.core.ports import (
    AccessReport,
    AuditRecord,
    ExchangeHints,
    Hop,
    IssuedRecord,
    IssuerConfig,
    ReportedToken,
    RuleView,
)
from sts.core.scopes import scope_set
from sts.store import access_reports
from sts.store import statements as q
from sts.store.dpop import REMEMBER_PROOF
from sts.store.revocation import cascade, serialize


class SqlStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._sql = q.BY_DIALECT[conn.dialect.name]
        # On PostgreSQL the hot statements go straight to the psycopg cursor, prepared on the
        # server: a SQLAlchemy execution costs several times the statement's own client CPU.
        self._cursor: Any = None
        #: Rows fetched ahead by :meth:`prefetch`, by lookup, for this transaction.
        self._ahead: dict[tuple[Any, ...], list[Any]] = {}
        #: Own tokens whose lineages :meth:`expect` announced, read at the first walk.
        self._expected_lineages: tuple[str, ...] = ()
        if conn.dialect.name == "postgresql":
            # One cursor per database connection, kept with it across requests (the pool's
            # ``info`` is cleared when the connection is replaced), not one per request.
            pooled = conn.connection
            cursor = pooled.info.get("sts.cursor")
            if cursor is None or cursor.closed or cursor.connection is not pooled.driver_connection:
                driver = pooled.driver_connection
                assert driver is not None
                cursor = pooled.info["sts.cursor"] = driver.cursor(row_factory=namedtuple_row)
            self._cursor = cursor

    def _run(self, stmt: Any, params: dict[str, Any]) -> list[Any]:
        if self._cursor is not None and any(
            isinstance(v, str) and "\x00" in v for v in params.values()
        ):
            # PostgreSQL text cannot hold NUL: no stored key contains one, so a lookup or a
            # keyed upsert with such a value (hostile input) matches nothing. Anything else
            # must never be skipped silently: a token is never issued without its record.
            if stmt is q.INSERT_BOTH:
                raise ValueError("NUL in a value to be stored")
            return []
        if self._cursor is None:
            result = self.conn.execute(stmt, params)
            return list(result.all()) if result.returns_rows else []
        compiled = q.Compiled.of(stmt, self.conn.dialect)
        params = {**compiled.defaults, **params}
        if compiled.json:
            params = {k: Json(v) if k in compiled.json else v for k, v in params.items()}
        metrics.DB_ROUND_TRIPS.labels("prepared").inc()
        self._cursor.execute(compiled.sql, params, prepare=True)
        # The result's status, not ``description`` (which builds a column list per call).
        result = self._cursor.pgresult
        return self._cursor.fetchall() if result and result.status == q.TUPLES_OK else []

    def _lookup(self, key: tuple[Any, ...], stmt: Any, params: dict[str, Any]) -> list[Any]:
        ahead = self._ahead.get(key)
        return ahead if ahead is not None else self._run(stmt, params)

    def _write_client(self, stmt: Any, params: dict[str, Any]) -> None:
        """A write to what :meth:`client` reads: its rows read ahead are stale."""
        self._ahead = {k: v for k, v in self._ahead.items() if k[0] != "client"}
        self._run(stmt, params)

    def expect(self, hints: ExchangeHints, now: int) -> None:
        """The lock order lives here: a revocation locks NHIs, then transaction roots, then
        issuers and rules. With lineages to walk (the subject's and the actor token's), their
        roots are locked (all in one statement, in key order) at the first :meth:`lineage` or
        :meth:`trusted_issuer` asked, which the protocol asks only once the client is
        authenticated, so a stranger holding a real token never makes a revocation wait;
        issuer and rules are then left to their own lookups, after the roots. Without
        lineages, everything is read ahead at once."""
        self._expected_lineages = hints.own_jtis
        lineage = bool(hints.own_jtis)
        self.prefetch(
            client_id=hints.client_id,
            issuer=None if lineage else hints.issuer,
            target=hints.target,
            rules=not lineage,
            now=now,
            source=hints.source,
        )

    def prefetch(
        self,
        *,
        client_id: str | None,
        issuer: str | None,
        target: str | None,
        rules: bool,
        now: int,
        source: str = "",
    ) -> None:
        if self._sql.prefetch is None or not (client_id or issuer or target):
            return
        params = {
            "client_id": client_id,
            "issuer": issuer,
            "name": target,
            "rules_actor": client_id if rules else None,
            "rules_target": target if rules else None,
            "now": now,
            "source": source,
        }
        found = self._run(self._sql.prefetch, params)
        if not found:  # a value PostgreSQL cannot hold: the single lookups will answer
            return
        row = found[0]

        def objects(values: list[dict[str, Any]] | None) -> list[Any]:
            return [SimpleNamespace(**v) for v in values or ()]

        clients, targets = objects(row.client), objects(row.target)
        if client_id:
            self._ahead[("client", client_id, source)] = clients
        if issuer:
            self._ahead[("issuer", issuer)] = objects(row.issuer)
        if target:
            self._ahead[("target", target)] = targets
            if rules and clients and targets:
                self._ahead[("rules", clients[0].id, targets[0].id)] = objects(row.rules)

    def prefetch_lineage(self, jtis: tuple[str, ...]) -> None:
        if self._sql.prefetch is None or not jtis or any("\x00" in jti for jti in jtis):
            return
        self._run(q.LOCK_ROOTS, {"jtis": list(jtis)})
        walked: dict[str, list[Any]] = {jti: [] for jti in jtis}
        for row in self._run(q.LINEAGES, {"jtis": list(jtis)}):
            walked[row.start].append(row)
        for jti, rows in walked.items():
            self._ahead[("lineage", jti)] = rows

    def client(self, client_id: str, now: int, source: str = "") -> Client | None:
        rows = self._lookup(
            ("client", client_id, source),
            self._sql.client,
            {"client_id": client_id, "source": source},
        )
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
            first.failures or 0,
            first.window_start or 0,
        )

    def record_auth_failure(self, client_id: str, source: str, now: int, window: int) -> None:
        """Count a failed authentication of a registered client from a source (unknown ids
        are not stored: they cannot be broken into, and storing them would let anyone fill
        the table)."""
        params = {"client_id": client_id, "source": source, "now": now}
        self._write_client(self._sql.auth_failure, {**params, "window_start_limit": now - window})

    def clear_auth_failures(self, client_id: str, source: str) -> None:
        self._write_client(q.CLEAR_FAILURES, {"client_id": client_id, "source": source})

    def remember_assertion(self, client_id: str, jti: str, expires_at: int, now: int) -> bool:
        values = {"client_id": client_id, "jti": jti, "expires_at": expires_at, "now": now}
        return bool(self._run(self._sql.remember_assertion, values))

    def remember_dpop_proof(self, jkt: str, jti: str, expires_at: int, now: int) -> bool:
        values = {"jkt": jkt, "jti": jti, "expires_at": expires_at, "now": now}
        return bool(self._run(REMEMBER_PROOF[self.conn.dialect.name], values))

    def target_by_name(self, name: str) -> Target | None:
        rows = self._lookup(("target", name), self._sql.target_by_name, {"name": name})
        return q.target_of(rows[0]) if rows else None

    def target_by_resource(self, uri: str) -> Target | None:
        """A registered resource URI, else an NHI whose ``sub`` is that URI (two index
        lookups; the registry keeps the two namespaces apart, so at most one matches)."""
        rows = self._run(self._sql.target_by_resource, {"uri": uri})
        if not rows:
            rows = self._run(self._sql.target_by_sub, {"sub": uri})
        return q.target_of(rows[0]) if rows else None

    def nhi_by_sub(self, sub: str) -> Target | None:
        rows = self._run(q.TARGET_BY_SUB, {"sub": sub})
        return q.target_of(rows[0]) if rows else None

    @staticmethod
    def _token_values(record: IssuedRecord) -> dict[str, Any]:
        values = dict(record.__dict__)  # shallow: asdict() deep-copies, costly per request
        values["chain"] = list(record.chain)
        values["depth"] = len(record.chain)
        values["revoked_at"] = values["revocation_id"] = None
        return values

    @staticmethod
    def _audit_values(record: AuditRecord) -> dict[str, Any]:
        """Audit facts may echo hostile input (an attempted client_id): NUL, which no text
        column can hold, is replaced rather than losing the event."""
        values = {
            k: v.replace("\x00", "\ufffd") if isinstance(v, str) else v
            for k, v in record.__dict__.items()
        }
        values["chain"] = [c.replace("\x00", "\ufffd") for c in record.chain]
        return values

    def record_token(self, record: IssuedRecord) -> None:
        self.conn.execute(q.INSERT_TOKEN, self._token_values(record))

    def audit(self, record: AuditRecord) -> None:
        self.conn.execute(q.INSERT_AUDIT, self._audit_values(record))

    def record_issued(self, record: IssuedRecord, event: AuditRecord) -> None:
        if self.conn.dialect.name != "postgresql":
            self.record_token(record)
            self.audit(event)
            return
        params = {"t_" + k: v for k, v in self._token_values(record).items()}
        params.update({"a_" + k: v for k, v in self._audit_values(event).items()})
        self._run(q.INSERT_BOTH, params)

    def trusted_issuer(self, issuer: str) -> IssuerConfig | None:
        # The subject's issuer is asked before an actor token's lineage: its roots first.
        self._lock_expected_lineages()
        rows = self._lookup(("issuer", issuer), self._sql.issuer, {"issuer": issuer})
        if not rows:
            return None
        row = rows[0]
        return IssuerConfig(
            row.issuer,
            row.jwks,
            row.jwks_uri,
            tuple(row.algorithms.split()),
            tuple(row.audiences or ()),
            row.scope_mode,
            row.status,
        )

    def _lock_expected_lineages(self) -> None:
        """Lock the roots of the lineages :meth:`expect` announced (and read the lineages) at
        the first lookup that must come after them: a lineage, or a trusted issuer (a
        revocation locks roots before issuers)."""
        if self._expected_lineages:
            expected, self._expected_lineages = self._expected_lineages, ()
            self.prefetch_lineage(expected)

    def lineage(self, jti: str, now: int) -> list[Hop]:
        """A recursive walk up ``parent_jti`` joined with actor and rule state, after locking
        the transaction's root row (a fresh statement, so it sees any revocation that held
        that lock)."""
        self._lock_expected_lineages()
        rows = self._ahead.get(("lineage", jti))
        if rows is None:
            if self._sql.lock_txn_root is not None:
                self._run(self._sql.lock_txn_root, {"jti": jti})
            rows = self._run(q.LINEAGE, {"jti": jti})
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
                rule_in_force=rule_in_force(r.rule_id, r.rule_status, r.rule_expires_at, now),
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
        rows = self._lookup(
            ("rules", actor_id, target_id),
            self._sql.rules,
            {"actor_id": actor_id, "target_id": target_id, "now": now},
        )
        targets: dict[str, set[int | None]] = {}
        first: dict[str, Any] = {}
        for r in rows:
            targets.setdefault(r.id, set()).add(r.target_id)
            first.setdefault(r.id, r)
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
                subject_issuer=r.subject_issuer,
                require_dpop=bool(r.require_dpop),
            )
            for r in first.values()
        ]

    def reported_tokens(self, jtis: list[str]) -> dict[str, ReportedToken]:
        # No stored jti holds NUL (PostgreSQL text cannot): such a jti matches nothing.
        return access_reports.reported_tokens(self.conn, [j for j in jtis if "\x00" not in j])

    def record_access_reports(self, reports: list[AccessReport]) -> None:
        access_reports.record(self.conn, reports)

    def serialize_revocations(self) -> None:
        serialize(self.conn)

    def revoke_token(self, jti: str, now: int, by: str, reason: str) -> int:
        """The cascade alone: ``by`` is the client itself, whose own event the protocol
        writes (DESIGN §8), never an administrator's."""
        result = cascade(self.conn, "token", jti, now=now, by=by, reason=reason, initiator="user")
        return result.tokens

    def revoked_since(
        self, cursor: tuple[int, str], alive_at: int, limit: int
    ) -> list[tuple[int, str, int]]:
        rid, jti = cursor
        params = {"rid": rid, "jti": jti, "now": alive_at, "limit": limit}
        rows = self.conn.execute(q.FEED, params)
        return [(int(r.revocation_id), r.jti, int(r.expires_at)) for r in rows]
