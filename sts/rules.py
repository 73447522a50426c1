"""Delegation rules administration (DESIGN §5.5): create, list, show, disable.

Part of the same service layer as :mod:`sts.registry`: takes the caller's connection, validates,
audits, and raises :class:`sts.registry.RegistryError`.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import aliased

from sts.domain import KINDS, scope_str
from sts.registry import RegistryError, audit_admin_action, invalid
from sts.rfc6749.grants import parse_scope
from sts.store.models import DelegationRule, Nhi, RuleTarget

ANY_TARGET = "*"


def parse_subject(value: str) -> tuple[str, str]:
    """``any`` | ``issuer:ISS`` | ``kind:KIND`` | ``sub:SUB`` | ``SUB``."""
    if value == "any":
        return "any", ""
    for prefix in ("issuer", "kind", "sub"):
        if value.startswith(prefix + ":"):
            rest = value[len(prefix) + 1 :]
            if not rest:
                raise invalid(f"subject {prefix}: needs a value")
            if prefix == "kind" and rest not in KINDS:
                raise invalid(f"subject kind must be one of {', '.join(KINDS)}")
            return prefix, rest
    if not value or len(value) > 2048:
        raise invalid("subject must be any, SUB, issuer:ISS or kind:KIND")
    return "sub", value


def parse_expiry(value: str | None, now: int) -> int | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid("expires must be an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise invalid("expires must carry a time zone (e.g. Z)")
    expires = int(moment.timestamp())
    if expires <= now:
        raise invalid("expires must be in the future")
    return expires


def _nhi_id(conn: Connection, name: str, what: str) -> int:
    row = conn.execute(select(Nhi.id).where(Nhi.client_id == name)).first()
    if row is None:
        raise RegistryError("not_found", f"{what} {name!r} is not a registered NHI")
    return int(row.id)


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
    if not targets:
        raise invalid("a rule needs at least one target (or '*', explicitly)")
    if max_depth is not None and not 1 <= max_depth <= 32:
        raise invalid("max depth must be between 1 and 32")
    if max_ttl is not None and max_ttl < 1:
        raise invalid("max ttl must be a positive number of seconds")
    scopes = parse_scope(scope) if scope else frozenset()
    subject_type, subject_value = parse_subject(subject)
    actor_id = _nhi_id(conn, actor, "actor")
    target_ids: set[int | None] = set()
    for name in targets:
        target_ids.add(None if name == ANY_TARGET else _nhi_id(conn, name, "target"))
    upstream_id = _nhi_id(conn, upstream, "upstream") if upstream else None
    rule_id = "rule_" + secrets.token_hex(8)
    conn.execute(
        insert(DelegationRule).values(
            id=rule_id,
            actor_id=actor_id,
            subject_type=subject_type,
            subject_value=subject_value,
            upstream_id=upstream_id,
            scopes=scope_str(set(scopes or ())),
            max_depth=max_depth,
            max_ttl=max_ttl,
            expires_at=parse_expiry(expires, now),
            status="enabled",
            created_at=now,
        )
    )
    for target_id in sorted(target_ids, key=lambda t: -1 if t is None else t):
        conn.execute(insert(RuleTarget).values(rule_id=rule_id, target_id=target_id))
    audit_admin_action(
        conn, now, admin, "admin.rule.create", rule=rule_id, actor=actor, targets=sorted(targets)
    )
    return get_rule(conn, rule_id)


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
        raise RegistryError("not_found", f"no rule {rule_id!r}")
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
