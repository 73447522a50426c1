"""The OpenID AuthZEN 1.0 policy decision point: the Access Evaluation API and its metadata
(DESIGN §10; :mod:`sts.admin_api.authzen`)."""

from __future__ import annotations

from typing import Any

from chain_sts_client.scopes import MAX_SCOPE_LENGTH

from sts.admin_api.openapi.common import (
    BOOL,
    INT,
    OBJECT,
    OPT_STR,
    READ,
    STR,
    STRINGS,
    Schema,
    admin_op,
    array,
    described,
    error,
    obj,
    response,
    text,
)
from sts.core.policy_query import MAX_QUERY_CHAIN
from sts.oauth.authzen import EVALUATION_PATH, MAX_ID, MAX_NAME, MAX_TYPE, METADATA_PATH

TAGS = [{"name": "authzen", "description": "Would this exchange be allowed, and why."}]

_ENTITY_TYPE = text(MAX_TYPE, 1)
_NAME = text(MAX_NAME, 1)


def schemas() -> dict[str, Schema]:
    return {
        "EvaluationRequest": obj(
            {
                "subject": described(
                    obj(
                        {
                            "type": _ENTITY_TYPE,
                            "id": described(text(MAX_ID, 1), "The subject's `sub`."),
                            "properties": obj(
                                {
                                    "issuer": described(
                                        text(MAX_ID, 1),
                                        "The trusted issuer of the subject; absent: an NHI "
                                        "of this STS.",
                                    ),
                                    "subject_token": described(
                                        {"type": "string", "minLength": 1},
                                        "A real subject token, judged as the token endpoint "
                                        "would (not with `issuer`).",
                                    ),
                                },
                                [],
                                closed=False,
                            ),
                        },
                        ["type", "id"],
                        closed=False,
                    ),
                    "Who the chain acts for.",
                ),
                "resource": described(
                    obj(
                        {
                            "type": _ENTITY_TYPE,
                            "id": described(
                                text(MAX_ID, 1), "The next hop: an NHI's name or resource URI."
                            ),
                            "properties": OBJECT,
                        },
                        ["type", "id"],
                        closed=False,
                    ),
                    "The target NHI.",
                ),
                "action": described(
                    obj(
                        {
                            "name": described(
                                text(MAX_SCOPE_LENGTH, 1),
                                "The requested scope, space-delimited (RFC 6749 §3.3).",
                            ),
                            "properties": OBJECT,
                        },
                        ["name"],
                        closed=False,
                    ),
                    "The exchange, by the scope it asks for.",
                ),
                "context": obj(
                    {
                        "actor": described(_NAME, "The NHI that would exchange."),
                        "chain": described(
                            array(_NAME, maxItems=MAX_QUERY_CHAIN),
                            "The NHIs that acted so far, first hop first (not with a "
                            "subject token).",
                        ),
                    },
                    ["actor"],
                    closed=False,
                ),
            },
            ["subject", "resource", "action", "context"],
            closed=False,
        ),
        "EvaluationResponse": obj(
            {
                "decision": BOOL,
                "context": obj(
                    {
                        "id": described(STR, "On a denial: the error code."),
                        "rule_id": described(OPT_STR, "The rule that allows the hop."),
                        "actor": STR,
                        "subject": obj({"id": OPT_STR, "issuer": OPT_STR}),
                        "target": STR,
                        "chain": described(
                            STRINGS, "The act chain the token would carry, first hop first."
                        ),
                        "rules_weighed": described(
                            STRINGS, "The actor's rules that reach the target."
                        ),
                        "scope": STR,
                        "expires_in": INT,
                        "error": described(STR, "The token endpoint's error code."),
                        "error_description": STR,
                        "reason_admin": described(
                            obj({"en": STR}), "The precise reason for the denial."
                        ),
                        "reason_user": obj({"en": STR}),
                    },
                    ["rule_id", "actor", "subject", "target", "chain", "rules_weighed"],
                ),
            }
        ),
        "PdpMetadata": obj(
            {"policy_decision_point": STR, "access_evaluation_endpoint": STR}, closed=False
        ),
    }


def paths() -> dict[str, Schema]:
    evaluation: dict[str, Any] = admin_op(
        "authzen",
        "accessEvaluation",
        "Would this token exchange be allowed (OpenID AuthZEN 1.0 Access Evaluation)",
        READ,
        {
            "200": response(
                "EvaluationResponse",
                "The decision, allowed or not, with the deciding rule, the scope and "
                "lifetime granted, or the error and precise reason of a denial.",
                headers={"X-Request-Id": {"schema": STR}},
            ),
        },
        body="EvaluationRequest",
        description="Runs the token exchange's own checks on the hop described, without "
        "minting anything; audited as `policy.evaluated`. `X-Request-Id` is echoed.",
    )
    responses = evaluation["responses"]
    del responses["422"]
    responses["400"] = error(
        "The body is not JSON (`malformed_json`) or not an evaluation request "
        "(`invalid_evaluation`, `fields` names the member at fault)."
    )
    responses["415"] = error("The body is not application/json.")
    return {
        EVALUATION_PATH: {"post": evaluation},
        METADATA_PATH: {
            "get": {
                "operationId": "authzenMetadata",
                "summary": "Policy decision point metadata (OpenID AuthZEN 1.0 §9)",
                "tags": ["authzen"],
                "security": [],
                "responses": {"200": response("PdpMetadata", "Metadata.")},
            }
        },
    }
