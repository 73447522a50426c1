"""Registry administration: NHIs, their credentials and trusted issuers (DESIGN §3).

One service layer for every administrative front end (the CLI now, the admin API later), so
no rule is written twice. Functions take the connection whose transaction the caller owns,
validate their input, write an audit event naming the administrator, and raise
:class:`RegistryError` with a stable code (``not_found``, ``conflict``, ``invalid``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from jwt import PyJWKSet
from jwt.exceptions import PyJWKSetError
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from sts.credentials import SecretHasher, generate_secret, new_credential_id
from sts.domain import (
    ASYMMETRIC_JWS_ALGORITHMS,
    CLIENT_CREDENTIALS,
    GRANT_TYPES,
    KINDS,
    TOKEN_EXCHANGE,
    scope_str,
)
from sts.errors import InvalidScope
from sts.rfc6749.grants import parse_scope
from sts.store.models import AuditEvent, Credential, Nhi, NhiResource, TrustedIssuer

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
GRANT_ALIASES = {
    "client_credentials": CLIENT_CREDENTIALS,
    "token-exchange": TOKEN_EXCHANGE,
    "token_exchange": TOKEN_EXCHANGE,
    TOKEN_EXCHANGE: TOKEN_EXCHANGE,
}
_PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


class RegistryError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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


def invalid(message: str) -> RegistryError:
    return RegistryError("invalid", message)


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


def _check_uri(value: str, what: str, allow_http: bool = True) -> str:
    parts = urlsplit(value)
    schemes = {"https", "http"} if allow_http else {"https"}
    if parts.scheme not in schemes or not parts.netloc or parts.fragment or len(value) > 2048:
        raise invalid(f"{what} must be an absolute {'/'.join(sorted(schemes))} URL")
    return value


def _check_resource(value: str) -> str:
    parts = urlsplit(value)
    if not parts.scheme or parts.fragment or "#" in value or len(value) > 2048:
        raise invalid(f"resource {value!r} must be an absolute URI without fragment")
    return value


def check_jwks(jwks: Any, what: str = "JWKS") -> dict[str, Any]:
    """A public JWK Set PyJWT can use; private members are refused (RFC 7517 §5)."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise invalid(f"{what} must be an object with a non-empty 'keys' array")
    for key in jwks["keys"]:
        if not isinstance(key, dict):
            raise invalid(f"{what}: every key must be an object")
        if _PRIVATE_JWK_MEMBERS & set(key):
            raise invalid(f"{what} must hold public keys only")
    try:
        PyJWKSet.from_dict(jwks)
    except (PyJWKSetError, ValueError, TypeError, KeyError) as exc:
        raise invalid(f"{what} is not usable: {exc}") from None
    return jwks


def load_jwks_text(text: str, what: str = "JWKS") -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        raise invalid(f"{what} is not JSON") from None
    return check_jwks(data, what)


def _grants(values: list[str] | None) -> list[str]:
    if not values:
        return list(GRANT_TYPES)
    out = []
    for value in values:
        if value not in GRANT_ALIASES:
            raise invalid(f"unknown grant {value!r} (client_credentials, token-exchange)")
        out.append(GRANT_ALIASES[value])
    return sorted(set(out))


def _nhi_row(conn: Connection, name: str) -> Any:
    row = conn.execute(select(Nhi).where(Nhi.client_id == name)).first()
    if row is None:
        raise RegistryError("not_found", f"no NHI named {name!r}")
    return row


