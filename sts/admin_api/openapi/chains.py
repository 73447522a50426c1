"""Lineage: every token of a transaction, or a token's ancestors and descendants, as a tree."""

from __future__ import annotations

from sts.admin_api.openapi.common import (
    INT,
    JTI_PARAM,
    OPT_STR,
    PREFIX,
    STR,
    STRINGS,
    TXN_PARAM,
    Schema,
    array,
    described,
    enum,
    lookup,
    obj,
    ref,
)

TAG = "chains"
TAGS = [{"name": TAG, "description": "Admin: lineage of tokens and transactions."}]
#: What became of a token the STS issued.
TOKEN_STATUSES = ("active", "expired", "revoked", "void")


def schemas() -> dict[str, Schema]:
    return {
        "ChainNode": obj(
            {
                "jti": STR,
                "parent_jti": OPT_STR,
                "txn": STR,
                "grant_type": STR,
                "subject": STR,
                "subject_issuer": STR,
                "actor": STR,
                "credential_id": OPT_STR,
                "target": STR,
                "scope": STR,
                "rule_id": OPT_STR,
                "chain": STRINGS,
                "issued_at": INT,
                "expires_at": INT,
                "status": described(
                    enum(TOKEN_STATUSES),
                    "void: its actor is disabled, its rule no longer in force, or an ancestor "
                    "is revoked or void (`status_reason` says which).",
                ),
                "status_reason": STR,
                "children": array(ref("ChainNode")),
            }
        ),
        "Chain": obj({"roots": array(ref("ChainNode"))}),
    }


def paths() -> dict[str, Schema]:
    return {
        f"{PREFIX}/transactions/{{txn}}/chain": {
            "get": lookup(
                TAG,
                "getTransactionChain",
                "Lineage of a transaction",
                [TXN_PARAM],
                "Chain",
                "Every token of the transaction, as a tree.",
            ),
        },
        f"{PREFIX}/tokens/{{jti}}/chain": {
            "get": lookup(
                TAG,
                "getTokenChain",
                "Lineage of a token",
                [JTI_PARAM],
                "Chain",
                "Its ancestors and all its descendants.",
            ),
        },
    }
