"""SQL implementation of :class:`sts.core.ports.Store`: Core statements on one connection.

Every statement the token endpoint runs is built once, at import, with bound parameters, so a
request pays for execution only (building a SQLAlchemy statement costs more than running it).
On PostgreSQL an exchange reads ahead (:meth:`SqlStore.prefetch`): its client, issuer, target
and rules in one statement, or its tokens' root locks and lineages in one statement each; any
other read is one round trip of its own.

Reads made for a decision take ``FOR SHARE`` row locks on PostgreSQL (the client's NHI, the
transaction's root token, the issuer, the rules), held until the request commits, so a
concurrent revocation either waits for the new token or is seen by the exchange (see
:mod:`sts.store.revocation`). SQLite serialises writers and needs none.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from psycopg.pq import ExecStatus
from psycopg.rows import namedtuple_row
from psycopg.types.json import Json
from sqlalchemy import JSON, and_, bindparam, case, delete, func, insert, literal, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import aliased

from sts.core.domain import MAX_LINEAGE, Client, CredentialView, Target
from sts.core.lineage import rule_in_force
from sts.core.ports import AuditRecord, ExchangeHints, Hop, IssuedRecord, IssuerConfig, RuleView
from sts.core.scopes import scope_set
from sts.store.models import (
    AuditEvent,
    AuthFailure,
    ClientAssertionJti,
    Credential,
    DelegationRule,
    IssuedToken,
    Nhi,
    NhiResource,
    RuleTarget,
    TrustedIssuer,
)
from sts.store.revocation import revoke, serialize

_TARGET_COLUMNS = (Nhi.id, Nhi.client_id, Nhi.sub, Nhi.status, Nhi.kind)
_TARGET_BY_NAME = select(*_TARGET_COLUMNS).where(Nhi.client_id == bindparam("name"))


def _lineage_walk(seed: Any) -> Any:
    """Each token matching ``seed`` and its ancestors, nearest first, with ``start`` naming
    the token whose lineage a row belongs to. The walk carries the whole rows, so every
    step is a primary-key lookup whatever the planner believes of the table's size (a join
    back to the table became a full scan while its statistics still described it empty)."""
    tokens = IssuedToken.__table__
    walk = (
        select(*tokens.c, literal(0).label("n"), tokens.c.jti.label("start"))
        .where(seed)
        .cte("walk", recursive=True)
    )
    parent = tokens.alias("parent")
    walk = walk.union_all(
        select(*parent.c, (walk.c.n + 1).label("n"), walk.c.start)
        .join(walk, parent.c.jti == walk.c.parent_jti)
        .where(walk.c.n < MAX_LINEAGE)
    )
    return (
        select(
            walk,
            Nhi.status.label("actor_status"),
            DelegationRule.status.label("rule_status"),
            DelegationRule.expires_at.label("rule_expires_at"),
        )
        .outerjoin(Nhi, Nhi.id == walk.c.actor_id)
        .outerjoin(DelegationRule, DelegationRule.id == walk.c.rule_id)
        .order_by(walk.c.start, walk.c.n)
    )


def _rules(actor_id: Any, target_id: Any) -> Any:
    """Enabled, unexpired rules of an actor naming a target (or ``*``), one row per target
    of each rule, so the whole rule comes back in one round trip."""
    upstream, named = aliased(Nhi), aliased(RuleTarget)
    matching = select(named.rule_id).where(
        or_(named.target_id == target_id, named.target_id.is_(None))
    )
    return (
        select(DelegationRule, upstream.sub.label("upstream_sub"), RuleTarget.target_id)
        .join(RuleTarget, RuleTarget.rule_id == DelegationRule.id)
        .outerjoin(upstream, upstream.id == DelegationRule.upstream_id)
        .where(
            DelegationRule.actor_id == actor_id,
            DelegationRule.status == "enabled",
            or_(DelegationRule.expires_at.is_(None), DelegationRule.expires_at > bindparam("now")),
            DelegationRule.id.in_(matching),
        )
        .order_by(DelegationRule.created_at, DelegationRule.id)
    )


@dataclass(frozen=True)
class _Statements:
    client: Any
    issuer: Any
    rules: Any
    lock_txn_root: Any | None
    remember_assertion: Any
    auth_failure: Any
    prefetch: Any | None


def _statements(dialect: str) -> _Statements:
    lock = dialect == "postgresql"

    def shared(stmt: Any, *of: Any) -> Any:
        return stmt.with_for_update(read=True, of=list(of) or None) if lock else stmt

    client = (
        select(
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
            AuthFailure.failures,
            AuthFailure.window_start,
        )
        .outerjoin(Credential, and_(Credential.nhi_id == Nhi.id, Credential.status == "active"))
        .outerjoin(AuthFailure, AuthFailure.client_id == Nhi.client_id)
        .where(Nhi.client_id == bindparam("client_id"))
    )
    root = select(IssuedToken.txn).where(IssuedToken.jti == bindparam("jti")).scalar_subquery()
    dialect_insert = (postgresql if lock else sqlite).insert
    upsert = dialect_insert(ClientAssertionJti)
    fresh = AuthFailure.window_start < bindparam("window_start_limit")
    failure = dialect_insert(AuthFailure).from_select(
        ["client_id", "window_start", "failures"],
        select(Nhi.client_id, bindparam("now"), literal(1)).where(
            Nhi.client_id == bindparam("client_id")
        ),
    )
    failure = failure.on_conflict_do_update(
        index_elements=[AuthFailure.client_id],
        set_={
            "failures": case((fresh, 1), else_=AuthFailure.failures + 1),
            "window_start": case((fresh, bindparam("now")), else_=AuthFailure.window_start),
        },
    )
    client = shared(client, Nhi)
    issuer = shared(select(TrustedIssuer).where(TrustedIssuer.issuer == bindparam("issuer")))
    return _Statements(
        client=client,
        issuer=issuer,
        rules=shared(_rules(bindparam("actor_id"), bindparam("target_id")), DelegationRule),
        lock_txn_root=(
            select(IssuedToken.jti).where(IssuedToken.jti == root).with_for_update(read=True)
            if lock
            else None
        ),
        # One statement: a new jti is inserted; a known one is taken again only once it has
        # expired (its row is stale, not a replay). RETURNING, not rowcount: psycopg reports
        # -1 for a conflict-skipping INSERT. ``sts gc`` clears expired rows.
        remember_assertion=upsert.on_conflict_do_update(
            index_elements=[ClientAssertionJti.client_id, ClientAssertionJti.jti],
            set_={"expires_at": upsert.excluded.expires_at},
            where=ClientAssertionJti.expires_at < bindparam("now"),
        ).returning(ClientAssertionJti.jti),
        auth_failure=failure,
        prefetch=_prefetch(client, issuer, shared) if lock else None,
    )


def _prefetch(client: Any, issuer: Any, shared: Any) -> Any:
    """PostgreSQL: the lookups an exchange is about to make, as one statement of JSON
    columns (one round trip instead of four). A lookup not asked for is bound to NULL and
    finds nothing. The row locks are those the single lookups take, in the same order
    (client NHI, issuer, rules); rules are asked for only when no lineage lock follows."""

    def rows(stmt: Any, name: str) -> Any:
        sub = stmt.subquery(name)
        return select(func.json_agg(sub.table_valued())).select_from(sub).scalar_subquery()

    def nhi_id(param: str) -> Any:
        return select(Nhi.id).where(Nhi.client_id == bindparam(param)).scalar_subquery()

    rules = shared(_rules(nhi_id("rules_actor"), nhi_id("rules_target")), DelegationRule)
    return select(
        rows(client, "c").label("client"),
        rows(issuer, "i").label("issuer"),
        rows(_TARGET_BY_NAME, "t").label("target"),
        rows(rules, "r").label("rules"),
    )


_BY_DIALECT = {name: _statements(name) for name in ("postgresql", "sqlite")}
_LINEAGE = _lineage_walk(IssuedToken.jti == bindparam("jti"))
#: PostgreSQL: several lineages at once, and the root rows of their transactions locked in
#: key order (the order a revocation takes them in), in one statement.
_ANY_JTI = IssuedToken.jti == func.any(bindparam("jtis"))
_LINEAGES = _lineage_walk(_ANY_JTI)
_LOCK_ROOTS = (
    select(IssuedToken.jti)
    .where(
        IssuedToken.jti
        == func.any(func.array(select(IssuedToken.txn).where(_ANY_JTI).scalar_subquery()))
    )
    .order_by(IssuedToken.jti)
    .with_for_update(read=True)
)
_TARGET_BY_SUB = select(*_TARGET_COLUMNS).where(Nhi.sub == bindparam("sub"))
_TARGET_BY_RESOURCE = (
    select(*_TARGET_COLUMNS)
    .join(NhiResource, NhiResource.nhi_id == Nhi.id)
    .where(NhiResource.uri == bindparam("uri"))
)
_CLEAR_FAILURES = delete(AuthFailure).where(AuthFailure.client_id == bindparam("client_id"))
_INSERT_TOKEN = insert(IssuedToken)
_INSERT_AUDIT = insert(AuditEvent)


def _insert_both() -> Any:
    """PostgreSQL: the lineage row and its audit event in one statement (one round trip)."""
    token = (
        insert(IssuedToken)
        .values({c.name: bindparam("t_" + c.name, type_=c.type) for c in IssuedToken.__table__.c})
        .cte("issued")
    )
    audit_columns = [c for c in AuditEvent.__table__.c if c.name != "id"]
    return (
        insert(AuditEvent)
        .values({c.name: bindparam("a_" + c.name, type_=c.type) for c in audit_columns})
        .add_cte(token)
    )


_INSERT_BOTH = _insert_both()
_FEED = (
    select(IssuedToken.revocation_id, IssuedToken.jti, IssuedToken.expires_at)
    .where(
        IssuedToken.revocation_id.is_not(None),
        or_(
            IssuedToken.revocation_id > bindparam("rid"),
            and_(IssuedToken.revocation_id == bindparam("rid"), IssuedToken.jti > bindparam("jti")),
        ),
        IssuedToken.expires_at > bindparam("now"),
    )
    .order_by(IssuedToken.revocation_id, IssuedToken.jti)
    .limit(bindparam("limit"))
)


class _Compiled:
    """A prebuilt statement compiled once for PostgreSQL, with its JSON parameters named."""

    def __init__(self, stmt: Any, dialect: Any) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql: str = compiled.string
        #: Values of the literals in the statement (``status = 'active'`` binds one, too).
        self.defaults: dict[str, Any] = {
            name: bind.value for name, bind in compiled.binds.items() if bind.value is not None
        }
        self.json = tuple(
            name for name, bind in compiled.binds.items() if isinstance(bind.type, JSON)
        )

    @classmethod
    def of(cls, stmt: Any, dialect: Any) -> _Compiled:
        found = _COMPILED.get(id(stmt))
        if found is None:
            found = _COMPILED[id(stmt)] = cls(stmt, dialect)
        return found


#: Compiled forms of the module's prebuilt statements (which live as long as the process).
_COMPILED: dict[int, _Compiled] = {}
TUPLES_OK = ExecStatus.TUPLES_OK


def _target(row: Any) -> Target:
    return Target(row.id, row.client_id, row.sub, row.status, row.kind)


class SqlStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._sql = _BY_DIALECT[conn.dialect.name]
        # On PostgreSQL the hot statements go straight to the psycopg cursor, prepared on the
        # server: a SQLAlchemy execution costs several times the statement's own client CPU.
        self._cursor: Any = None
        #: Rows fetched ahead by :meth:`prefetch`, by lookup, for this transaction.
        self._ahead: dict[tuple[Any, ...], list[Any]] = {}
        #: Own tokens whose lineages :meth:`expect` announced, read at the first walk.
        self._expected_lineages: tuple[str, ...] = ()
        if conn.dialect.name == "postgresql":
            driver = conn.connection.driver_connection
            assert driver is not None
            self._cursor = driver.cursor(row_factory=namedtuple_row)

    def _run(self, stmt: Any, params: dict[str, Any]) -> list[Any]:
        if self._cursor is not None and any(
            isinstance(v, str) and "\x00" in v for v in params.values()
        ):
            # PostgreSQL text cannot hold NUL: no stored key contains one, so a lookup or a
            # keyed upsert with such a value (hostile input) matches nothing. Anything else
            # must never be skipped silently: a token is never issued without its record.
            if stmt is _INSERT_BOTH:
                raise ValueError("NUL in a value to be stored")
            return []
        if self._cursor is None:
            result = self.conn.execute(stmt, params)
            return list(result.all()) if result.returns_rows else []
        compiled = _Compiled.of(stmt, self.conn.dialect)
        params = {**compiled.defaults, **params}
        if compiled.json:
            params = {k: Json(v) if k in compiled.json else v for k, v in params.items()}
        self._cursor.execute(compiled.sql, params, prepare=True)
        # The result's status, not ``description`` (which builds a column list per call).
        result = self._cursor.pgresult
        return self._cursor.fetchall() if result and result.status == TUPLES_OK else []

    def _lookup(self, key: tuple[Any, ...], stmt: Any, params: dict[str, Any]) -> list[Any]:
        ahead = self._ahead.get(key)
        return ahead if ahead is not None else self._run(stmt, params)

    def _write_client(self, stmt: Any, params: dict[str, Any]) -> None:
        """A write to what :meth:`client` reads: its rows read ahead are stale."""
        self._ahead = {k: v for k, v in self._ahead.items() if k[0] != "client"}
        self._run(stmt, params)

    def expect(self, hints: ExchangeHints, now: int) -> None:
        """The lock order lives here: a revocation locks transaction roots first, then
        issuers and rules. With lineages to walk, their roots are locked (all in one
        statement, in key order) at the first :meth:`lineage` asked, which the protocol asks
        only once the client is authenticated, so a stranger holding a real token never makes
        a revocation wait; issuer and rules are then left to their own lookups, after the
        roots. Without lineages, everything is read ahead at once."""
        self._expected_lineages = hints.own_jtis
        lineage = bool(hints.own_jtis)
        self.prefetch(
            client_id=hints.client_id,
            issuer=None if lineage else hints.issuer,
            target=hints.target,
            rules=not lineage,
            now=now,
        )

    def prefetch(
        self,
        *,
        client_id: str | None,
        issuer: str | None,
        target: str | None,
        rules: bool,
        now: int,
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
        }
        found = self._run(self._sql.prefetch, params)
        if not found:  # a value PostgreSQL cannot hold: the single lookups will answer
            return
        row = found[0]

        def objects(values: list[dict[str, Any]] | None) -> list[Any]:
            return [SimpleNamespace(**v) for v in values or ()]

        clients, targets = objects(row.client), objects(row.target)
        if client_id:
            self._ahead[("client", client_id)] = clients
        if issuer:
            self._ahead[("issuer", issuer)] = objects(row.issuer)
        if target:
            self._ahead[("target", target)] = targets
            if rules and clients and targets:
                self._ahead[("rules", clients[0].id, targets[0].id)] = objects(row.rules)

    def prefetch_lineage(self, jtis: tuple[str, ...]) -> None:
        if self._sql.prefetch is None or not jtis or any("\x00" in jti for jti in jtis):
            return
        self._run(_LOCK_ROOTS, {"jtis": list(jtis)})
        walked: dict[str, list[Any]] = {jti: [] for jti in jtis}
        for row in self._run(_LINEAGES, {"jtis": list(jtis)}):
            walked[row.start].append(row)
        for jti, rows in walked.items():
            self._ahead[("lineage", jti)] = rows

    def client(self, client_id: str, now: int) -> Client | None:
        rows = self._lookup(("client", client_id), self._sql.client, {"client_id": client_id})
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

    def record_auth_failure(self, client_id: str, now: int, window: int) -> None:
        """Count a failed authentication of a registered client (unknown ids are not stored:
        they cannot be broken into, and storing them would let anyone fill the table)."""
        self._write_client(
            self._sql.auth_failure,
            {"client_id": client_id, "now": now, "window_start_limit": now - window},
        )

    def clear_auth_failures(self, client_id: str) -> None:
        self._write_client(_CLEAR_FAILURES, {"client_id": client_id})

    def remember_assertion(self, client_id: str, jti: str, expires_at: int, now: int) -> bool:
        values = {"client_id": client_id, "jti": jti, "expires_at": expires_at, "now": now}
        return bool(self._run(self._sql.remember_assertion, values))

    def target_by_name(self, name: str) -> Target | None:
        rows = self._lookup(("target", name), _TARGET_BY_NAME, {"name": name})
        return _target(rows[0]) if rows else None

    def target_by_resource(self, uri: str) -> Target | None:
        """A registered resource URI, else an NHI whose ``sub`` is that URI (two index
        lookups; the registry keeps the two namespaces apart, so at most one matches)."""
        rows = self._run(_TARGET_BY_RESOURCE, {"uri": uri})
        return _target(rows[0]) if rows else self.nhi_by_sub(uri)

    def nhi_by_sub(self, sub: str) -> Target | None:
        rows = self._run(_TARGET_BY_SUB, {"sub": sub})
        return _target(rows[0]) if rows else None

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
        self.conn.execute(_INSERT_TOKEN, self._token_values(record))

    def audit(self, record: AuditRecord) -> None:
        self.conn.execute(_INSERT_AUDIT, self._audit_values(record))

    def record_issued(self, record: IssuedRecord, event: AuditRecord) -> None:
        if self.conn.dialect.name != "postgresql":
            self.record_token(record)
            self.audit(event)
            return
        params = {"t_" + k: v for k, v in self._token_values(record).items()}
        params.update({"a_" + k: v for k, v in self._audit_values(event).items()})
        self._run(_INSERT_BOTH, params)

    def trusted_issuer(self, issuer: str) -> IssuerConfig | None:
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

    def lineage(self, jti: str, now: int) -> list[Hop]:
        """A recursive walk up ``parent_jti`` joined with actor and rule state, after locking
        the transaction's root row (a fresh statement, so it sees any revocation that held
        that lock)."""
        if self._expected_lineages:
            expected, self._expected_lineages = self._expected_lineages, ()
            self.prefetch_lineage(expected)
        rows = self._ahead.get(("lineage", jti))
        if rows is None:
            if self._sql.lock_txn_root is not None:
                self._run(self._sql.lock_txn_root, {"jti": jti})
            rows = self._run(_LINEAGE, {"jti": jti})
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
            )
            for r in first.values()
        ]

    def serialize_revocations(self) -> None:
        serialize(self.conn)

    def revoke_token(self, jti: str, now: int, by: str, reason: str) -> int:
        return revoke(self.conn, "token", jti, now=now, admin=by, reason=reason).tokens

    def revoked_since(
        self, cursor: tuple[int, str], now: int, limit: int
    ) -> list[tuple[int, str, int]]:
        rid, jti = cursor
        rows = self.conn.execute(_FEED, {"rid": rid, "jti": jti, "now": now, "limit": limit})
        return [(int(r.revocation_id), r.jti, int(r.expires_at)) for r in rows]
