"""The audit trail: the story of a transaction or a token, and the events themselves."""

from __future__ import annotations

from sts.admin_api.openapi.chains import TOKEN_STATUSES
from sts.admin_api.openapi.common import (
    INT,
    JTI_PARAM,
    LIMIT,
    MAX_TIME,
    OBJECT,
    OPT_INT,
    OPT_STR,
    PREFIX,
    READ,
    STR,
    STRINGS,
    TXN_PARAM,
    Schema,
    admin_op,
    array,
    described,
    enum,
    integer,
    listing,
    lookup,
    nullable,
    obj,
    query,
    ref,
    response,
    text,
)

TAG = "audit"
TAGS = [{"name": TAG, "description": "Admin: the audit trail."}]
DECISIONS = ("allowed", "denied", "done")


def schemas() -> dict[str, Schema]:
    return {
        "AuditEvent": obj(
            {
                "id": INT,
                "at": INT,
                "event": STR,
                "decision": enum(DECISIONS),
                "reason": STR,
                "request_id": STR,
                "client_id": OPT_STR,
                "credential_id": OPT_STR,
                "subject": OPT_STR,
                "target": OPT_STR,
                "scope": OPT_STR,
                "jti": OPT_STR,
                "parent_jti": OPT_STR,
                "txn": OPT_STR,
                "rule_id": OPT_STR,
                "chain": STRINGS,
                "detail": OBJECT,
            }
        ),
        "AuditEventList": listing("AuditEvent"),
        "AuditHop": obj(
            {
                "jti": STR,
                "parent_jti": OPT_STR,
                "depth": INT,
                "grant_type": OPT_STR,
                "actor": STR,
                "credential_id": OPT_STR,
                "target": OPT_STR,
                "scope": OPT_STR,
                "rule_id": OPT_STR,
                "chain": STRINGS,
                "issued_at": INT,
                "expires_at": OPT_INT,
                "status": enum((*TOKEN_STATUSES, "unknown")),
                "status_reason": STR,
                "revoked_at": OPT_INT,
                "revocation_id": OPT_INT,
                "reports": described(
                    array(ref("HopReport")),
                    "What this hop's audience reported it did under the token (DESIGN §10).",
                ),
            }
        ),
        "HopReport": obj(
            {
                "jti": STR,
                "resource": STR,
                "action": STR,
                "data_classes": STRINGS,
                "records": OPT_INT,
                "bytes": OPT_INT,
                "destination": OPT_STR,
                "outcome": OPT_STR,
                "at": INT,
                "reported_by": STR,
            }
        ),
        "TouchedChain": obj(
            {
                "txn": STR,
                "initiated_by": obj({"subject": STR, "issuer": STR}),
                "path": described(
                    STRINGS, "The actors in the order they acted, then the service that reported."
                ),
                "actions": STRINGS,
                "data_classes": STRINGS,
                "records": INT,
                "first_at": INT,
                "last_at": INT,
            }
        ),
        "TouchedChainList": listing("TouchedChain"),
        "AuditStory": obj(
            {
                "txn": STR,
                "focus": OPT_STR,
                "initiated_by": obj(
                    {"subject": OPT_STR, "issuer": OPT_STR, "first_client": OPT_STR, "at": INT}
                ),
                "executed_by": STRINGS,
                "hops": array(ref("AuditHop")),
                "denied": array(ref("AuditEvent")),
                "revocations": array(
                    obj(
                        {
                            "id": INT,
                            "kind": STR,
                            "target": STR,
                            "reason": STR,
                            "revoked_by": STR,
                            "revoked_by_kind": described(
                                {"type": "string", "enum": ["administrator", "client"]},
                                "Who revoked: an administrator, or the client the token was "
                                "issued to (RFC 7009).",
                            ),
                            "at": INT,
                        }
                    )
                ),
                "accessed": described(
                    nullable(
                        obj(
                            {
                                "reports": INT,
                                "resources": STRINGS,
                                "data_classes": STRINGS,
                                "records": INT,
                                "bytes": INT,
                                "destinations": STRINGS,
                            }
                        )
                    ),
                    "What the transaction touched, as reported; null when nothing was.",
                ),
            }
        ),
    }


def paths() -> dict[str, Schema]:
    return {
        f"{PREFIX}/transactions/{{txn}}/audit": {
            "get": lookup(
                TAG,
                "getTransactionAudit",
                "The story of a transaction",
                [TXN_PARAM],
                "AuditStory",
                "Who initiated it, who executed it, hops, denials, revocations.",
            ),
        },
        f"{PREFIX}/tokens/{{jti}}/audit": {
            "get": lookup(
                TAG,
                "getTokenAudit",
                "The story of a token's transaction",
                [JTI_PARAM],
                "AuditStory",
                "As for its transaction, focused on it.",
            ),
        },
        f"{PREFIX}/audit/touched": {
            "get": admin_op(
                TAG,
                "listTouchingChains",
                "The chains that touched a resource, newest first",
                READ,
                {"200": response("TouchedChainList", "Matching transactions.")},
                parameters=[
                    {
                        **query("resource", text(2048, 1), "The resource reported."),
                        "required": True,
                    },
                    query("data_class", text(64, 1), "Only reports naming this data class."),
                    query("since", integer(0, MAX_TIME), "Epoch seconds."),
                    LIMIT,
                ],
            ),
        },
        f"{PREFIX}/audit/events": {
            "get": admin_op(
                TAG,
                "listAuditEvents",
                "Audit events, newest first",
                READ,
                {"200": response("AuditEventList", "Matching events.")},
                parameters=[
                    query("actor", text(255, 1), "Client that made the request or change."),
                    query("subject", text(2048, 1)),
                    query("since", integer(0, MAX_TIME), "Epoch seconds."),
                    query("decision", enum(DECISIONS)),
                    query("event", text(64, 1), "e.g. token.issued, admin.revoke.nhi"),
                    LIMIT,
                ],
            ),
        },
    }