def _credentials(conn: Connection, nhi_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(Credential)
        .where(Credential.nhi_id == nhi_id)
        .order_by(Credential.created_at, Credential.id)
    ).all()
    return [
        {
            "id": r.id,
            "type": r.type,
            "status": r.status,
            "created_at": r.created_at,
            "expires_at": r.expires_at,
            "jwks_uri": r.jwks_uri,
            "kids": [k.get("kid") for k in (r.jwks or {}).get("keys", [])],
        }
        for r in rows
    ]


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
    if not NAME.match(name):
        raise invalid("name must be 1-128 letters, digits, '.', '_' or '-', starting alphanumeric")
    if kind not in KINDS:
        raise invalid(f"kind must be one of {', '.join(KINDS)}")
    sub = sub or name
    if len(sub) > 2048 or not sub.strip() or sub != sub.strip():
        raise invalid("sub must be a non-empty string without surrounding spaces")
    try:
        scopes = parse_scope(scope) if scope else frozenset()
    except InvalidScope:
        raise invalid("scope must be space-separated RFC 6749 §3.3 scope tokens") from None
    if jwks is not None and jwks_uri is not None:
        raise invalid("give either a JWKS or a JWKS URI, not both")
    if jwks is not None:
        check_jwks(jwks)
    if jwks_uri is not None:
        _check_uri(jwks_uri, "jwks_uri")
    resources = [_check_resource(r) for r in (resources or [])]
    taken = conn.execute(
        select(Nhi.client_id).where((Nhi.client_id == name) | (Nhi.sub == sub))
    ).first()
    if taken is not None:
        raise RegistryError("conflict", "an NHI with this name or sub already exists")
    if (
        resources
        and conn.execute(select(NhiResource.uri).where(NhiResource.uri.in_(resources))).first()
        is not None
    ):
        raise RegistryError("conflict", "a resource URI is already registered")
    nhi_id = conn.execute(
        insert(Nhi)
        .values(
            client_id=name,
            kind=kind,
            sub=sub,
            owner=owner,
            status="active",
            status_reason="",
            scopes=scope_str(set(scopes or ())),
            grants=" ".join(_grants(grants)),
            created_at=now,
            updated_at=now,
        )
        .returning(Nhi.id)
    ).scalar_one()
    for uri in sorted(set(resources)):
        conn.execute(insert(NhiResource).values(uri=uri, nhi_id=nhi_id))
    secret = None
    if jwks is not None or jwks_uri is not None:
        conn.execute(
            insert(Credential).values(
                id=new_credential_id(),
                nhi_id=nhi_id,
                type="jwks" if jwks else "jwks_uri",
                jwks=jwks,
                jwks_uri=jwks_uri,
                status="active",
                created_at=now,
            )
        )
    else:
        secret = generate_secret()
        conn.execute(
            insert(Credential).values(
                id=new_credential_id(),
                nhi_id=nhi_id,
                type="secret",
                secret_hash=hasher.hash(secret),
                status="active",
                created_at=now,
            )
        )
    audit_admin_action(conn, now, admin, "admin.nhi.create", nhi=name, kind=kind)
    return _view(conn, _nhi_row(conn, name)), secret


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
        raise invalid("status must be active or disabled")
    if status == "disabled" and not reason.strip():
        raise invalid("a reason is required to disable an NHI")
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


def rotate_secret(
    conn: Connection, hasher: SecretHasher, name: str, *, now: int, admin: str, grace: int = 3600
) -> tuple[str, str]:
    """Add a new secret; live secrets keep working for ``grace`` seconds (0: stop now)."""
    if grace < 0:
        raise invalid("grace must not be negative")
    row = _nhi_row(conn, name)
    old = Credential.nhi_id == row.id, Credential.type == "secret", Credential.status == "active"
    if grace == 0:
        conn.execute(update(Credential).where(*old).values(status="revoked", revoked_at=now))
    else:
        conn.execute(
            update(Credential)
            .where(*old)
            .where((Credential.expires_at.is_(None)) | (Credential.expires_at > now + grace))
            .values(expires_at=now + grace)
        )
    secret, cred_id = generate_secret(), new_credential_id()
    conn.execute(
        insert(Credential).values(
            id=cred_id,
            nhi_id=row.id,
            type="secret",
            secret_hash=hasher.hash(secret),
            status="active",
            created_at=now,
        )
    )
    audit_admin_action(
        conn, now, admin, "admin.credential.rotate", nhi=name, credential=cred_id, grace=grace
    )
    return cred_id, secret


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
    if len(issuer) > 2048 or not urlsplit(issuer).scheme:
        raise invalid("issuer must be an absolute URI")
    if (jwks is None) == (jwks_uri is None):
        raise invalid("give exactly one of a JWKS or a JWKS URI")
    if jwks is not None:
        check_jwks(jwks)
    if jwks_uri is not None:
        _check_uri(jwks_uri, "jwks_uri")
    algs = algorithms or ["ES256", "RS256", "EdDSA"]
    bad = [a for a in algs if a not in ASYMMETRIC_JWS_ALGORITHMS]
    if bad:
        raise invalid(f"algorithm {bad[0]!r} not allowed (asymmetric JWS algorithms only)")
    if scope_mode not in ("rule", "cap"):
        raise invalid("scope mode must be 'rule' or 'cap'")
    if conn.execute(select(TrustedIssuer.id).where(TrustedIssuer.issuer == issuer)).first():
        raise RegistryError("conflict", "this issuer is already trusted")
    conn.execute(
        insert(TrustedIssuer).values(
            issuer=issuer,
            jwks=jwks,
            jwks_uri=jwks_uri,
            algorithms=" ".join(algs),
            audiences=list(audiences or []),
            scope_mode=scope_mode,
            status="active",
            created_at=now,
        )
    )
    audit_admin_action(conn, now, admin, "admin.issuer.add", issuer=issuer)
    return get_issuer(conn, issuer)


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
        raise RegistryError("not_found", "no such trusted issuer")
    return _issuer_dict(row)


def list_issuers(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(TrustedIssuer).order_by(TrustedIssuer.issuer)).all()
    return [_issuer_dict(r) for r in rows]
