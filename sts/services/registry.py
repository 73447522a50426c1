"""Registry administration: NHIs, their credentials and trusted issuers (DESIGN §3).

One service layer for every administrative front end (the CLI now, the admin API later), so
no rule is written twice. Functions take the connection whose transaction the caller owns,
validate their input, write an audit event naming the administrator, and raise
:class:`~sts.services.errors.ServiceError` (``NotFound``, ``Conflict``, ``Invalid``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

from jwt import PyJWKSet
from jwt.exceptions import PyJWKSetError
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from sts.core.domain import ASYMMETRIC_JWS_ALGORITHMS, GRANT_TYPES, KINDS
from sts.core.errors import InvalidScope
from sts.core.scopes import parse_scope, scope_str
from sts.core.secrets import SecretHasher, generate_secret, new_credential_id
from sts.core.token_types import CLIENT_CREDENTIALS, TOKEN_EXCHANGE
from sts.services.errors import Conflict, Invalid, NotFound
from sts.store.models import AuditEvent, Credential, Nhi, NhiResource, TrustedIssuer

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
GRANT_ALIASES = {
    "client_credentials": CLIENT_CREDENTIALS,
    "token-exchange": TOKEN_EXCHANGE,
    "token_exchange": TOKEN_EXCHANGE,
    TOKEN_EXCHANGE: TOKEN_EXCHANGE,
}
_PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
#: Scopes of the admin API: everything; read only; containment (revoke, disable) only.
ADMIN_SCOPES = ("sts:admin", "sts:audit", "sts:revoke")


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


def audit_admin_action(conn: Connection, now: int, admin: str, event: str, **detail: Any) -> None:
    """Every administrative change leaves an audit event naming the administrator."""
    conn.execute(
        insert(AuditEvent).values(
            at=now,
            event=event,
            decision="done",
            client_id=admin,
            detail=detail,
            chain=[],
            request_id="",
            reason="",
        )
    )


def _split(value: str) -> SplitResult | None:
    """The URI's parts, or ``None`` where it cannot be parsed (say, a broken IPv6 host)."""
    try:
        return urlsplit(value)
    except ValueError:
        return None


def _check_uri(value: str, what: str, allow_http: bool = True) -> str:
    parts = _split(value)
    schemes = {"https", "http"} if allow_http else {"https"}
    if (
        parts is None
        or parts.scheme not in schemes
        or not parts.netloc
        or parts.fragment
        or len(value) > 2048
    ):
        raise Invalid(f"{what} must be an absolute {'/'.join(sorted(schemes))} URL", what)
    return value


def _check_resource(value: str) -> str:
    parts = _split(value)
    if parts is None or not parts.scheme or parts.fragment or "#" in value or len(value) > 2048:
        raise Invalid(f"resource {value!r} must be an absolute URI without fragment", "resources")
    return value


