"""The statements of the protocol store, each built once at import with bound parameters
(building a SQLAlchemy statement costs more than running it), and their PostgreSQL compiled
forms. :class:`sts.store.sql.SqlStore` runs them.

Reads made for a decision take ``FOR SHARE`` row locks on PostgreSQL (the client's NHI and the
target's, the transaction's root token, the issuer, the rules), in the order a revocation
takes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg.pq import ExecStatus
from sqlalchemy import JSON, and_, bindparam, case, delete, func, insert, literal, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased

from sts.core.domain import MAX_LINEAGE, Target
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

TARGET_COLUMNS = (Nhi.id, Nhi.client_id, Nhi.sub, Nhi.status, Nhi.kind)
TARGET_BY_NAME = select(*TARGET_COLUMNS).where(Nhi.client_id == bindparam("name"))
TARGET_BY_SUB = select(*TARGET_COLUMNS).where(Nhi.sub == bindparam("sub"))
TARGET_BY_RESOURCE = (
    select(*TARGET_COLUMNS)
    .join(NhiResource, NhiResource.nhi_id == Nhi.id)
    .where(NhiResource.uri == bindparam("uri"))
)


def lineage_walk(seed: Any) -> Any:
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


def rules_of(actor_id: Any, target_id: Any) -> Any:
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
class Statements:
    client: Any
    issuer: Any
    rules: Any
    #: The next hop, named by ``audience`` or by ``resource`` (a resource URI, else a
    #: ``sub``): held shared, so that disabling it waits for a token addressed to it.
    target_by_name: Any
    target_by_resource: Any
    target_by_sub: Any
    lock_txn_root: Any | None
    remember_assertion: Any
    auth_failure: Any
    prefetch: Any | None


def statements_for(dialect: str) -> Statements:
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
        .outerjoin(
            AuthFailure,
            and_(AuthFailure.client_id == Nhi.client_id, AuthFailure.source == bindparam("source")),
        )
        .where(Nhi.client_id == bindparam("client_id"))
    )
    root = select(IssuedToken.txn).where(IssuedToken.jti == bindparam("jti")).scalar_subquery()
    dialect_insert = (postgresql if lock else sqlite).insert
    upsert = dialect_insert(ClientAssertionJti)
    fresh = AuthFailure.window_start < bindparam("window_start_limit")
    failure = dialect_insert(AuthFailure).from_select(
        ["client_id", "source", "window_start", "failures"],
        select(Nhi.client_id, bindparam("source"), bindparam("now"), literal(1)).where(
            Nhi.client_id == bindparam("client_id")
        ),
    )
    failure = failure.on_conflict_do_update(
        index_elements=[AuthFailure.client_id, AuthFailure.source],
        set_={
            "failures": case((fresh, 1), else_=AuthFailure.failures + 1),
            "window_start": case((fresh, bindparam("now")), else_=AuthFailure.window_start),
        },
    )
    client = shared(client, Nhi)
    issuer = shared(select(TrustedIssuer).where(TrustedIssuer.issuer == bindparam("issuer")))
    target_by_name = shared(TARGET_BY_NAME, Nhi)
    return Statements(
        client=client,
        issuer=issuer,
        rules=shared(rules_of(bindparam("actor_id"), bindparam("target_id")), DelegationRule),
        target_by_name=target_by_name,
        target_by_resource=shared(TARGET_BY_RESOURCE, Nhi),
        target_by_sub=shared(TARGET_BY_SUB, Nhi),
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
        prefetch=prefetch_of(client, issuer, target_by_name, shared) if lock else None,
    )


def prefetch_of(client: Any, issuer: Any, target: Any, shared: Any) -> Any:
    """PostgreSQL: the lookups an exchange is about to make, as one statement of JSON
    columns (one round trip instead of four). A lookup not asked for is bound to NULL and
    finds nothing. The row locks are those the single lookups take, in the same order
    (client and target NHIs, issuer, rules); rules are asked for only when no lineage lock
    follows."""

    def rows(stmt: Any, name: str) -> Any:
        sub = stmt.subquery(name)
        return select(func.json_agg(sub.table_valued())).select_from(sub).scalar_subquery()

    def nhi_id(param: str) -> Any:
        return select(Nhi.id).where(Nhi.client_id == bindparam(param)).scalar_subquery()

    rules = shared(rules_of(nhi_id("rules_actor"), nhi_id("rules_target")), DelegationRule)
    return select(
        rows(client, "c").label("client"),
        rows(issuer, "i").label("issuer"),
        rows(target, "t").label("target"),
        rows(rules, "r").label("rules"),
    )


BY_DIALECT = {name: statements_for(name) for name in ("postgresql", "sqlite")}
LINEAGE = lineage_walk(IssuedToken.jti == bindparam("jti"))
#: PostgreSQL: several lineages at once, and the root rows of their transactions locked in
#: key order (the order a revocation takes them in), in one statement.
ANY_JTI = IssuedToken.jti == func.any(bindparam("jtis"))
LINEAGES = lineage_walk(ANY_JTI)
LOCK_ROOTS = (
    select(IssuedToken.jti)
    .where(
        IssuedToken.jti
        == func.any(func.array(select(IssuedToken.txn).where(ANY_JTI).scalar_subquery()))
    )
    .order_by(IssuedToken.jti)
    .with_for_update(read=True)
)
CLEAR_FAILURES = delete(AuthFailure).where(
    AuthFailure.client_id == bindparam("client_id"), AuthFailure.source == bindparam("source")
)
INSERT_TOKEN = insert(IssuedToken)
INSERT_AUDIT = insert(AuditEvent)


def insert_both() -> Any:
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


INSERT_BOTH = insert_both()
FEED = (
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


class Compiled:
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
    def of(cls, stmt: Any, dialect: Any) -> Compiled:
        found = _COMPILED.get(id(stmt))
        if found is None:
            found = _COMPILED[id(stmt)] = cls(stmt, dialect)
        return found


#: Compiled forms of the module's prebuilt statements (which live as long as the process).
_COMPILED: dict[int, Compiled] = {}
TUPLES_OK = ExecStatus.TUPLES_OK


def target_of(row: Any) -> Target:
    return Target(row.id, row.client_id, row.sub, row.status, row.kind)
