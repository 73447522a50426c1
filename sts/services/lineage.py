"""Reading a chain back: the lineage of a token or a transaction as a tree (DESIGN §8).

Each hop's state is the one judgement of :mod:`sts.core.lineage`, the same that exchange
and introspection make, so a hop is never "active" here and refused at the token endpoint;
a hop below a revoked or void one is void too, as its lineage no longer holds.
"""

from __future__ import annotations

from typing import Any

from sts.core.lineage import HopStatus, hop_state, rule_in_force
from sts.services.errors import Invalid, NotFound
from sts.store.admin import AdminStore
from sts.store.lineage import TokenRecord

MAX_TREE_ROWS = 10_000


def _status(row: TokenRecord, now: int) -> tuple[HopStatus, str]:
    """This hop's own state and why, judged as exchange and introspection judge it."""
    return hop_state(
        revoked=row.revoked_at is not None,
        expires_at=row.expires_at,
        now=now,
        actor_status=row.actor_status,
        rule_in_force=rule_in_force(row.rule_id, row.rule_status, row.rule_expires_at, now),
    )


def _node(row: TokenRecord, now: int) -> dict[str, Any]:
    status, reason = _status(row, now)
    return {
        "jti": row.jti,
        "parent_jti": row.parent_jti,
        "txn": row.txn,
        "grant_type": row.grant_type,
        "subject": row.subject,
        "subject_issuer": row.subject_issuer,
        "actor": row.client_id,
        "credential_id": row.credential_id,
        "target": row.target,
        "scope": row.scope,
        "rule_id": row.rule_id,
        "chain": list(row.chain),
        "issued_at": row.issued_at,
        "expires_at": row.expires_at,
        "status": status,
        "status_reason": reason,
        "children": [],
    }


def chain_tree(
    store: AdminStore, *, now: int, jti: str | None = None, txn: str | None = None
) -> list[dict[str, Any]]:
    """Root nodes of the lineage tree. For a ``jti``: its ancestors down to it, and all of its
    descendants; for a ``txn``: every token of the transaction."""
    if (jti is None) == (txn is None):
        raise Invalid("give exactly one of a jti or a txn")
    if jti is not None:
        txn = store.lineage.txn_of(jti)
        if txn is None:
            raise NotFound("no token with this jti", what="token")
    assert txn is not None
    rows = store.lineage.transaction(txn, limit=MAX_TREE_ROWS)
    if not rows:
        raise NotFound("no tokens in this transaction", what="token" if jti else "txn")
    return _tree(rows, now, jti)


def _tree(rows: list[TokenRecord], now: int, focus: str | None = None) -> list[dict[str, Any]]:
    """The rows as a forest; with a ``focus``, only its ancestors and descendants."""
    nodes = {r.jti: _node(r, now) for r in rows}
    if focus is not None:
        keep = set()
        cursor: str | None = focus
        while cursor is not None and cursor in nodes:  # ancestors
            keep.add(cursor)
            cursor = nodes[cursor]["parent_jti"]
        frontier = [focus]
        while frontier:  # descendants
            children = [j for j, n in nodes.items() if n["parent_jti"] in frontier]
            keep.update(children)
            frontier = children
        nodes = {j: n for j, n in nodes.items() if j in keep}
    roots: list[dict[str, Any]] = []
    for node in nodes.values():
        parent = nodes.get(node["parent_jti"]) if node["parent_jti"] else None
        (parent["children"] if parent else roots).append(node)
    for root in roots:
        _inherit(root)
    return roots


def _inherit(node: dict[str, Any]) -> None:
    """A live hop below a revoked or void one is void too: its lineage no longer holds."""
    for child in node["children"]:
        if node["status"] in ("revoked", "void") and child["status"] == "active":
            child["status"], child["status_reason"] = "void", "an ancestor is " + node["status"]
        _inherit(child)


def hop_states(rows: list[TokenRecord], now: int) -> dict[str, tuple[str, str]]:
    """Every hop's ``(status, reason)``, as :func:`chain_tree` judges it."""
    states: dict[str, tuple[str, str]] = {}
    pending = _tree(rows, now)
    while pending:
        node = pending.pop()
        states[node["jti"]] = (node["status"], node["status_reason"])
        pending.extend(node["children"])
    return states