def check_jwks(jwks: Any, what: str = "JWKS", field: str = "jwks") -> dict[str, Any]:
    """A public JWK Set PyJWT can use; private members are refused (RFC 7517 §5)."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise Invalid(f"{what} must be an object with a non-empty 'keys' array", field)
    for key in jwks["keys"]:
        if not isinstance(key, dict):
            raise Invalid(f"{what}: every key must be an object", field)
        if _PRIVATE_JWK_MEMBERS & set(key):
            raise Invalid(f"{what} must hold public keys only", field)
        if "kid" in key and not isinstance(key["kid"], str):
            raise Invalid(f"{what}: a kid must be a string (RFC 7517 §4.5)", field)
    try:
        PyJWKSet.from_dict(jwks)
    except (PyJWKSetError, ValueError, TypeError, KeyError) as exc:
        raise Invalid(f"{what} is not usable: {exc}", field) from None
    except Exception:  # whatever else a malformed key makes the JOSE library raise
        raise Invalid(f"{what} is not usable", field) from None
    return jwks


def load_jwks_text(text: str, what: str = "JWKS") -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        raise Invalid(f"{what} is not JSON", "jwks") from None
    return check_jwks(data, what)


def _grants(values: list[str] | None) -> list[str]:
    if not values:
        return list(GRANT_TYPES)
    out = []
    for value in values:
        if value not in GRANT_ALIASES:
            raise Invalid(f"unknown grant {value!r} (client_credentials, token-exchange)", "grants")
        out.append(GRANT_ALIASES[value])
    return sorted(set(out))


def _nhi_row(conn: Connection, name: str) -> Any:
    row = conn.execute(select(Nhi).where(Nhi.client_id == name)).first()
    if row is None:
        raise NotFound(f"no NHI named {name!r}", what="nhi")
    return row


def _credential_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        "status": row.status,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "jwks_uri": row.jwks_uri,
        "kids": [k.get("kid") for k in (row.jwks or {}).get("keys", [])],
    }


def _credentials(conn: Connection, nhi_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(Credential)
        .where(Credential.nhi_id == nhi_id)
        .order_by(Credential.created_at, Credential.id)
    ).all()
    return [_credential_dict(r) for r in rows]


def _view(conn: Connection, row: Any) -> NhiView:
    resources = (
        conn.execute(
            select(NhiResource.uri).where(NhiResource.nhi_id == row.id).order_by(NhiResource.uri)
        )
        .scalars()
        .all()
    )
    return NhiView(
        row.client_id,
        row.kind,
        row.sub,
        row.owner,
        row.status,
        row.status_reason,
        row.scopes,
        row.grants.split(),
        list(resources),
        _credentials(conn, row.id),
        row.created_at,
    )


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
    try:
        scopes = parse_scope(scope) if scope else frozenset()
    except InvalidScope:
        raise Invalid("scope must be space-separated RFC 6749 §3.3 scope tokens", "scope") from None
    if jwks is not None and jwks_uri is not None:
        raise Invalid("give either a JWKS or a JWKS URI, not both", "jwks")
    if jwks is not None:
        check_jwks(jwks)
    if jwks_uri is not None:
        _check_uri(jwks_uri, "jwks_uri")
    return _NhiSpec(
        name=name,
        kind=kind,
        owner=owner,
        sub=sub,
        scopes=scope_str(set(scopes or ())),
        grants=_grants(grants),
        resources=sorted({_check_resource(r) for r in (resources or [])}),
        jwks=jwks,
        jwks_uri=jwks_uri,
    )


def _insert_nhi(
    conn: Connection, hasher: SecretHasher, spec: _NhiSpec, now: int, admin: str
) -> tuple[NhiView, str | None]:
    taken = conn.execute(
        select(Nhi.client_id).where((Nhi.client_id == spec.name) | (Nhi.sub == spec.sub))
    ).first()
    if taken is not None:
        field_ = "name" if taken.client_id == spec.name else "sub"
        raise Conflict("an NHI with this name or sub already exists", field_, what="nhi")
    # A resource URI and an NHI's sub both name a target: neither may name another NHI's.
    if conn.execute(select(NhiResource.uri).where(NhiResource.uri == spec.sub)).first():
        raise Conflict("this sub is another NHI's resource URI", "sub", what="nhi")
    if (
        spec.resources
        and conn.execute(select(Nhi.client_id).where(Nhi.sub.in_(spec.resources))).first()
    ):
        raise Conflict("a resource URI is another NHI's sub", "resources", what="nhi")
    if (
        spec.resources
        and conn.execute(select(NhiResource.uri).where(NhiResource.uri.in_(spec.resources))).first()
        is not None
    ):
        raise Conflict("a resource URI is already registered", "resources", what="nhi")
    nhi_id = conn.execute(
        insert(Nhi)
        .values(
            client_id=spec.name,
            kind=spec.kind,
            sub=spec.sub,
            owner=spec.owner,
            status="active",
            status_reason="",
            scopes=spec.scopes,
            grants=" ".join(spec.grants),
            created_at=now,
            updated_at=now,
        )
        .returning(Nhi.id)
    ).scalar_one()
    for uri in spec.resources:
        conn.execute(insert(NhiResource).values(uri=uri, nhi_id=nhi_id))
    _, secret = _insert_credential(conn, hasher, nhi_id, now, spec.jwks, spec.jwks_uri)
    audit_admin_action(conn, now, admin, "admin.nhi.create", nhi=spec.name, kind=spec.kind)
    return _view(conn, _nhi_row(conn, spec.name)), secret


def create_nhi(
    conn: Connection,
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
    return _insert_nhi(conn, hasher, spec, now, admin)


def _same_nhi(conn: Connection, row: Any, view: NhiView, spec: _NhiSpec) -> bool:
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
    live = conn.execute(
        select(Credential.jwks, Credential.jwks_uri).where(
            Credential.nhi_id == row.id, Credential.status == "active"
        )
    ).all()
    if spec.jwks is not None:
        return any(c.jwks == spec.jwks for c in live)
    return any(c.jwks_uri == spec.jwks_uri for c in live)


def ensure_nhi(
    conn: Connection,
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
    row = conn.execute(select(Nhi).where(Nhi.client_id == name)).first()
    if row is None:
        view, secret = _insert_nhi(conn, hasher, spec, now, admin)
        return view, secret, True
    view = _view(conn, row)
    if not _same_nhi(conn, row, view, spec):
        raise Conflict("an NHI with this name exists with other attributes", "name", what="nhi")
    return view, None, False


def bootstrap_admin(
    conn: Connection, hasher: SecretHasher, *, name: str, now: int, admin: str, owner: str = ""
) -> tuple[NhiView, str]:
    """Register an administrator of the admin API: a service NHI that may only use
    ``client_credentials``, holding every admin scope, authenticating by a generated secret
    (returned once)."""
    view, secret = create_nhi(
        conn,
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


def get_nhi(conn: Connection, name: str) -> NhiView:
    return _view(conn, _nhi_row(conn, name))


def list_nhis(
    conn: Connection,
    *,
    kind: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[NhiView], int]:
    query = select(Nhi)
    if kind:
        query = query.where(Nhi.kind == kind)
    if status:
        query = query.where(Nhi.status == status)
    total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = conn.execute(query.order_by(Nhi.client_id).limit(limit).offset(offset)).all()
    return [_view(conn, r) for r in rows], int(total)


def set_nhi_status(
    conn: Connection, name: str, *, status: str, reason: str, now: int, admin: str
) -> NhiView:
    if status not in ("active", "disabled"):
        raise Invalid("status must be active or disabled", "status")
    if status == "disabled" and not reason.strip():
        raise Invalid("a reason is required to disable an NHI", "reason")
    row = _nhi_row(conn, name)
    conn.execute(
        update(Nhi)
        .where(Nhi.id == row.id)
        .values(status=status, status_reason=reason if status == "disabled" else "", updated_at=now)
    )
    audit_admin_action(
        conn,
        now,
        admin,
        "admin.nhi.disable" if status == "disabled" else "admin.nhi.enable",
        nhi=name,
        reason=reason,
    )
    return get_nhi(conn, name)


_FAMILIES = {"secret": ("secret",), "jwks": ("jwks", "jwks_uri"), "jwks_uri": ("jwks", "jwks_uri")}


def _insert_credential(
    conn: Connection,
    hasher: SecretHasher,
    nhi_id: int,
    now: int,
    jwks: dict[str, Any] | None,
    jwks_uri: str | None,
) -> tuple[str, str | None]:
    """A new live credential: the JWKS, the JWKS URI, or else a generated secret (returned)."""
    cred_id, secret = new_credential_id(), None
    values: dict[str, Any] = {"id": cred_id, "nhi_id": nhi_id, "status": "active"}
    if jwks is not None:
        values.update(type="jwks", jwks=jwks)
    elif jwks_uri is not None:
        values.update(type="jwks_uri", jwks_uri=jwks_uri)
    else:
        secret = generate_secret()
        values.update(type="secret", secret_hash=hasher.hash(secret))
    conn.execute(insert(Credential).values(created_at=now, **values))
    return cred_id, secret


def add_credential(
    conn: Connection,
    hasher: SecretHasher,
    name: str,
    *,
    now: int,
    admin: str,
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    replace: bool = False,
    grace: int = 0,
) -> tuple[dict[str, Any], str | None]:
    """Add a credential: a JWKS, a JWKS URI, or (neither given) a generated secret, returned
    once. With ``replace``, the live credentials of the same family (secrets for a secret,
    keys for a JWKS or JWKS URI) stop working after ``grace`` seconds (0: at once), so a
    rotation needs no downtime."""
    if grace < 0:
        raise Invalid("grace must not be negative", "grace")
    if jwks is not None and jwks_uri is not None:
        raise Invalid("give either a JWKS or a JWKS URI, not both", "jwks")
    if jwks is not None:
        check_jwks(jwks)
    if jwks_uri is not None:
        _check_uri(jwks_uri, "jwks_uri")
    row = _nhi_row(conn, name)
    kind = "jwks" if jwks is not None else "jwks_uri" if jwks_uri is not None else "secret"
    if replace:
        old = (
            Credential.nhi_id == row.id,
            Credential.type.in_(_FAMILIES[kind]),
            Credential.status == "active",
        )
        if grace == 0:
            conn.execute(update(Credential).where(*old).values(status="revoked", revoked_at=now))
        else:
            conn.execute(
                update(Credential)
                .where(*old)
                .where((Credential.expires_at.is_(None)) | (Credential.expires_at > now + grace))
                .values(expires_at=now + grace)
            )
    cred_id, secret = _insert_credential(conn, hasher, row.id, now, jwks, jwks_uri)
    if replace:
        audit_admin_action(
            conn, now, admin, "admin.credential.rotate", nhi=name, credential=cred_id, grace=grace
        )
    else:
        audit_admin_action(
            conn, now, admin, "admin.credential.add", nhi=name, credential=cred_id, type=kind
        )
    return get_credential(conn, name, cred_id), secret


def rotate_secret(
    conn: Connection, hasher: SecretHasher, name: str, *, now: int, admin: str, grace: int = 3600
) -> tuple[str, str]:
    """Add a new secret; live secrets keep working for ``grace`` seconds (0: stop now)."""
    cred, secret = add_credential(
        conn, hasher, name, now=now, admin=admin, replace=True, grace=grace
    )
    assert secret is not None
    return cred["id"], secret


def list_credentials(conn: Connection, name: str) -> list[dict[str, Any]]:
    """An NHI's credentials, oldest first (never a secret or its hash)."""
    return _credentials(conn, _nhi_row(conn, name).id)


