"""The four questions of DESIGN §8, answered from the lineage and the audit trail.

For a token or a transaction: who initiated the chain; which services, agents and tools
executed it, in order; which identities and credentials were used at each hop; what was
granted at each hop. Denied attempts and revocations are part of the answer.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sts.services import lineage
from sts.services.errors import Invalid, NotFound
from sts.store.access_reports import ReportRecord
from sts.store.admin import AdminStore
from sts.store.audit import EventRecord
from sts.store.lineage import TokenRecord
from sts.store.revocation import KINDS as REVOCATION_KINDS

MAX_ROWS = 10_000

#: Every event the audit trail records (what ``audit list --event`` may ask for).
EVENTS = frozenset(
    {
        "token.issued",
        "token.denied",
        "token.revoked",
        "introspection.denied",
        "revocation.denied",
        "feed.denied",
        "admin.denied",
        "admin.read",
        "admin.console.sign_in",
        "access_report.denied",
        "policy.evaluated",
        *(f"ssf.stream.{a}" for a in ("created", "updated", "deleted", "status", "grant")),
        "admin.credential.add",
        "admin.credential.rotate",
        *(f"admin.nhi.{a}" for a in ("create", "update", "delete", "disable", "enable")),
        *(f"admin.rule.{a}" for a in ("create", "update", "delete", "disable", "enable")),
        *(f"admin.issuer.{a}" for a in ("add", "update", "remove", "disable", "enable")),
        *(f"admin.revoke.{k}{s}" for k in REVOCATION_KINDS for s in ("", ".dry_run")),
    }
)


def _hop(row: TokenRecord, status: tuple[str, str]) -> dict[str, Any]:
    return {
        "jti": row.jti,
        "parent_jti": row.parent_jti,
        "depth": row.depth,
        "grant_type": row.grant_type,
        "actor": row.client_id,
        "credential_id": row.credential_id,
        "target": row.target,
        "scope": row.scope,
        "rule_id": row.rule_id,
        "chain": list(row.chain),
        "issued_at": row.issued_at,
        "expires_at": row.expires_at,
        "status": status[0],
        "status_reason": status[1],
        "revoked_at": row.revoked_at,
        "revocation_id": row.revocation_id,
    }


def _hop_from_event(row: EventRecord, now: int) -> dict[str, Any]:
    """A hop whose lineage row housekeeping removed, told by its ``token.issued`` event."""
    detail = row.detail
    exp = detail.get("exp")
    return {
        "jti": row.jti,
        "parent_jti": row.parent_jti,
        "depth": len(row.chain),
        "grant_type": detail.get("grant_type"),
        "actor": row.client_id,
        "credential_id": row.credential_id,
        "target": row.target,
        "scope": row.scope,
        "rule_id": row.rule_id,
        "chain": list(row.chain),
        "issued_at": row.at,
        "expires_at": exp,
        "status": "expired" if isinstance(exp, int) and exp <= now else "unknown",
        "status_reason": "" if isinstance(exp, int) and exp <= now else "lineage removed",
        "revoked_at": None,
        "revocation_id": None,
    }


def _initiator_row(row: TokenRecord) -> dict[str, Any]:
    return {
        "subject": row.subject,
        "issuer": row.subject_issuer,
        "first_client": row.client_id,
        "at": row.issued_at,
    }


def _initiator_event(row: EventRecord) -> dict[str, Any]:
    # The audit trail does not record the issuer of the chain's subject.
    return {"subject": row.subject, "issuer": None, "first_client": row.client_id, "at": row.at}


def _revocations(store: AdminStore, ids: list[int]) -> list[dict[str, Any]]:
    """The revocations that killed hops, each saying who did it: an administrator, or the
    client a token was issued to revoking it itself (RFC 7009, DESIGN §8)."""
    records = store.revocations.records(ids)
    by_clients = store.audit.revoked_by_clients([r.target for r in records if r.kind == "token"])
    return [
        {
            "id": r.id,
            "kind": r.kind,
            "target": r.target,
            "reason": r.reason,
            "revoked_by": r.revoked_by,
            "revoked_by_kind": (
                "client"
                if r.kind == "token" and (r.target, r.revoked_by) in by_clients
                else "administrator"
            ),
            "at": r.created_at,
        }
        for r in records
    ]


def show(
    store: AdminStore, *, now: int, jti: str | None = None, txn: str | None = None
) -> dict[str, Any]:
    """Everything known about one transaction (named directly or by one of its tokens).

    The lineage rows tell it; once housekeeping has removed them (:mod:`sts.services.gc`), the audit
    trail, which keeps its own copy of every issued hop, still does."""
    if (jti is None) == (txn is None):
        raise Invalid("give exactly one of a jti or a txn")
    if jti is not None:
        txn = store.lineage.txn_of(jti)
        if txn is None:
            txn = store.audit.txn_of_issued(jti)
        if txn is None:
            raise NotFound("no token with this jti", what="token")
    assert txn is not None
    rows = store.lineage.transaction(txn, limit=MAX_ROWS, by_depth=True)
    # One judgement of each hop's state for every reader (chain show, audit, the API).
    states = lineage.hop_states(rows, now)
    hops = [_hop(r, states[r.jti]) for r in rows]
    # Housekeeping removes the hops that expired first (the deepest ones) before the others:
    # the audit trail fills in whatever the lineage no longer holds.
    known = {h["jti"] for h in hops}
    events = [e for e in store.audit.issued(txn, MAX_ROWS) if e.jti not in known]
    if not hops and not events:
        raise NotFound("no tokens in this transaction", what="token" if jti else "txn")
    hops = sorted(
        [*hops, *(_hop_from_event(e, now) for e in events)],
        key=lambda h: (h["issued_at"], h["depth"], h["jti"]),
    )
    root = next((r for r in rows if r.parent_jti is None), None)
    first = next((e for e in events if e.parent_jti is None), None)
    if root is not None:
        initiated_by = _initiator_row(root)
    elif first is not None:
        initiated_by = _initiator_event(first)
    else:
        initiated_by = _initiator_row(rows[0]) if rows else _initiator_event(events[0])
    executed: list[str] = []
    for hop in hops:
        if hop["actor"] not in executed:
            executed.append(hop["actor"])
    reports = store.access_reports.for_transaction(txn, MAX_ROWS)
    for hop in hops:
        hop["reports"] = [_report(r) for r in reports if r.jti == hop["jti"]]
    denied = store.audit.denied(txn, MAX_ROWS)
    revocation_ids = sorted({h["revocation_id"] for h in hops if h["revocation_id"]})
    return {
        "txn": txn,
        "focus": jti,
        "initiated_by": initiated_by,
        "executed_by": executed,
        "hops": hops,
        "denied": [asdict(e) for e in denied],
        "revocations": _revocations(store, revocation_ids),
        # What the hops' audiences reported they touched (DESIGN §10); ``None`` when nothing
        # was reported: what was granted is known, what was accessed with it is not.
        "accessed": _accessed(reports),
    }


def _report(row: ReportRecord) -> dict[str, Any]:
    return {
        "jti": row.jti,
        "resource": row.resource,
        "action": row.action,
        "data_classes": list(row.data_classes),
        "records": row.records,
        "bytes": row.bytes,
        "destination": row.destination,
        "outcome": row.outcome,
        "at": row.at,
        "reported_by": row.reported_by,
    }


def _accessed(reports: list[ReportRecord]) -> dict[str, Any] | None:
    """The fourth question in one summary: what the whole transaction touched."""
    if not reports:
        return None
    return {
        "reports": len(reports),
        "resources": sorted({r.resource for r in reports}),
        "data_classes": sorted({c for r in reports for c in r.data_classes}),
        "records": sum(r.records or 0 for r in reports),
        "bytes": sum(r.bytes or 0 for r in reports),
        "destinations": sorted({r.destination for r in reports if r.destination}),
    }


def touched(
    store: AdminStore,
    *,
    resource: str,
    data_class: str | None = None,
    since: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The reverse question of DESIGN §8: which chains touched ``resource`` (with a report
    naming ``data_class``, if given) since a time, newest first; each with who initiated it
    and its path, the actors in the order they acted, ending with the service that reported."""
    reports = store.access_reports.touching(resource, since, MAX_ROWS)
    chains: dict[str, dict[str, Any]] = {}
    for r in reports:
        if data_class is not None and data_class not in r.data_classes:
            continue
        chain = chains.get(r.txn)
        if chain is None:
            if len(chains) >= limit:
                continue
            chain = chains[r.txn] = {
                "txn": r.txn,
                "initiated_by": {"subject": r.subject, "issuer": r.subject_issuer},
                "path": [],
                "actions": [],
                "data_classes": [],
                "records": 0,
                "first_at": r.at,
                "last_at": r.at,
            }
        path = [*reversed(r.chain), r.reported_by]
        if len(path) > len(chain["path"]):
            chain["path"] = path
        chain["actions"] = sorted({*chain["actions"], r.action})
        chain["data_classes"] = sorted({*chain["data_classes"], *r.data_classes})
        chain["records"] += r.records or 0
        chain["first_at"] = min(chain["first_at"], r.at)
        chain["last_at"] = max(chain["last_at"], r.at)
    return list(chains.values())


def list_events(
    store: AdminStore,
    *,
    actor: str | None = None,
    subject: str | None = None,
    since: int | None = None,
    decision: str | None = None,
    event: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    found = store.audit.events(
        actor=actor,
        subject=subject,
        since=since,
        decision=decision,
        event=event,
        limit=min(limit, MAX_ROWS),
    )
    return [asdict(e) for e in found]
