"""The DPoP proof replay statement (RFC 9449 §11.1), one per dialect, built once at import.

A new (key, ``jti``) is inserted; a known one is taken again only once its row has expired
(stale, not a replay). The primary key makes the check hold across every replica; ``sts gc``
clears expired rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.dialects import postgresql, sqlite

from sts.store.models import DpopProofJti


def _remember(insert: Any) -> Any:
    upsert = insert(DpopProofJti)
    return upsert.on_conflict_do_update(
        index_elements=[DpopProofJti.jkt, DpopProofJti.jti],
        set_={"expires_at": upsert.excluded.expires_at},
        where=DpopProofJti.expires_at < bindparam("now"),
    ).returning(DpopProofJti.jti)


REMEMBER_PROOF: dict[str, Any] = {
    "postgresql": _remember(postgresql.insert),
    "sqlite": _remember(sqlite.insert),
}
