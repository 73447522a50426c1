"""NHIs and their credentials in the registry (DESIGN §3), for the administrative services.

Repositories in the store's terms: they read and write rows on the connection whose
transaction the caller owns, and answer with plain records or ``None``; what a missing row
or a taken name means to an administrator is the service layer's to say.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from sts.store.models import (
    AuthFailure,
    Credential,
    DelegationRule,
    IssuedToken,
    Nhi,
    NhiResource,
    RuleTarget,
)

#: The PostgreSQL advisory lock that serialises NHI registrations (see ``serialize_names``).
NAMESPACE_LOCK = 8_626_018


@dataclass(frozen=True)
class NhiRecord:
    id: int
    client_id: str
    kind: str
    sub: str
    owner: str
    status: str
    status_reason: str
    scopes: str
    grants: list[str]
    created_at: int


@dataclass(frozen=True)
class NameHolder:
    """An NHI holding ``name`` as its ``client_id``, its ``sub`` or a ``resource`` URI."""

    name: str
    held_as: str  # client_id | sub | resource
    client_id: str


@dataclass(frozen=True)
class CredentialRecord:
    """A credential as an administrator may see it: never a secret or its hash."""

    id: str
    type: str
    status: str
    created_at: int
    expires_at: int | None
    jwks: dict[str, Any] | None
    jwks_uri: str | None


def _nhi(row: Any) -> NhiRecord:
    return NhiRecord(
        row.id,
        row.client_id,
        row.kind,
        row.sub,
        row.owner,
        row.status,
        row.status_reason,
        row.scopes,
        row.grants.split(),
        row.created_at,
    )


def _credential(row: Any) -> CredentialRecord:
    return CredentialRecord(
        row.id, row.type, row.status, row.created_at, row.expires_at, row.jwks, row.jwks_uri
    )


class NhiRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def find(self, client_id: str) -> NhiRecord | None:
        row = self._conn.execute(select(Nhi).where(Nhi.client_id == client_id)).first()
        return None if row is None else _nhi(row)

    def id_of(self, client_id: str) -> int | None:
        row = self._conn.execute(select(Nhi.id).where(Nhi.client_id == client_id)).first()
        return None if row is None else int(row.id)

    def resources(self, nhi_id: int) -> list[str]:
        uris = self._conn.execute(
            select(NhiResource.uri).where(NhiResource.nhi_id == nhi_id).order_by(NhiResource.uri)
        ).scalars()
        return list(uris)

    def serialize_names(self) -> None:
        """One registration at a time (PostgreSQL; SQLite serialises every writer anyway): the
        namespace spans three columns no single constraint covers, so two registrations
        checked side by side could otherwise both pass. Held until the transaction ends."""
        if self._conn.dialect.name == "postgresql":
            self._conn.execute(select(func.pg_advisory_xact_lock(NAMESPACE_LOCK)))

    def name_holders(self, names: Iterable[str]) -> list[NameHolder]:
        """Every NHI holding one of ``names``, and as what: its ``client_id``, its ``sub`` or
        one of its resource URIs (each lookup an index: both columns are unique and the
        resource URI is a primary key)."""
        wanted = sorted(set(names))
        if not wanted:
            return []
        found = [
            NameHolder(r.client_id, "client_id", r.client_id)
            for r in self._conn.execute(select(Nhi.client_id).where(Nhi.client_id.in_(wanted)))
        ]
        found += [
            NameHolder(r.sub, "sub", r.client_id)
            for r in self._conn.execute(select(Nhi.sub, Nhi.client_id).where(Nhi.sub.in_(wanted)))
        ]
        found += [
            NameHolder(r.uri, "resource", r.client_id)
            for r in self._conn.execute(
                select(NhiResource.uri, Nhi.client_id)
                .join(Nhi, Nhi.id == NhiResource.nhi_id)
                .where(NhiResource.uri.in_(wanted))
            )
        ]
        return found

    def insert(
        self,
        *,
        client_id: str,
        kind: str,
        sub: str,
        owner: str,
        scopes: str,
        grants: list[str],
        resources: list[str],
        now: int,
    ) -> int:
        """A new, active NHI with its resource URIs; its id."""
        nhi_id = self._conn.execute(
            insert(Nhi)
            .values(
                client_id=client_id,
                kind=kind,
                sub=sub,
                owner=owner,
                status="active",
                status_reason="",
                scopes=scopes,
                grants=" ".join(grants),
                created_at=now,
                updated_at=now,
            )
            .returning(Nhi.id)
        ).scalar_one()
        for uri in resources:
            self._conn.execute(insert(NhiResource).values(uri=uri, nhi_id=nhi_id))
        return int(nhi_id)

    def set_status(self, nhi_id: int, status: str, reason: str, now: int) -> None:
        self._conn.execute(
            update(Nhi)
            .where(Nhi.id == nhi_id)
            .values(status=status, status_reason=reason, updated_at=now)
        )

    def update(
        self,
        nhi_id: int,
        *,
        kind: str,
        sub: str,
        owner: str,
        scopes: str,
        grants: list[str],
        resources: list[str],
        now: int,
    ) -> None:
        """New attributes and resource URIs for an NHI (its name and status stay)."""
        self._conn.execute(
            update(Nhi)
            .where(Nhi.id == nhi_id)
            .values(
                kind=kind,
                sub=sub,
                owner=owner,
                scopes=scopes,
                grants=" ".join(grants),
                updated_at=now,
            )
        )
        self._conn.execute(delete(NhiResource).where(NhiResource.nhi_id == nhi_id))
        for uri in resources:
            self._conn.execute(insert(NhiResource).values(uri=uri, nhi_id=nhi_id))

    def rules_naming(self, nhi_id: int) -> list[str]:
        """The ids of the rules that name this NHI as actor, upstream or target."""
        direct = select(DelegationRule.id).where(
            (DelegationRule.actor_id == nhi_id) | (DelegationRule.upstream_id == nhi_id)
        )
        as_target = select(RuleTarget.rule_id).where(RuleTarget.target_id == nhi_id)
        rows = self._conn.execute(direct.union(as_target)).scalars()
        return sorted(set(rows))

    def delete(self, nhi_id: int, client_id: str) -> None:
        """Remove an NHI, its credentials, resource URIs and failure counts. The lineage and
        the audit trail keep its name (``client_id``, ``chain``): only the row link goes."""
        self._conn.execute(
            update(IssuedToken).where(IssuedToken.actor_id == nhi_id).values(actor_id=None)
        )
        self._conn.execute(delete(NhiResource).where(NhiResource.nhi_id == nhi_id))
        self._conn.execute(delete(Credential).where(Credential.nhi_id == nhi_id))
        self._conn.execute(delete(AuthFailure).where(AuthFailure.client_id == client_id))
        self._conn.execute(delete(Nhi).where(Nhi.id == nhi_id))

    def page(
        self, *, kind: str | None, status: str | None, limit: int, offset: int
    ) -> tuple[list[NhiRecord], int]:
        """NHIs by ``client_id``, one page of them, and how many match in all."""
        query = select(Nhi)
        if kind:
            query = query.where(Nhi.kind == kind)
        if status:
            query = query.where(Nhi.status == status)
        total = self._conn.execute(select(func.count()).select_from(query.subquery()))
        count = int(total.scalar_one())
        rows = self._conn.execute(query.order_by(Nhi.client_id).limit(limit).offset(offset))
        return [_nhi(r) for r in rows], count


class CredentialRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def of_nhi(self, nhi_id: int) -> list[CredentialRecord]:
        """Oldest first."""
        rows = self._conn.execute(
            select(Credential)
            .where(Credential.nhi_id == nhi_id)
            .order_by(Credential.created_at, Credential.id)
        )
        return [_credential(r) for r in rows]

    def find(self, client_id: str, credential_id: str) -> CredentialRecord | None:
        """This credential if the NHI named ``client_id`` holds it."""
        row = self._conn.execute(
            select(Credential)
            .join(Nhi, Nhi.id == Credential.nhi_id)
            .where(Nhi.client_id == client_id, Credential.id == credential_id)
        ).first()
        return None if row is None else _credential(row)

    def live_keys(self, nhi_id: int) -> list[tuple[dict[str, Any] | None, str | None]]:
        """``(jwks, jwks_uri)`` of each active credential."""
        rows = self._conn.execute(
            select(Credential.jwks, Credential.jwks_uri).where(
                Credential.nhi_id == nhi_id, Credential.status == "active"
            )
        )
        return [(r.jwks, r.jwks_uri) for r in rows]

    def insert(self, credential_id: str, nhi_id: int, now: int, **secret_or_keys: Any) -> None:
        """A live credential; ``secret_or_keys`` gives its ``type`` and, by type, its
        ``secret_hash``, ``jwks`` or ``jwks_uri`` (columns not given stay NULL)."""
        self._conn.execute(
            insert(Credential).values(
                created_at=now, id=credential_id, nhi_id=nhi_id, status="active", **secret_or_keys
            )
        )

    def revoke_live(self, nhi_id: int, types: Iterable[str], now: int) -> None:
        """The NHI's live credentials of these types stop working now."""
        self._conn.execute(
            update(Credential)
            .where(*self._live(nhi_id, types))
            .values(status="revoked", revoked_at=now)
        )

    def expire_live(self, nhi_id: int, types: Iterable[str], at: int) -> None:
        """The NHI's live credentials of these types stop working at ``at`` (or sooner, if
        they already expire sooner)."""
        self._conn.execute(
            update(Credential)
            .where(*self._live(nhi_id, types))
            .where((Credential.expires_at.is_(None)) | (Credential.expires_at > at))
            .values(expires_at=at)
        )

    @staticmethod
    def _live(nhi_id: int, types: Iterable[str]) -> tuple[Any, ...]:
        return (
            Credential.nhi_id == nhi_id,
            Credential.type.in_(list(types)),
            Credential.status == "active",
        )
