"""Housekeeping: drop lineage rows long past expiry (DESIGN §9).

Life only shortens along a chain, so a row expired longer than the retention has no live
descendant that would still need it to walk up its lineage. Audit events keep their own copy
of every fact they record and are never touched here.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine

from sts.store.models import ClientAssertionJti, IssuedToken

BATCH = 5_000


def expired_lineage(engine: Engine, cutoff: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).where(IssuedToken.expires_at < cutoff)).scalar_one()
        )


def collect(
    engine: Engine,
    *,
    now: int,
    retention_seconds: int,
    batch: int = BATCH,
    progress: Callable[[int], object] | None = None,
) -> dict[str, int]:
    """Delete in short transactions of ``batch`` rows, so the registry stays writable."""
    cutoff = now - retention_seconds
    removed = 0
    while True:
        with engine.begin() as conn:
            jtis = list(
                conn.execute(
                    select(IssuedToken.jti).where(IssuedToken.expires_at < cutoff).limit(batch)
                ).scalars()
            )
            if not jtis:
                break
            conn.execute(delete(IssuedToken).where(IssuedToken.jti.in_(jtis)))
        removed += len(jtis)
        if progress is not None:
            progress(len(jtis))
    with engine.begin() as conn:
        assertions = conn.execute(
            delete(ClientAssertionJti).where(ClientAssertionJti.expires_at < now)
        ).rowcount
    return {
        "lineage_rows": removed,
        "assertion_jtis": max(int(assertions or 0), 0),
        "cutoff": cutoff,
    }
