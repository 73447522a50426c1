"""Non-human identities (DESIGN §3): register, look up, list, disable and enable.

An NHI is client, actor and target at once, so its names share one namespace: no NHI's
``client_id``, ``sub`` or resource URI may name another NHI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sts.core.domain import GRANT_TYPES, KINDS
from sts.core.secrets import SecretHasher
from sts.core.token_types import CLIENT_CREDENTIALS, TOKEN_EXCHANGE
from sts.services import credentials
from sts.services.admin import ADMIN_SCOPES, audit_admin_action, nhi_named
from sts.services.errors import Conflict, Invalid
from sts.services.fields import check_keys, check_resource, normal_scope
from sts.store.admin import AdminStore
from sts.store.registry import NhiRecord

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
GRANT_ALIASES = {
    "client_credentials": CLIENT_CREDENTIALS,
    "token-exchange": TOKEN_EXCHANGE,
    "token_exchange": TOKEN_EXCHANGE,
    TOKEN_EXCHANGE: TOKEN_EXCHANGE,
}


@dataclass(frozen=True)
class NhiView:
    client_id: str
    kind: str
    sub: str
    owner: str
    status: str
    status_reason: str
    scopes: str
    grants: list[str]
    resources: list[str]
    credentials: list[dict[str, Any]] = field(default_factory=list)
    created_at: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "kind": self.kind,
            "sub": self.sub,
            "owner": self.owner,
            "status": self.status,
            "status_reason": self.status_reason,
            "scope": self.scopes,
            "grants": self.grants,
            "resources": self.resources,
            "credentials": self.credentials,
            "created_at": self.created_at,
        }


def _view(store: AdminStore, nhi: NhiRecord) -> NhiView:
    return NhiView(
        nhi.client_id,
        nhi.kind,
        nhi.sub,
        nhi.owner,
        nhi.status,
        nhi.status_reason,
        nhi.scopes,
        nhi.grants,
        store.nhis.resources(nhi.id),
        credentials.of_nhi(store, nhi.id),
        nhi.created_at,
    )


def _grants(values: list[str] | None) -> list[str]:
    if not values:
        return list(GRANT_TYPES)
    out = []
    for value in values:
        if value not in GRANT_ALIASES:
            raise Invalid(f"unknown grant {value!r} (client_credentials, token-exchange)", "grants")
        out.append(GRANT_ALIASES[value])
    return sorted(set(out))


@dataclass(frozen=True)
class _NhiSpec:
    """A validated, normalised NHI registration."""

    name: str
    kind: str
    owner: str
    sub: str
    scopes: str
    grants: list[str]
    resources: list[str]
    jwks: dict[str, Any] | None
    jwks_uri: str | None


def _nhi_spec(
    *,
    name: str,
    kind: str,
    owner: str,
    sub: str | None,
    scope: str,
    grants: list[str] | None,
    resources: list[str] | None,
    jwks: dict[str, Any] | None,
    jwks_uri: str | None,
) -> _NhiSpec:
    if not NAME.fullmatch(name):
        raise Invalid(
            "name must be 1-128 letters, digits, '.', '_' or '-', starting alphanumeric", "name"
        )
    if name.lower().startswith("sts_"):
        # The shape of a generated secret: logs and the audit trail mask it on sight.
        raise Invalid("names starting with 'sts_' are reserved", "name")
    if kind not in KINDS:
        raise Invalid(f"kind must be one of {', '.join(KINDS)}", "kind")
    if len(owner) > 255:
        raise Invalid("owner must be at most 255 characters", "owner")
    sub = sub or name
    if len(sub) > 2048 or not sub.strip() or sub != sub.strip():
        raise Invalid("sub must be a non-empty string without surrounding spaces", "sub")
    scopes = normal_scope(scope)
    check_keys(jwks, jwks_uri)
    return _NhiSpec(
        name=name,
        kind=kind,
        owner=owner,
        sub=sub,
        scopes=scopes,
        grants=_grants(grants),
        resources=sorted({check_resource(r) for r in (resources or [])}),
        jwks=jwks,
        jwks_uri=jwks_uri,
    )


#: How another NHI may hold a name, in a refusal's words, in the order refusals name them.
_HELD_AS = {"client_id": "the client_id", "sub": "the sub", "resource": "a resource URI"}


def _check_names_free(store: AdminStore, spec: _NhiSpec, itself: str | None = None) -> None:
    """One namespace (DESIGN §3): a name in ``aud``, ``sub`` or an ``act`` level always means
    one NHI, so none of the new NHI's names (its ``client_id``, its ``sub``, its resource
    URIs) may be another NHI's ``client_id``, ``sub`` or resource URI. The refusal names the
    field at fault and the NHI already holding that name."""
    names = [("name", "name", spec.name), ("sub", "sub", spec.sub)]
    names += [("resources", "resource URI", uri) for uri in spec.resources]
    holders = [
        h
        for h in store.nhis.name_holders(value for _, _, value in names)
        if h.client_id != itself  # an NHI updated keeps its own names
    ]
    order = list(_HELD_AS)
    holders.sort(key=lambda h: (order.index(h.held_as), h.client_id))
    for field_, words, value in names:
        holder = next((h for h in holders if h.name == value), None)
        if holder is None:
            continue
        if field_ == "name" and holder.held_as == "client_id":
            raise Conflict(f"an NHI named {value!r} already exists", field_, what="nhi")
        held_as, nhi = _HELD_AS[holder.held_as], holder.client_id
        raise Conflict(f"{words} {value!r} is already {held_as} of NHI {nhi!r}", field_, what="nhi")


def _insert_nhi(
    store: AdminStore, hasher: SecretHasher, spec: _NhiSpec, now: int, admin: str
) -> tuple[NhiView, str | None]:
    store.nhis.serialize_names()
    _check_names_free(store, spec)
    nhi_id = store.nhis.insert(
        client_id=spec.name,
        kind=spec.kind,
        sub=spec.sub,
        owner=spec.owner,
        scopes=spec.scopes,
        grants=spec.grants,
        resources=spec.resources,
        now=now,
    )
    _, secret = credentials.issue(store, hasher, nhi_id, now, spec.jwks, spec.jwks_uri)
    audit_admin_action(store, now, admin, "admin.nhi.create", nhi=spec.name, kind=spec.kind)
    return get_nhi(store, spec.name), secret


def create_nhi(
    store: AdminStore,
    hasher: SecretHasher,
    *,
    name: str,
    kind: str,
    now: int,
    admin: str,
    owner: str = "",
    sub: str | None = None,
    scope: str = "",
    grants: list[str] | None = None,
    resources: list[str] | None = None,
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
) -> tuple[NhiView, str | None]:
    """Register an NHI. Returns it and, when it authenticates by secret, the secret (once)."""
    spec = _nhi_spec(
        name=name,
        kind=kind,
        owner=owner,
        sub=sub,
        scope=scope,
        grants=grants,
        resources=resources,
        jwks=jwks,
        jwks_uri=jwks_uri,
    )
    return _insert_nhi(store, hasher, spec, now, admin)


def _same_nhi(store: AdminStore, nhi: NhiRecord, view: NhiView, spec: _NhiSpec) -> bool:
    if (view.kind, view.owner, view.sub, view.scopes, view.grants, view.resources) != (
        spec.kind,
        spec.owner,
        spec.sub,
        spec.scopes,
        spec.grants,
        spec.resources,
    ):
        return False
    if spec.jwks is None and spec.jwks_uri is None:
        return True
    live = store.credentials.live_keys(nhi.id)
    if spec.jwks is not None:
        return any(jwks == spec.jwks for jwks, _ in live)
    return any(jwks_uri == spec.jwks_uri for _, jwks_uri in live)


def ensure_nhi(
    store: AdminStore,
    hasher: SecretHasher,
    *,
    name: str,
    kind: str,
    now: int,
    admin: str,
    owner: str = "",
    sub: str | None = None,
    scope: str = "",
    grants: list[str] | None = None,
    resources: list[str] | None = None,
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
) -> tuple[NhiView, str | None, bool]:
    """Idempotent registration: ``(view, secret, created)``.

    An NHI of this name registered with the same attributes (kind, owner, sub, scope, grants,
    resources and, when one is given, a live credential with the same JWKS or JWKS URI) is
    returned as it is, ``created`` false and no secret (a secret is shown only once, when it
    is generated); the same name with other attributes is a conflict."""
    spec = _nhi_spec(
        name=name,
        kind=kind,
        owner=owner,
        sub=sub,
        scope=scope,
        grants=grants,
        resources=resources,
        jwks=jwks,
        jwks_uri=jwks_uri,
    )
    # Before the lookup: a registration of this name in flight is seen once it commits.
    store.nhis.serialize_names()
    nhi = store.nhis.find(name)
    if nhi is None:
        view, secret = _insert_nhi(store, hasher, spec, now, admin)
        return view, secret, True
    view = _view(store, nhi)
    if not _same_nhi(store, nhi, view, spec):
        raise Conflict("an NHI with this name exists with other attributes", "name", what="nhi")
    return view, None, False


def bootstrap_admin(
    store: AdminStore, hasher: SecretHasher, *, name: str, now: int, admin: str, owner: str = ""
) -> tuple[NhiView, str]:
    """Register an administrator of the admin API: a service NHI that may only use
    ``client_credentials``, holding every admin scope, authenticating by a generated secret
    (returned once)."""
    view, secret = create_nhi(
        store,
        hasher,
        name=name,
        kind="service",
        owner=owner,
        scope=" ".join(ADMIN_SCOPES),
        grants=[CLIENT_CREDENTIALS],
        now=now,
        admin=admin,
    )
    assert secret is not None
    return view, secret


def get_nhi(store: AdminStore, name: str) -> NhiView:
    return _view(store, nhi_named(store, name))


def list_nhis(
    store: AdminStore,
    *,
    kind: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[NhiView], int]:
    found, total = store.nhis.page(kind=kind, status=status, limit=limit, offset=offset)
    return [_view(store, nhi) for nhi in found], total


def set_nhi_status(
    store: AdminStore, name: str, *, status: str, reason: str, now: int, admin: str
) -> NhiView:
    if status not in ("active", "disabled"):
        raise Invalid("status must be active or disabled", "status")
    if status == "disabled" and not reason.strip():
        raise Invalid("a reason is required to disable an NHI", "reason")
    nhi = nhi_named(store, name)
    contained: dict[str, Any] = {}
    if status == "disabled":
        # Containment (DESIGN §7): every live token it appears in, as an actor or as the
        # audience, dies for good; enabling it again only allows new exchanges.
        result = store.revocations.contain("nhi", name, now=now, by=admin, reason=reason)
        contained = {"tokens": result.tokens, "revocation_id": result.revocation_id}
    else:
        store.nhis.set_status(nhi.id, status, "", now)
    audit_admin_action(
        store,
        now,
        admin,
        "admin.nhi.disable" if status == "disabled" else "admin.nhi.enable",
        nhi=name,
        reason=reason,
        **contained,
    )
    return get_nhi(store, name)


def _same_keys(store: AdminStore, nhi_id: int, spec: _NhiSpec) -> bool:
    """The NHI's live keys are exactly the JWKS or JWKS URI ``spec`` gives."""
    live = [(jwks, uri) for jwks, uri in store.credentials.live_keys(nhi_id) if jwks or uri]
    return live == [(spec.jwks, spec.jwks_uri)]


