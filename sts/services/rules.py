"""Delegation rules administration (DESIGN §5.5): create, list, show, disable.

Part of the same service layer as :mod:`sts.services.registry`: takes the caller's
connection, validates, audits, and raises :class:`sts.services.errors.ServiceError`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import aliased

from sts.core.domain import KINDS
from sts.core.errors import InvalidScope
from sts.core.scopes import parse_scope, scope_str
from sts.services.errors import Invalid, NotFound
from sts.services.registry import audit_admin_action
from sts.store.models import DelegationRule, Nhi, RuleTarget

ANY_TARGET = "*"
#: Largest ``max_ttl`` a rule can store (a 32-bit column); the global maximum applies too.
MAX_TTL = 2**31 - 1


def parse_subject(value: str) -> tuple[str, str]:
    """``any`` | ``issuer:ISS`` | ``kind:KIND`` | ``sub:SUB`` | ``SUB``."""
    if value == "any":
        return "any", ""
    if len(value) > 2048:
        raise Invalid("subject must be at most 2048 characters", "subject")
    for prefix in ("issuer", "kind", "sub"):
        if value.startswith(prefix + ":"):
            rest = value[len(prefix) + 1 :]
            if not rest:
                raise Invalid(f"subject {prefix}: needs a value", "subject")
            if prefix == "kind" and rest not in KINDS:
                raise Invalid(f"subject kind must be one of {', '.join(KINDS)}", "subject")
            return prefix, rest
    if not value:
        raise Invalid("subject must be any, SUB, issuer:ISS or kind:KIND", "subject")
    return "sub", value


def parse_expiry(value: str | None, now: int) -> int | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid("expires must be an ISO 8601 date-time", "expires") from None
    if moment.tzinfo is None:
        raise Invalid("expires must carry a time zone (e.g. Z)", "expires")
    expires = int(moment.timestamp())
    if expires <= now:
        raise Invalid("expires must be in the future", "expires")
    return expires


def _nhi_id(conn: Connection, name: str, what: str, field: str) -> int:
    row = conn.execute(select(Nhi.id).where(Nhi.client_id == name)).first()
    if row is None:
        raise NotFound(f"{what} {name!r} is not a registered NHI", field)
    return int(row.id)


@dataclass(frozen=True)
class _RuleSpec:
    """A validated rule, its NHIs resolved to ids."""

    actor: str
    targets: list[str]
    actor_id: int
    target_ids: frozenset[int | None]
    subject_type: str
    subject_value: str
    upstream_id: int | None
    scopes: str
    max_depth: int | None
    max_ttl: int | None
    expires_at: int | None


def _rule_spec(
    conn: Connection,
    *,
    actor: str,
    targets: list[str],
    scope: str,
    now: int,
    subject: str,
    upstream: str | None,
    max_depth: int | None,
    max_ttl: int | None,
    expires: str | None,
) -> _RuleSpec:
    if not targets:
        raise Invalid("a rule needs at least one target (or '*', explicitly)", "targets")
    if max_depth is not None and not 1 <= max_depth <= 32:
        raise Invalid("max depth must be between 1 and 32", "max_depth")
    if max_ttl is not None and not 1 <= max_ttl <= MAX_TTL:
        raise Invalid(f"max ttl must be between 1 and {MAX_TTL} seconds", "max_ttl")
    try:
        scopes = parse_scope(scope) if scope else frozenset()
    except InvalidScope:
        raise Invalid("scope must be space-separated RFC 6749 §3.3 scope tokens", "scope") from None
    subject_type, subject_value = parse_subject(subject)
    expires_at = parse_expiry(expires, now)
    actor_id = _nhi_id(conn, actor, "actor", "actor")
    target_ids: set[int | None] = set()
    for name in targets:
        target_ids.add(None if name == ANY_TARGET else _nhi_id(conn, name, "target", "targets"))
    upstream_id = _nhi_id(conn, upstream, "upstream", "upstream") if upstream else None
    return _RuleSpec(
        actor=actor,
        targets=sorted(set(targets)),
        actor_id=actor_id,
        target_ids=frozenset(target_ids),
        subject_type=subject_type,
        subject_value=subject_value,
        upstream_id=upstream_id,
        scopes=scope_str(set(scopes or ())),
        max_depth=max_depth,
        max_ttl=max_ttl,
        expires_at=expires_at,
    )


def _insert_rule(conn: Connection, spec: _RuleSpec, now: int, admin: str) -> dict[str, Any]:
    rule_id = "rule_" + secrets.token_hex(8)
    conn.execute(
        insert(DelegationRule).values(
            id=rule_id,
            actor_id=spec.actor_id,
            subject_type=spec.subject_type,
            subject_value=spec.subject_value,
            upstream_id=spec.upstream_id,
            scopes=spec.scopes,
            max_depth=spec.max_depth,
            max_ttl=spec.max_ttl,
            expires_at=spec.expires_at,
            status="enabled",
            created_at=now,
        )
    )
    for target_id in sorted(spec.target_ids, key=lambda t: -1 if t is None else t):
        conn.execute(insert(RuleTarget).values(rule_id=rule_id, target_id=target_id))
    audit_admin_action(
        conn, now, admin, "admin.rule.create", rule=rule_id, actor=spec.actor, targets=spec.targets
    )
    return get_rule(conn, rule_id)


def create_rule(
    conn: Connection,
    *,
    actor: str,
    targets: list[str],
    scope: str,
    now: int,
    admin: str,
    subject: str = "any",
    upstream: str | None = None,
    max_depth: int | None = None,
    max_ttl: int | None = None,
    expires: str | None = None,
) -> dict[str, Any]:
    spec = _rule_spec(
        conn,
        actor=actor,
        targets=targets,
        scope=scope,
        now=now,
        subject=subject,
        upstream=upstream,
        max_depth=max_depth,
        max_ttl=max_ttl,
        expires=expires,
    )
    return _insert_rule(conn, spec, now, admin)


def ensure_rule(
    conn: Connection,
    *,
    actor: str,
    targets: list[str],
    scope: str,
    now: int,
    admin: str,
    subject: str = "any",
    upstream: str | None = None,
    max_depth: int | None = None,
    max_ttl: int | None = None,
    expires: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Idempotent :func:`create_rule`: ``(rule, created)``. Rules have no name, so an enabled
    rule that says exactly the same (actor, targets, scope, subject, upstream, limits, expiry)
    stands for this one and is returned instead of a duplicate."""
    spec = _rule_spec(
        conn,
        actor=actor,
        targets=targets,
        scope=scope,
        now=now,
        subject=subject,
        upstream=upstream,
        max_depth=max_depth,
        max_ttl=max_ttl,
        expires=expires,
    )
    candidates = conn.execute(
        select(DelegationRule.id)
        .where(
            DelegationRule.actor_id == spec.actor_id,
            DelegationRule.status == "enabled",
            DelegationRule.subject_type == spec.subject_type,
            DelegationRule.subject_value == spec.subject_value,
            DelegationRule.scopes == spec.scopes,
            _same(DelegationRule.upstream_id, spec.upstream_id),
            _same(DelegationRule.max_depth, spec.max_depth),
            _same(DelegationRule.max_ttl, spec.max_ttl),
            _same(DelegationRule.expires_at, spec.expires_at),
        )
        .order_by(DelegationRule.created_at, DelegationRule.id)
    ).scalars()
    for rule_id in candidates:
        ids = conn.execute(select(RuleTarget.target_id).where(RuleTarget.rule_id == rule_id))
        if frozenset(ids.scalars()) == spec.target_ids:
            return get_rule(conn, rule_id), False
    return _insert_rule(conn, spec, now, admin), True


