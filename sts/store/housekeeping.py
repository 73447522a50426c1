"""Housekeeping of the registry (DESIGN §9): lineage rows long past expiry and the ids of
client assertions and DPoP proofs that can no longer be replayed."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection

from sts.store.models import ClientAssertionJti, DpopProofJti, IssuedToken


class HousekeepingRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def expired_lineage(self, cutoff: int) -> int:
        """How many lineage rows expired before ``cutoff``."""
        found = self._conn.execute(select(func.count()).where(IssuedToken.expires_at < cutoff))
        return int(found.scalar_one())

    def remove_expired_lineage(self, cutoff: int, batch: int) -> int:
        """Delete up to ``batch`` lineage rows expired before ``cutoff``; how many."""
        jtis = list(
            self._conn.execute(
                select(IssuedToken.jti).where(IssuedToken.expires_at < cutoff).limit(batch)
            ).scalars()
        )
        if jtis:
            self._conn.execute(delete(IssuedToken).where(IssuedToken.jti.in_(jtis)))
        return len(jtis)

    def remove_used_assertions(self, now: int) -> int:
        """Delete the remembered ids of client assertions expired by ``now``; how many."""
        removed = self._conn.execute(
            delete(ClientAssertionJti).where(ClientAssertionJti.expires_at < now)
        ).rowcount
        return max(int(removed or 0), 0)

    def remove_used_dpop_proofs(self, now: int) -> int:
        """Delete the remembered ids of DPoP proofs whose window has passed by ``now``."""
        removed = self._conn.execute(
            delete(DpopProofJti).where(DpopProofJti.expires_at < now)
        ).rowcount
        return max(int(removed or 0), 0)
