"""Transactions as a responder looks for them (DESIGN §8): the recent ones matching what is
known of an incident (a person, an NHI, a resource, a decision, a time window), and the live
tokens an NHI holds or is addressed by.

Each hop's state is the one judgement of :func:`sts.services.lineage.hop_states`, the same
that ``audit show`` and the chain tree make.
"""

from __future__ import annotations

from typing import Any

from sts.services import lineage
from sts.services.admin import nhi_named
from sts.services.errors import Invalid
from sts.store.admin import AdminStore

#: How many transactions a listing shows at most.
MAX_LISTED = 200
#: How many events are read to summarise one listing.
MAX_EVENTS = 10_000
DECISIONS = ("allowed", "denied")


def recent(
    store: AdminStore,
    *,
    person: str | None = None,
    nhi: str | None = None,
    resource: str | None = None,
    decision: str | None = None,
    since: int | None = None,
    until: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The most recently active transactions matching every filter given, each summarised:
    who initiated it, which NHIs acted, toward which targets, how many hops were issued and
    how many attempts were denied."""
    if decision is not None and decision not in DECISIONS:
        raise Invalid(f"decision must be one of {', '.join(DECISIONS)}")
    if since is not None and until is not None and since > until:
        raise Invalid("the window ends before it starts")
    if not 1 <= limit <= MAX_LISTED:
        raise Invalid(f"limit must be between 1 and {MAX_LISTED}")
    txns = store.audit.recent_transactions(
        subject=person,
        party=nhi,
        target=resource,
        decision=decision,
        since=since,
        until=until,
        limit=limit,
    )
    summaries: dict[str, dict[str, Any]] = {
        txn: {
            "txn": txn,
            "initiated_by": None,
            "first_at": None,
            "last_at": None,
            "actors": [],
            "targets": [],
            "hops": 0,
            "denied": 0,
        }
        for txn in txns
    }
    for event in store.audit.exchange_events(txns, MAX_EVENTS):
        summary = summaries[event.txn or ""]
        if summary["initiated_by"] is None and event.subject:
            summary["initiated_by"] = event.subject
        summary["first_at"] = summary["first_at"] or event.at
        summary["last_at"] = event.at
        if event.decision == "allowed":
            summary["hops"] += 1
        else:
            summary["denied"] += 1
        for key, value in (("actors", event.client_id), ("targets", event.target)):
            if value and value not in summary[key]:
                summary[key].append(value)
    return [summaries[txn] for txn in txns]


def live_tokens(store: AdminStore, nhi: str, *, now: int, limit: int = 100) -> list[dict[str, Any]]:
    """The tokens still in force that ``nhi`` acted in (minted for it as the client) or that
    are addressed to it, newest first; judged hop by hop like every chain read back, so a
    token below a revoked hop, or minted under a disabled rule, is not listed."""
    nhi_named(store, nhi)
    live: list[dict[str, Any]] = []
    for txn in store.lineage.live_txns_of(nhi, now, limit):
        rows = store.lineage.transaction(txn, limit=lineage.MAX_TREE_ROWS)
        states = lineage.hop_states(rows, now)
        for row in rows:
            if nhi not in (row.client_id, row.target) or states[row.jti][0] != "active":
                continue
            live.append(
                {
                    "jti": row.jti,
                    "txn": row.txn,
                    "subject": row.subject,
                    "actor": row.client_id,
                    "target": row.target,
                    "scope": row.scope,
                    "issued_at": row.issued_at,
                    "expires_at": row.expires_at,
                }
            )
    live.sort(key=lambda t: (-t["issued_at"], t["jti"]))
    return live[:limit]
