"""Delegation rules: which actor may exchange which subject's tokens for which targets."""

from __future__ import annotations

from sts.admin_api.openapi.common import (
    BOOL,
    CONTAIN,
    ID_PATTERN,
    INT,
    LIMIT,
    MAX_INT,
    NAME_PATTERN,
    OFFSET,
    OPT_INT,
    OPT_STR,
    PREFIX,
    READ,
    STR,
    STRINGS,
    TARGET_PATTERN,
    URI_PATTERN,
    WRITE,
    Schema,
    admin_op,
    array,
    created,
    described,
    enum,
    integer,
    lookup,
    matching,
    nullable,
    obj,
    page,
    path_param,
    query,
    response,
    text,
)

TAG = "rules"
TAGS = [{"name": TAG, "description": "Admin: delegation rules."}]
STATUSES = ("enabled", "disabled")
RULE_PARAM = path_param("rule_id", ID_PATTERN, "A delegation rule id.")


def schemas() -> dict[str, Schema]:
    return {
        "RuleDeleted": obj({"id": STR, "deleted": BOOL, "revoked_tokens": INT}),
        "Rule": obj(
            {
                "id": STR,
                "actor": STR,
                "targets": STRINGS,
                "scope": STR,
                "subject": STR,
                "subject_issuer": described(
                    OPT_STR,
                    "The trusted issuer a `sub:` subject comes from; null: the subject is an "
                    "NHI (a chain rooted at this STS).",
                ),
                "upstream": OPT_STR,
                "max_depth": OPT_INT,
                "max_ttl": OPT_INT,
                "expires_at": OPT_INT,
                "require_dpop": described(
                    BOOL, "Only a DPoP-bound request (RFC 9449) may mint under this rule."
                ),
                "status": enum(STATUSES),
                "created_at": INT,
            }
        ),
        "RulePage": page("Rule"),
        "RuleCreate": obj(
            {
                "actor": matching(NAME_PATTERN),
                "targets": array(
                    matching(TARGET_PATTERN),
                    minItems=1,
                    maxItems=64,
                    description="Target NHIs; `*` means any registered target.",
                ),
                "scope": text(1024),
                "subject": text(
                    2048, 1, description="any | SUB | sub:SUB | issuer:ISS | kind:KIND"
                ),
                "subject_issuer": nullable(
                    described(
                        matching(URI_PATTERN),
                        "With a `sub` subject: the trusted issuer it comes from (rules match "
                        "external subjects by issuer and sub). Without it, a `sub` subject "
                        "matches only an NHI of this STS.",
                    )
                ),
                "upstream": nullable(matching(NAME_PATTERN)),
                "max_depth": nullable(integer(1, 32)),
                "max_ttl": nullable(integer(1, MAX_INT)),
                "expires": nullable(text(64, 1, description="ISO 8601 with a time zone.")),
                "require_dpop": described(
                    BOOL,
                    "Refuse an exchange under this rule without a DPoP proof "
                    "(`invalid_dpop_proof`). Default false.",
                ),
            },
            ["actor", "targets", "scope"],
        ),
    }


def paths() -> dict[str, Schema]:
    return {
        f"{PREFIX}/rules": {
            "get": admin_op(
                TAG,
                "listRules",
                "List delegation rules",
                READ,
                {"200": response("RulePage", "A page of rules, oldest first.")},
                parameters=[
                    query("actor", matching(NAME_PATTERN)),
                    query("status", enum(STATUSES)),
                    LIMIT,
                    OFFSET,
                ],
            ),
            "post": admin_op(
                TAG,
                "createRule",
                "Create a delegation rule",
                WRITE,
                {
                    "201": created("Rule", "Created."),
                    "200": response("Rule", "An enabled rule saying exactly this exists."),
                },
                body="RuleCreate",
                description="Rules have no name: an enabled rule with the same actor, targets, "
                "scope, subject (and its issuer), upstream, limits and expiry is returned (200) "
                "instead of a duplicate. An unknown actor, target or upstream is a 422 naming "
                "the field.",
            ),
        },
        f"{PREFIX}/rules/{{rule_id}}": {
            "get": lookup(TAG, "getRule", "Show a rule", [RULE_PARAM], "Rule", "The rule."),
        },
        f"{PREFIX}/rules/{{rule_id}}/disable": {
            "post": admin_op(
                TAG,
                "disableRule",
                "Disable a rule",
                CONTAIN,
                {"200": response("Rule", "The rule, disabled.")},
                parameters=[RULE_PARAM],
                body="Reason",
                body_required=False,
                not_found=True,
                description="No new exchanges under it; every live token it minted is revoked "
                "with its descendants, for good (on the revocation feed).",
            ),
        },
        f"{PREFIX}/rules/{{rule_id}}/update": {
            "post": admin_op(
                TAG,
                "updateRule",
                "Change what a rule says",
                WRITE,
                {"200": response("Rule", "The rule, changed (its id and status stay).")},
                parameters=[RULE_PARAM],
                body="RuleCreate",
                not_found=True,
                description="The whole rule, as at creation. Tokens it minted keep their short "
                "lives; disable it to revoke them.",
            ),
        },
        f"{PREFIX}/rules/{{rule_id}}/enable": {
            "post": admin_op(
                TAG,
                "enableRule",
                "Enable a rule",
                WRITE,
                {"200": response("Rule", "The rule, enabled.")},
                parameters=[RULE_PARAM],
                not_found=True,
                description="New exchanges only: what it minted before stays revoked.",
            ),
        },
        f"{PREFIX}/rules/{{rule_id}}/delete": {
            "post": admin_op(
                TAG,
                "deleteRule",
                "Remove a rule",
                CONTAIN,
                {"200": response("RuleDeleted", "Removed.")},
                parameters=[RULE_PARAM],
                body="Reason",
                body_required=False,
                not_found=True,
                description="Every live token it minted is revoked first, with its descendants.",
            ),
        },
    }