def _same(column: Any, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


def _targets(conn: Connection, rule_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {r: [] for r in rule_ids}
    rows = conn.execute(
        select(RuleTarget.rule_id, Nhi.client_id)
        .outerjoin(Nhi, Nhi.id == RuleTarget.target_id)
        .where(RuleTarget.rule_id.in_(rule_ids))
    )
    for rule_id, name in rows:
        out[rule_id].append(name or ANY_TARGET)
    return {k: sorted(v) for k, v in out.items()}


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


def _as_dict(row: Any, targets: list[str]) -> dict[str, Any]:
    subject = "any" if row.subject_type == "any" else f"{row.subject_type}:{row.subject_value}"
    return {
        "id": row.id,
        "actor": row.actor_name,
        "targets": targets,
        "scope": row.scopes,
        "subject": subject,
        "upstream": row.upstream_name,
        "max_depth": row.max_depth,
        "max_ttl": row.max_ttl,
        "expires_at": row.expires_at,
        "status": row.status,
        "created_at": row.created_at,
    }


def get_rule(conn: Connection, rule_id: str) -> dict[str, Any]:
    query, _ = _query()
    row = conn.execute(query.where(DelegationRule.id == rule_id)).first()
    if row is None:
        raise NotFound(f"no rule {rule_id!r}", what="rule")
    return _as_dict(row, _targets(conn, [rule_id])[rule_id])


def list_rules(
    conn: Connection,
    *,
    actor: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    query, actor_nhi = _query()
    if actor:
        query = query.where(actor_nhi.client_id == actor)
    if status:
        query = query.where(DelegationRule.status == status)
    total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = conn.execute(
        query.order_by(DelegationRule.created_at, DelegationRule.id).limit(limit).offset(offset)
    ).all()
    targets = _targets(conn, [r.id for r in rows])
    return [_as_dict(r, targets[r.id]) for r in rows], int(total)


def disable_rule(
    conn: Connection, rule_id: str, *, now: int, admin: str, reason: str = ""
) -> dict[str, Any]:
    get_rule(conn, rule_id)
    conn.execute(
        update(DelegationRule).where(DelegationRule.id == rule_id).values(status="disabled")
    )
    audit_admin_action(conn, now, admin, "admin.rule.disable", rule=rule_id, reason=reason)
    return get_rule(conn, rule_id)
