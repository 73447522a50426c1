"""Reading a chain back: the lineage of a token or a transaction as a tree (DESIGN §8)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from sts.services.errors import Invalid, NotFound
from sts.store.models import DelegationRule, IssuedToken, Nhi

MAX_TREE_ROWS = 10_000


def _status(row: Any, now: int) -> tuple[str, str]:
    """This hop's own state: ``revoked``, ``expired``, ``void`` (its actor is disabled or
    its rule no longer in force: no longer accepted anywhere, as introspection says) or
    ``active``, with the reason."""
    if row.revoked_at is not None:
        return "revoked", ""
    if row.expires_at <= now:
        return "expired", ""
    if row.actor_status not in (None, "active"):
        return "void", "actor disabled"
    if row.rule_id is not None and not (
        row.rule_status == "enabled" and (row.rule_expires_at is None or row.rule_expires_at > now)
    ):
        return "void", "rule no longer in force"
    return "active", ""


def _node(row: Any, now: int) -> dict[str, Any]:
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
        "chain": list(row.chain or []),
        "issued_at": row.issued_at,
        "expires_at": row.expires_at,
        "status": _status(row, now)[0],
        "status_reason": _status(row, now)[1],
        "children": [],
    }


def chain_tree(
    conn: Connection, *, now: int, jti: str | None = None, txn: str | None = None
) -> list[dict[str, Any]]:
    """Root nodes of the lineage tree. For a ``jti``: its ancestors down to it, and all of its
    descendants; for a ``txn``: every token of the transaction."""
    if (jti is None) == (txn is None):
        raise Invalid("give exactly one of a jti or a txn")
    focus = None
    if jti is not None:
        focus = conn.execute(select(IssuedToken).where(IssuedToken.jti == jti)).first()
        if focus is None:
            raise NotFound("no token with this jti", what="token")
        txn = focus.txn
    rows = conn.execute(
        select(
            IssuedToken,
            Nhi.status.label("actor_status"),
            DelegationRule.status.label("rule_status"),
            DelegationRule.expires_at.label("rule_expires_at"),
        )
        .outerjoin(Nhi, Nhi.id == IssuedToken.actor_id)
        .outerjoin(DelegationRule, DelegationRule.id == IssuedToken.rule_id)
        .where(IssuedToken.txn == txn)
        .order_by(IssuedToken.issued_at, IssuedToken.jti)
        .limit(MAX_TREE_ROWS)
    ).all()
    if not rows:
        raise NotFound("no tokens in this transaction", what="token" if jti else "txn")
    nodes = {r.jti: _node(r, now) for r in rows}
    if focus is not None:
        keep = set()
        cursor: str | None = focus.jti
        while cursor is not None and cursor in nodes:  # ancestors
            keep.add(cursor)
            cursor = nodes[cursor]["parent_jti"]
        frontier = [focus.jti]
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


def hop_states(conn: Connection, *, now: int, txn: str) -> dict[str, tuple[str, str]]:
    """Every hop of a transaction's ``(status, reason)``, as :func:`chain_tree` judges it."""
    states: dict[str, tuple[str, str]] = {}
    pending = chain_tree(conn, now=now, txn=txn)
    while pending:
        node = pending.pop()
        states[node["jti"]] = (node["status"], node["status_reason"])
        pending.extend(node["children"])
    return states
