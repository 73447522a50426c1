"""An NHI's credentials (DESIGN §3): generated secrets, JWK Sets and JWKS URIs, several live
at once so that rotation never needs downtime."""

from __future__ import annotations

from typing import Any

from sts.core.secrets import SecretHasher, generate_secret, new_credential_id
from sts.services.admin import audit_admin_action, nhi_named
from sts.services.errors import Invalid, NotFound
from sts.services.fields import check_keys
from sts.store.admin import AdminStore
from sts.store.registry import CredentialRecord

#: The credentials a new one of each type replaces: secrets replace secrets, keys keys.
FAMILIES = {"secret": ("secret",), "jwks": ("jwks", "jwks_uri"), "jwks_uri": ("jwks", "jwks_uri")}


def as_dict(record: CredentialRecord) -> dict[str, Any]:
    """A credential as administrators see it (never a secret or its hash)."""
    return {
        "id": record.id,
        "type": record.type,
        "status": record.status,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "jwks_uri": record.jwks_uri,
        "kids": [k.get("kid") for k in (record.jwks or {}).get("keys", [])],
    }


def of_nhi(store: AdminStore, nhi_id: int) -> list[dict[str, Any]]:
    return [as_dict(r) for r in store.credentials.of_nhi(nhi_id)]


def issue(
    store: AdminStore,
    hasher: SecretHasher,
    nhi_id: int,
    now: int,
    jwks: dict[str, Any] | None,
    jwks_uri: str | None,
) -> tuple[str, str | None]:
    """A new live credential: the JWKS, the JWKS URI, or else a generated secret (returned)."""
    credential_id, secret = new_credential_id(), None
    if jwks is not None:
        store.credentials.insert(credential_id, nhi_id, now, type="jwks", jwks=jwks)
    elif jwks_uri is not None:
        store.credentials.insert(credential_id, nhi_id, now, type="jwks_uri", jwks_uri=jwks_uri)
    else:
        secret = generate_secret()
        store.credentials.insert(
            credential_id, nhi_id, now, type="secret", secret_hash=hasher.hash(secret)
        )
    return credential_id, secret


def add_credential(
    store: AdminStore,
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
    check_keys(jwks, jwks_uri)
    nhi = nhi_named(store, name)
    kind = "jwks" if jwks is not None else "jwks_uri" if jwks_uri is not None else "secret"
    if replace and grace == 0:
        store.credentials.revoke_live(nhi.id, FAMILIES[kind], now)
    elif replace:
        store.credentials.expire_live(nhi.id, FAMILIES[kind], now + grace)
    credential_id, secret = issue(store, hasher, nhi.id, now, jwks, jwks_uri)
    if replace:
        audit_admin_action(
            store,
            now,
            admin,
            "admin.credential.rotate",
            nhi=name,
            credential=credential_id,
            grace=grace,
        )
    else:
        audit_admin_action(
            store,
            now,
            admin,
            "admin.credential.add",
            nhi=name,
            credential=credential_id,
            type=kind,
        )
    return get_credential(store, name, credential_id), secret


def rotate_secret(
    store: AdminStore, hasher: SecretHasher, name: str, *, now: int, admin: str, grace: int = 3600
) -> tuple[str, str]:
    """Add a new secret; live secrets keep working for ``grace`` seconds (0: stop now)."""
    cred, secret = add_credential(
        store, hasher, name, now=now, admin=admin, replace=True, grace=grace
    )
    assert secret is not None
    return cred["id"], secret


def list_credentials(store: AdminStore, name: str) -> list[dict[str, Any]]:
    """An NHI's credentials, oldest first (never a secret or its hash)."""
    return of_nhi(store, nhi_named(store, name).id)


def get_credential(store: AdminStore, name: str, credential_id: str) -> dict[str, Any]:
    """One credential of this NHI; a credential of another NHI is not found."""
    found = store.credentials.find(name, credential_id)
    if found is None:
        nhi_named(store, name)
        raise NotFound(f"NHI {name!r} has no credential {credential_id!r}", what="credential")
    return as_dict(found)