def update_nhi(
    store: AdminStore,
    name: str,
    *,
    now: int,
    admin: str,
    kind: str | None = None,
    owner: str | None = None,
    sub: str | None = None,
    scope: str | None = None,
    grants: list[str] | None = None,
    resources: list[str] | None = None,
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
) -> tuple[NhiView, list[str]]:
    """Change an NHI's attributes; what is not given stays. New keys (a JWKS or a JWKS URI)
    replace its live keys at once (its secrets stay). Returns it and the fields changed."""
    store.nhis.serialize_names()
    nhi = nhi_named(store, name)
    view = _view(store, nhi)
    spec = _nhi_spec(
        name=name,
        kind=view.kind if kind is None else kind,
        owner=view.owner if owner is None else owner,
        sub=view.sub if sub is None else sub,
        scope=view.scopes if scope is None else scope,
        grants=view.grants if grants is None else grants,
        resources=view.resources if resources is None else resources,
        jwks=jwks,
        jwks_uri=jwks_uri,
    )
    before = view.as_dict()
    changed = [
        f
        for f, old, new in [
            ("kind", view.kind, spec.kind),
            ("owner", view.owner, spec.owner),
            ("sub", view.sub, spec.sub),
            ("scope", view.scopes, spec.scopes),
            ("grants", view.grants, spec.grants),
            ("resources", view.resources, spec.resources),
        ]
        if old != new
    ]
    if changed:
        _check_names_free(store, spec, itself=name)
        store.nhis.update(
            nhi.id,
            kind=spec.kind,
            sub=spec.sub,
            owner=spec.owner,
            scopes=spec.scopes,
            grants=spec.grants,
            resources=spec.resources,
            now=now,
        )
    if (jwks is not None or jwks_uri is not None) and not _same_keys(store, nhi.id, spec):
        store.credentials.revoke_live(nhi.id, credentials.FAMILIES["jwks"], now)
        credentials.issue(store, _NO_SECRET, nhi.id, now, spec.jwks, spec.jwks_uri)
        changed.append("keys")
    if changed:
        audit_admin_action(
            store, now, admin, "admin.nhi.update", nhi=name, fields=changed, was=_public(before)
        )
    return get_nhi(store, name), changed


