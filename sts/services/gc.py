"""Housekeeping: drop lineage rows long past expiry (DESIGN §9).

Life only shortens along a chain, so a row expired longer than the retention has no live
descendant that would still need it to walk up its lineage. Audit events keep their own copy
of every fact they record and are never touched here; nor are access reports, which keep
their token's ``jti``, ``txn``, subject and chain (``audit show`` still lists them under the
hop its ``token.issued`` event tells).
"""

from __future__ import annotations

from collections.abc import Callable

from sts.store.admin import StoreFactory

BATCH = 5_000


def expired_lineage(open_store: StoreFactory, cutoff: int) -> int:
    with open_store() as store:
        return store.housekeeping.expired_lineage(cutoff)


def collect(
    open_store: StoreFactory,
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
        with open_store() as store:
            done = store.housekeeping.remove_expired_lineage(cutoff, batch)
        if not done:
            break
        removed += done
        if progress is not None:
            progress(done)
    with open_store() as store:
        assertions = store.housekeeping.remove_used_assertions(now)
        proofs = store.housekeeping.remove_used_dpop_proofs(now)
    return {
        "lineage_rows": removed,
        "assertion_jtis": assertions,
        "dpop_proof_jtis": proofs,
        "cutoff": cutoff,
    }