def get_credential(conn: Connection, name: str, credential_id: str) -> dict[str, Any]:
    """One credential of this NHI; a credential of another NHI is not found."""
    row = conn.execute(
        select(Credential)
        .join(Nhi, Nhi.id == Credential.nhi_id)
        .where(Nhi.client_id == name, Credential.id == credential_id)
    ).first()
    if row is None:
        _nhi_row(conn, name)
        raise NotFound(f"NHI {name!r} has no credential {credential_id!r}", what="credential")
    return _credential_dict(row)


def add_issuer(
    conn: Connection,
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
    if conn.execute(select(TrustedIssuer.id).where(TrustedIssuer.issuer == issuer)).first():
        raise Conflict("this issuer is already trusted", "issuer", what="issuer")
    conn.execute(insert(TrustedIssuer).values(status="active", created_at=now, **spec))
    audit_admin_action(conn, now, admin, "admin.issuer.add", issuer=issuer)
    return get_issuer(conn, issuer)


def _issuer_spec(
    issuer: str,
    jwks: dict[str, Any] | None,
    jwks_uri: str | None,
    audiences: list[str] | None,
    algorithms: list[str] | None,
    scope_mode: str,
) -> dict[str, Any]:
    """The validated columns of a trusted issuer."""
    parts = _split(issuer)
    if len(issuer) > 2048 or parts is None or not parts.scheme:
        raise Invalid("issuer must be an absolute URI", "issuer")
    if (jwks is None) == (jwks_uri is None):
        raise Invalid("give exactly one of a JWKS or a JWKS URI", "jwks")
    if jwks is not None:
        check_jwks(jwks)
    if jwks_uri is not None:
        _check_uri(jwks_uri, "jwks_uri")
    algs = algorithms or ["ES256", "RS256", "EdDSA"]
    bad = [a for a in algs if a not in ASYMMETRIC_JWS_ALGORITHMS]
    if bad:
        raise Invalid(
            f"algorithm {bad[0]!r} not allowed (asymmetric JWS algorithms only)", "algorithms"
        )
    if scope_mode not in ("rule", "cap"):
        raise Invalid("scope mode must be 'rule' or 'cap'", "scope_mode")
    return {
        "issuer": issuer,
        "jwks": jwks,
        "jwks_uri": jwks_uri,
        "algorithms": " ".join(algs),
        "audiences": list(audiences or []),
        "scope_mode": scope_mode,
    }


def ensure_issuer(
    conn: Connection,
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
    row = conn.execute(select(TrustedIssuer).where(TrustedIssuer.issuer == issuer)).first()
    if row is None:
        return (
            add_issuer(
                conn,
                issuer=issuer,
                now=now,
                admin=admin,
                jwks=jwks,
                jwks_uri=jwks_uri,
                audiences=audiences,
                algorithms=algorithms,
                scope_mode=scope_mode,
            ),
            True,
        )
    same = (
        row.jwks == spec["jwks"]
        and row.jwks_uri == spec["jwks_uri"]
        and set(row.algorithms.split()) == set(spec["algorithms"].split())
        and set(row.audiences or []) == set(spec["audiences"])
        and row.scope_mode == spec["scope_mode"]
    )
    if not same:
        raise Conflict(
            "this issuer is already trusted with other settings", "issuer", what="issuer"
        )
    return _issuer_dict(row), False


def _issuer_dict(row: Any) -> dict[str, Any]:
    return {
        "issuer": row.issuer,
        "jwks_uri": row.jwks_uri,
        "kids": [k.get("kid") for k in (row.jwks or {}).get("keys", [])],
        "algorithms": row.algorithms.split(),
        "audiences": list(row.audiences or []),
        "scope_mode": row.scope_mode,
        "status": row.status,
        "created_at": row.created_at,
    }


def get_issuer(conn: Connection, issuer: str) -> dict[str, Any]:
    row = conn.execute(select(TrustedIssuer).where(TrustedIssuer.issuer == issuer)).first()
    if row is None:
        raise NotFound("no such trusted issuer", what="issuer")
    return _issuer_dict(row)


def list_issuers(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(TrustedIssuer).order_by(TrustedIssuer.issuer)).all()
    return [_issuer_dict(r) for r in rows]