def _public(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k not in ("credentials", "created_at")}


class _NoSecret:
    """Keys are given whenever :func:`update_nhi` issues a credential: it never hashes."""

    def hash(self, secret: str) -> str:
        raise AssertionError("update_nhi issues keys only")


_NO_SECRET: Any = _NoSecret()


def delete_nhi(
    store: AdminStore, name: str, *, now: int, admin: str, revoke: bool = False, reason: str = ""
) -> dict[str, Any]:
    """Remove an NHI. Refused while a rule names it (delete or change the rule first) and,
    unless ``revoke``, while a live token it acted in or was addressed to exists; with
    ``revoke`` those tokens are revoked first (containment, DESIGN §7). The lineage and the
    audit trail keep its name."""
    store.nhis.serialize_names()
    nhi = nhi_named(store, name)
    naming = store.nhis.rules_naming(nhi.id)
    if naming:
        raise Conflict(
            f"rules name this NHI ({', '.join(naming[:5])}); delete or change them first",
            what="nhi",
        )
    live = store.revocations.cascade("nhi", name, now=now, by=admin, reason="", dry_run=True)
    revoked = 0
    if live.tokens and not revoke:
        raise Conflict(
            f"{live.tokens} live token(s) involve this NHI; revoke them first (--revoke)",
            what="nhi",
        )
    if live.tokens:
        revoked = store.revocations.contain(
            "nhi", name, now=now, by=admin, reason=reason or "deleted"
        ).tokens
    store.nhis.delete(nhi.id, name)
    audit_admin_action(
        store, now, admin, "admin.nhi.delete", nhi=name, reason=reason, tokens=revoked
    )
    return {"client_id": name, "deleted": True, "revoked_tokens": revoked}
