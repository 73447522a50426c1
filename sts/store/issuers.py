"""Trusted issuers in the registry (DESIGN §3), for the administrative services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from sts.store.models import TrustedIssuer


@dataclass(frozen=True)
class IssuerRecord:
    issuer: str
    jwks: dict[str, Any] | None
    jwks_uri: str | None
    algorithms: list[str]
    audiences: list[str]
    scope_mode: str
    status: str
    created_at: int


def _issuer(row: Any) -> IssuerRecord:
    return IssuerRecord(
        row.issuer,
        row.jwks,
        row.jwks_uri,
        row.algorithms.split(),
        list(row.audiences or []),
        row.scope_mode,
        row.status,
        row.created_at,
    )


class IssuerRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def find(self, issuer: str) -> IssuerRecord | None:
        row = self._conn.execute(select(TrustedIssuer).where(TrustedIssuer.issuer == issuer))
        found = row.first()
        return None if found is None else _issuer(found)

    def exists(self, issuer: str) -> bool:
        row = self._conn.execute(select(TrustedIssuer.id).where(TrustedIssuer.issuer == issuer))
        return row.first() is not None

    def all(self) -> list[IssuerRecord]:
        rows = self._conn.execute(select(TrustedIssuer).order_by(TrustedIssuer.issuer))
        return [_issuer(r) for r in rows]

    def update(
        self,
        *,
        issuer: str,
        jwks: dict[str, Any] | None,
        jwks_uri: str | None,
        algorithms: list[str],
        audiences: list[str],
        scope_mode: str,
    ) -> None:
        """New keys and settings for a trusted issuer (after its keys rotate)."""
        self._conn.execute(
            update(TrustedIssuer)
            .where(TrustedIssuer.issuer == issuer)
            .values(
                jwks=jwks,
                jwks_uri=jwks_uri,
                algorithms=" ".join(algorithms),
                audiences=audiences,
                scope_mode=scope_mode,
            )
        )

    def set_status(self, issuer: str, status: str) -> None:
        self._conn.execute(
            update(TrustedIssuer).where(TrustedIssuer.issuer == issuer).values(status=status)
        )

    def delete(self, issuer: str) -> None:
        self._conn.execute(delete(TrustedIssuer).where(TrustedIssuer.issuer == issuer))

    def insert(
        self,
        *,
        issuer: str,
        jwks: dict[str, Any] | None,
        jwks_uri: str | None,
        algorithms: list[str],
        audiences: list[str],
        scope_mode: str,
        now: int,
    ) -> None:
        """A newly trusted, active issuer."""
        self._conn.execute(
            insert(TrustedIssuer).values(
                status="active",
                created_at=now,
                issuer=issuer,
                jwks=jwks,
                jwks_uri=jwks_uri,
                algorithms=" ".join(algorithms),
                audiences=audiences,
                scope_mode=scope_mode,
            )
        )
