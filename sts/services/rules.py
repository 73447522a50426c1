"""Delegation rules (DESIGN §5.5): create, list, show, disable.

Like every administrative service: it takes the store of the caller's transaction,
validates, audits, and refuses with a :class:`sts.services.errors.ServiceError`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sts.core.domain import KINDS
from sts.services.admin import audit_admin_action
from sts.services.errors import Conflict, Invalid, NotFound
from sts.services.fields import normal_scope, split_uri
from sts.store.admin import AdminStore
from sts.store.rules import ANY_TARGET, RuleRecord, RuleTerms

#: Largest ``max_ttl`` a rule can store (a 32-bit column); the global maximum applies too.
MAX_TTL = 2**31 - 1
#: The latest expiry a rule can have, 9999-12-31T23:59:59Z: any later has no ISO 8601 date.
MAX_EXPIRY = 253_402_300_799


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


def parse_subject_issuer(value: str | None, subject_type: str) -> str | None:
    """The trusted issuer a ``sub`` subject comes from (DESIGN §3: rules match external
    subjects by issuer and ``sub``); ``None``: the subject is an NHI of this STS."""
    if value is None:
        return None
    if subject_type != "sub":
        raise Invalid("a subject issuer goes only with a sub:SUB subject", "subject_issuer")
    parts = split_uri(value)
    if len(value) > 2048 or parts is None or not parts.scheme or value != value.strip():
        raise Invalid("subject issuer must be an absolute URI", "subject_issuer")
    return value


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
    if expires > MAX_EXPIRY:
        raise Invalid("expires must be before the year 10000 (UTC)", "expires")
    return expires


def _nhi_id(store: AdminStore, name: str, what: str, field: str) -> int:
    found = store.nhis.id_of(name)
    if found is None:
        raise NotFound(f"{what} {name!r} is not a registered NHI", field)
    return found


@dataclass(frozen=True)
class _RuleSpec:
    """A validated rule: the names it was given, and its terms with their NHIs' ids."""

    actor: str
    targets: list[str]
    terms: RuleTerms


def _rule_spec(
    store: AdminStore,
    *,
    actor: str,
    targets: list[str],
    scope: str,
    now: int,
    subject: str,
    subject_issuer: str | None,
    upstream: str | None,
    max_depth: int | None,
    max_ttl: int | None,
    expires: str | None,
    require_dpop: bool = False,
) -> _RuleSpec:
    if not targets:
        raise Invalid("a rule needs at least one target (or '*', explicitly)", "targets")
    if max_depth is not None and not 1 <= max_depth <= 32:
        raise Invalid("max depth must be between 1 and 32", "max_depth")
    if max_ttl is not None and not 1 <= max_ttl <= MAX_TTL:
        raise Invalid(f"max ttl must be between 1 and {MAX_TTL} seconds", "max_ttl")
    scopes = normal_scope(scope)
    subject_type, subject_value = parse_subject(subject)
    issuer = parse_subject_issuer(subject_issuer, subject_type)
    expires_at = parse_expiry(expires, now)
    actor_id = _nhi_id(store, actor, "actor", "actor")
    target_ids: set[int | None] = set()
    for name in targets:
        target_ids.add(None if name == ANY_TARGET else _nhi_id(store, name, "target", "targets"))
    upstream_id = _nhi_id(store, upstream, "upstream", "upstream") if upstream else None
    terms = RuleTerms(
        actor_id=actor_id,
        target_ids=frozenset(target_ids),
        subject_type=subject_type,
        subject_value=subject_value,
        subject_issuer=issuer,
        upstream_id=upstream_id,
        scopes=scopes,
        max_depth=max_depth,
        max_ttl=max_ttl,
        expires_at=expires_at,
        require_dpop=require_dpop,
    )
    return _RuleSpec(actor, sorted(set(targets)), terms)


def _insert_rule(
    store: AdminStore, spec: _RuleSpec, now: int, admin: str, rule_id: str | None = None
) -> dict[str, Any]:
    rule_id = rule_id or "rule_" + secrets.token_hex(8)
    if store.rules.find(rule_id) is not None:
        raise Conflict(f"a rule {rule_id!r} already exists", "id", what="rule")
    store.rules.insert(rule_id, spec.terms, now)
    audit_admin_action(
        store, now, admin, "admin.rule.create", rule=rule_id, actor=spec.actor, targets=spec.targets
    )
    return get_rule(store, rule_id)


def create_rule(
    store: AdminStore,
    *,
    actor: str,
    targets: list[str],
    scope: str,
    now: int,
    admin: str,
    subject: str = "any",
    subject_issuer: str | None = None,
    upstream: str | None = None,
    max_depth: int | None = None,
    max_ttl: int | None = None,
    expires: str | None = None,
    require_dpop: bool = False,
    rule_id: str | None = None,
) -> dict[str, Any]:
    """A new rule; its id is ``rule_id`` when given (a document names its rules), else
    generated."""
    spec = _rule_spec(
        store,
        actor=actor,
        targets=targets,
        scope=scope,
        now=now,
        subject=subject,
        subject_issuer=subject_issuer,
        upstream=upstream,
        max_depth=max_depth,
        max_ttl=max_ttl,
        expires=expires,
        require_dpop=require_dpop,
    )
    return _insert_rule(store, spec, now, admin, rule_id)


