"""Bulk seeding of lineage rows, for scale tests and benchmarks (not used by the server)."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from sqlalchemy import insert
from sqlalchemy.engine import Connection

from sts.store.models import IssuedToken

BATCH = 5_000


def seed_transaction(
    conn: Connection,
    *,
    size: int,
    now: int,
    fanout: int = 10,
    actor_id: int | None = None,
    client_id: str = "seed",
    progress: Callable[[int], object] | None = None,
) -> tuple[str, list[str]]:
    """Insert one transaction of ``size`` tokens: a root and a tree of descendants with
    ``fanout`` children per token (breadth first). Returns the root jti and all jtis."""
    root = secrets.token_urlsafe(18)
    jtis, depths = [root], [0]
    rows = [_row(root, None, root, 0, now, actor_id, client_id)]
    parent_index = 0
    while len(jtis) < size:
        parent, depth = jtis[parent_index], depths[parent_index] + 1
        for _ in range(min(fanout, size - len(jtis))):
            jti = secrets.token_urlsafe(18)
            jtis.append(jti)
            depths.append(depth)
            rows.append(_row(jti, parent, root, depth, now, actor_id, client_id))
        parent_index += 1
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        conn.execute(insert(IssuedToken), chunk)
        if progress is not None:
            progress(len(chunk))
    return root, jtis


def _row(
    jti: str,
    parent: str | None,
    txn: str,
    depth: int,
    now: int,
    actor_id: int | None,
    client_id: str,
) -> dict[str, object]:
    return {
        "jti": jti,
        "parent_jti": parent,
        "txn": txn,
        "grant_type": "seed",
        "subject": "seed-subject",
        "subject_issuer": "seed",
        "actor_id": actor_id,
        "client_id": client_id,
        "credential_id": None,
        "target": "seed",
        "scope": "",
        "rule_id": None,
        "chain": [],
        "depth": depth,
        "issued_at": now,
        "expires_at": now + 3600,
        "revoked_at": None,
        "revocation_id": None,
    }
