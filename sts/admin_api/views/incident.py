"""Admin API views for incident response: revocations, chains read back, the audit trail
(DESIGN §7, §8)."""

from __future__ import annotations

from flask import Response

from sts.admin_api.errors import json_response
from sts.admin_api.openapi import ADMIN, AUDIT, REVOKE
from sts.admin_api.validation import body, query
from sts.admin_api.views.routing import CONTAIN, READ, Call, route
from sts.services import audit, lineage, revocation


# -- revocations -----------------------------------------------------------------------------
@route("/revocations", "POST", (ADMIN, REVOKE, AUDIT))
def create_revocation(call: Call) -> Response:
    b = body("RevocationCreate")
    dry_run = b.get("dry_run", False)
    if not dry_run:
        call.admin.require(CONTAIN)
    result = revocation.revoke(
        call.store,
        b["kind"],
        b["target"],
        now=call.now,
        admin=call.by,
        reason=b.get("reason", ""),
        dry_run=dry_run,
    )
    return json_response(result.as_dict(), 200 if dry_run else 201)


# -- chains and audit ------------------------------------------------------------------------
@route("/transactions/<txn>/chain", "GET", READ)
def transaction_chain(call: Call, txn: str) -> Response:
    return json_response({"roots": lineage.chain_tree(call.store, now=call.now, txn=txn)})


@route("/tokens/<jti>/chain", "GET", READ)
def token_chain(call: Call, jti: str) -> Response:
    return json_response({"roots": lineage.chain_tree(call.store, now=call.now, jti=jti)})


@route("/transactions/<txn>/audit", "GET", READ)
def transaction_audit(call: Call, txn: str) -> Response:
    return json_response(audit.show(call.store, now=call.now, txn=txn))


@route("/tokens/<jti>/audit", "GET", READ)
def token_audit(call: Call, jti: str) -> Response:
    return json_response(audit.show(call.store, now=call.now, jti=jti))


@route("/audit/touched", "GET", READ)
def list_touching_chains(call: Call) -> Response:
    q = query("/audit/touched")
    chains = audit.touched(
        call.store,
        resource=q["resource"],
        data_class=q.get("data_class"),
        since=q.get("since"),
        limit=q["limit"],
    )
    return json_response({"items": chains})


@route("/audit/events", "GET", READ)
def list_audit_events(call: Call) -> Response:
    q = query("/audit/events")
    events = audit.list_events(
        call.store,
        actor=q.get("actor"),
        subject=q.get("subject"),
        since=q.get("since"),
        decision=q.get("decision"),
        event=q.get("event"),
        limit=q["limit"],
    )
    return json_response({"items": events})