def ensure_rule(
    store: AdminStore,
    *,
    actor: str,
    targets: list[str],
    scope: str,
    now: int,
    admin: str,
    subject: str = "any",
    subject_issuer: str | None = None,
    upstream: str | None = None,
    max_depth: int | None = None,
    max_ttl: int | None = None,
    expires: str | None = None,
    require_dpop: bool = False,
) -> tuple[dict[str, Any], bool]:
    """Idempotent :func:`create_rule`: ``(rule, created)``. Rules have no name, so an enabled
    rule that says exactly the same (actor, targets, scope, subject and its issuer, upstream,
    limits, expiry, DPoP requirement) stands for this one and is returned instead of a duplicate."""
    spec = _rule_spec(
        store,
        actor=actor,
        targets=targets,
        scope=scope,
        now=now,
        subject=subject,
        subject_issuer=subject_issuer,
        upstream=upstream,
        max_depth=max_depth,
        max_ttl=max_ttl,
        expires=expires,
        require_dpop=require_dpop,
    )
    same = store.rules.enabled_with(spec.terms)
    if same is not None:
        return get_rule(store, same), False
    return _insert_rule(store, spec, now, admin), True


def _as_dict(rule: RuleRecord) -> dict[str, Any]:
    subject = "any" if rule.subject_type == "any" else f"{rule.subject_type}:{rule.subject_value}"
    return {
        "id": rule.id,
        "actor": rule.actor,
        "targets": rule.targets,
        "scope": rule.scopes,
        "subject": subject,
        "subject_issuer": rule.subject_issuer,
        "upstream": rule.upstream,
        "max_depth": rule.max_depth,
        "max_ttl": rule.max_ttl,
        "expires_at": rule.expires_at,
        "require_dpop": rule.require_dpop,
        "status": rule.status,
        "created_at": rule.created_at,
    }


def get_rule(store: AdminStore, rule_id: str) -> dict[str, Any]:
    found = store.rules.find(rule_id)
    if found is None:
        raise NotFound(f"no rule {rule_id!r}", what="rule")
    return _as_dict(found)


def list_rules(
    store: AdminStore,
    *,
    actor: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    found, total = store.rules.page(actor=actor, status=status, limit=limit, offset=offset)
    return [_as_dict(r) for r in found], total


def disable_rule(
    store: AdminStore, rule_id: str, *, now: int, admin: str, reason: str = ""
) -> dict[str, Any]:
    get_rule(store, rule_id)
    # Containment (DESIGN §7): every live token the rule minted dies with its descendants.
    result = store.revocations.contain("rule", rule_id, now=now, by=admin, reason=reason)
    audit_admin_action(
        store,
        now,
        admin,
        "admin.rule.disable",
        rule=rule_id,
        reason=reason,
        tokens=result.tokens,
        revocation_id=result.revocation_id,
    )
    return get_rule(store, rule_id)


def update_rule(
    store: AdminStore,
    rule_id: str,
    *,
    actor: str,
    targets: list[str],
    scope: str,
    now: int,
    admin: str,
    subject: str = "any",
    subject_issuer: str | None = None,
    upstream: str | None = None,
    max_depth: int | None = None,
    max_ttl: int | None = None,
    expires: str | None = None,
    require_dpop: bool = False,
) -> tuple[dict[str, Any], bool]:
    """Replace what a rule says (its id and status stay): ``(rule, changed)``. Tokens it
    minted keep their (short) lives; disable the rule to revoke them."""
    before = get_rule(store, rule_id)
    spec = _rule_spec(
        store,
        actor=actor,
        targets=targets,
        scope=scope,
        now=now,
        subject=subject,
        subject_issuer=subject_issuer,
        upstream=upstream,
        max_depth=max_depth,
        max_ttl=max_ttl,
        expires=expires,
        require_dpop=require_dpop,
    )
    if store.rules.terms(rule_id) == spec.terms:
        return before, False
    store.rules.update(rule_id, spec.terms)
    audit_admin_action(
        store, now, admin, "admin.rule.update", rule=rule_id, actor=actor, targets=spec.targets
    )
    return get_rule(store, rule_id), True


def enable_rule(store: AdminStore, rule_id: str, *, now: int, admin: str) -> dict[str, Any]:
    """Enable a disabled rule: new exchanges only (the tokens it minted stay revoked)."""
    if get_rule(store, rule_id)["status"] != "enabled":
        store.rules.enable(rule_id)
        audit_admin_action(store, now, admin, "admin.rule.enable", rule=rule_id)
    return get_rule(store, rule_id)


def delete_rule(
    store: AdminStore, rule_id: str, *, now: int, admin: str, reason: str = ""
) -> dict[str, Any]:
    """Remove a rule; every live token it minted is revoked first, with its descendants."""
    get_rule(store, rule_id)
    result = store.revocations.contain("rule", rule_id, now=now, by=admin, reason=reason)
    store.rules.delete(rule_id)
    audit_admin_action(
        store, now, admin, "admin.rule.delete", rule=rule_id, reason=reason, tokens=result.tokens
    )
    return {"id": rule_id, "deleted": True, "revoked_tokens": result.tokens}
