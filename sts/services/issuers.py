"""Trusted issuers (DESIGN §3): the external issuers whose JWTs are accepted as subject
tokens, with their keys, algorithms, audiences and how their scopes count. A SPIFFE trust
domain is one too (DESIGN §12): ``spiffe://<trust-domain>`` with its JWT bundle as the JWKS
(inline, from the bundle file, or its bundle endpoint as the ``jwks_uri``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sts.core import spiffe
from sts.core.domain import ASYMMETRIC_JWS_ALGORITHMS
from sts.services.admin import audit_admin_action
from sts.services.errors import Conflict, Invalid, NotFound
from sts.services.fields import check_jwks, check_uri, split_uri
from sts.store.admin import AdminStore
from sts.store.issuers import IssuerRecord

DEFAULT_ALGORITHMS = ("ES256", "RS256", "EdDSA")


@dataclass(frozen=True)
class _IssuerSpec:
    """A validated trusted issuer."""

    issuer: str
    jwks: dict[str, Any] | None
    jwks_uri: str | None
    algorithms: list[str]
    audiences: list[str]
    scope_mode: str


def _issuer_spec(
    issuer: str,
    jwks: dict[str, Any] | None,
    jwks_uri: str | None,
    audiences: list[str] | None,
    algorithms: list[str] | None,
    scope_mode: str,
) -> _IssuerSpec:
    parts = split_uri(issuer)
    if len(issuer) > 2048 or parts is None or not parts.scheme:
        raise Invalid("issuer must be an absolute URI", "issuer")
    if issuer.startswith(spiffe.SCHEME) and not spiffe.is_trust_domain(issuer):
        raise Invalid("a SPIFFE trust domain is spiffe://<trust-domain>, without a path", "issuer")
    if (jwks is None) == (jwks_uri is None):
        raise Invalid("give exactly one of a JWKS or a JWKS URI", "jwks")
    if jwks is not None:
        check_jwks(jwks)
    if jwks_uri is not None:
        check_uri(jwks_uri, "jwks_uri")
    algs = algorithms or list(DEFAULT_ALGORITHMS)
    bad = [a for a in algs if a not in ASYMMETRIC_JWS_ALGORITHMS]
    if bad:
        raise Invalid(
            f"algorithm {bad[0]!r} not allowed (asymmetric JWS algorithms only)", "algorithms"
        )
    if scope_mode not in ("rule", "cap"):
        raise Invalid("scope mode must be 'rule' or 'cap'", "scope_mode")
    return _IssuerSpec(issuer, jwks, jwks_uri, algs, list(audiences or []), scope_mode)


def _as_dict(record: IssuerRecord) -> dict[str, Any]:
    return {
        "issuer": record.issuer,
        "jwks_uri": record.jwks_uri,
        "kids": [k.get("kid") for k in (record.jwks or {}).get("keys", [])],
        "algorithms": record.algorithms,
        "audiences": record.audiences,
        "scope_mode": record.scope_mode,
        "status": record.status,
        "created_at": record.created_at,
    }


def _insert(store: AdminStore, spec: _IssuerSpec, now: int, admin: str) -> dict[str, Any]:
    if store.issuers.exists(spec.issuer):
        raise Conflict("this issuer is already trusted", "issuer", what="issuer")
    store.issuers.insert(
        issuer=spec.issuer,
        jwks=spec.jwks,
        jwks_uri=spec.jwks_uri,
        algorithms=spec.algorithms,
        audiences=spec.audiences,
        scope_mode=spec.scope_mode,
        now=now,
    )
    audit_admin_action(store, now, admin, "admin.issuer.add", issuer=spec.issuer)
    return get_issuer(store, spec.issuer)


def add_issuer(
    store: AdminStore,
    *,
    issuer: str,
    now: int,
    admin: str,
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    audiences: list[str] | None = None,
    algorithms: list[str] | None = None,
    scope_mode: str = "rule",
) -> dict[str, Any]:
    spec = _issuer_spec(issuer, jwks, jwks_uri, audiences, algorithms, scope_mode)
    return _insert(store, spec, now, admin)


def ensure_issuer(
    store: AdminStore,
    *,
    issuer: str,
    now: int,
    admin: str,
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    audiences: list[str] | None = None,
    algorithms: list[str] | None = None,
    scope_mode: str = "rule",
) -> tuple[dict[str, Any], bool]:
    """Idempotent :func:`add_issuer`: ``(issuer, created)``. The same issuer trusted with the
    same keys, audiences, algorithms and scope mode is returned as it is; with others, it is
    a conflict."""
    spec = _issuer_spec(issuer, jwks, jwks_uri, audiences, algorithms, scope_mode)
    found = store.issuers.find(issuer)
    if found is None:
        return _insert(store, spec, now, admin), True
    same = (
        found.jwks == spec.jwks
        and found.jwks_uri == spec.jwks_uri
        and set(found.algorithms) == set(spec.algorithms)
        and set(found.audiences) == set(spec.audiences)
        and found.scope_mode == spec.scope_mode
    )
    if not same:
        raise Conflict(
            "this issuer is already trusted with other settings", "issuer", what="issuer"
        )
    return _as_dict(found), False


def get_issuer(store: AdminStore, issuer: str) -> dict[str, Any]:
    found = store.issuers.find(issuer)
    if found is None:
        raise NotFound("no such trusted issuer", what="issuer")
    return _as_dict(found)


def list_issuers(store: AdminStore) -> list[dict[str, Any]]:
    return [_as_dict(r) for r in store.issuers.all()]


def update_issuer(
    store: AdminStore,
    *,
    issuer: str,
    now: int,
    admin: str,
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    audiences: list[str] | None = None,
    algorithms: list[str] | None = None,
    scope_mode: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """New keys (after the issuer rotates them) or settings; what is not given stays.
    Returns the issuer and the fields changed."""
    found = store.issuers.find(issuer)
    if found is None:
        raise NotFound("no such trusted issuer", what="issuer")
    keys_given = jwks is not None or jwks_uri is not None
    spec = _issuer_spec(
        issuer,
        jwks if keys_given else found.jwks,
        jwks_uri if keys_given else found.jwks_uri,
        found.audiences if audiences is None else audiences,
        found.algorithms if algorithms is None else algorithms,
        found.scope_mode if scope_mode is None else scope_mode,
    )
    changed = [
        name
        for name, old, new in [
            ("jwks", found.jwks, spec.jwks),
            ("jwks_uri", found.jwks_uri, spec.jwks_uri),
            ("audiences", sorted(found.audiences), sorted(spec.audiences)),
            ("algorithms", sorted(found.algorithms), sorted(spec.algorithms)),
            ("scope_mode", found.scope_mode, spec.scope_mode),
        ]
        if old != new
    ]
    if changed:
        store.issuers.update(
            issuer=issuer,
            jwks=spec.jwks,
            jwks_uri=spec.jwks_uri,
            algorithms=spec.algorithms,
            audiences=spec.audiences,
            scope_mode=spec.scope_mode,
        )
        audit_admin_action(store, now, admin, "admin.issuer.update", issuer=issuer, fields=changed)
    return get_issuer(store, issuer), changed


def disable_issuer(
    store: AdminStore, issuer: str, *, now: int, admin: str, reason: str = ""
) -> dict[str, Any]:
    """Stop trusting an issuer: its tokens are refused, and every live token derived from
    one of them is revoked (DESIGN §7). Enabling it again allows new exchanges only."""
    if get_issuer(store, issuer)["status"] == "active":
        result = store.revocations.cascade(
            "issuer", issuer, now=now, by=admin, reason=reason, dry_run=False
        )
        audit_admin_action(
            store, now, admin, "admin.issuer.disable", issuer=issuer, tokens=result.tokens
        )
    return get_issuer(store, issuer)


def enable_issuer(store: AdminStore, issuer: str, *, now: int, admin: str) -> dict[str, Any]:
    if get_issuer(store, issuer)["status"] != "active":
        store.issuers.set_status(issuer, "active")
        audit_admin_action(store, now, admin, "admin.issuer.enable", issuer=issuer)
    return get_issuer(store, issuer)


def remove_issuer(
    store: AdminStore, issuer: str, *, now: int, admin: str, reason: str = ""
) -> dict[str, Any]:
    """Forget an issuer, revoking first every live token derived from its tokens."""
    found = get_issuer(store, issuer)
    tokens = 0
    if found["status"] == "active":
        tokens = store.revocations.cascade(
            "issuer", issuer, now=now, by=admin, reason=reason, dry_run=False
        ).tokens
    store.issuers.delete(issuer)
    audit_admin_action(store, now, admin, "admin.issuer.remove", issuer=issuer, tokens=tokens)
    return {"issuer": issuer, "removed": True, "revoked_tokens": tokens}
