"""Trusted external issuers, whose tokens may be exchanged."""

from __future__ import annotations

from sts.admin_api.openapi.common import (
    ACTIVE_OR_REVOKED,
    BOOL,
    CONTAIN,
    INT,
    OBJECT,
    OPT_STR,
    PREFIX,
    READ,
    STR,
    STRINGS,
    URI_PATTERN,
    WRITE,
    Schema,
    admin_op,
    array,
    created,
    described,
    enum,
    error,
    listing,
    lookup,
    matching,
    obj,
    path_param,
    response,
    text,
)
from sts.core.domain import ASYMMETRIC_JWS_ALGORITHMS

TAG = "issuers"
TAGS = [{"name": TAG, "description": "Admin: trusted external issuers."}]
SCOPE_MODES = ("rule", "cap")
ISSUER_PARAM = path_param(
    "issuer", URI_PATTERN, "The issuer identifier, percent-encoded (`/` as `%2F`)."
)


def schemas() -> dict[str, Schema]:
    return {
        "Issuer": obj(
            {
                "issuer": STR,
                "jwks_uri": OPT_STR,
                "kids": array(OPT_STR),
                "algorithms": STRINGS,
                "audiences": STRINGS,
                "scope_mode": enum(SCOPE_MODES),
                "status": enum(ACTIVE_OR_REVOKED),
                "created_at": INT,
            }
        ),
        "IssuerList": listing("Issuer"),
        "IssuerUpdate": obj(
            {
                "jwks": described(OBJECT, "Its new public JWK Set (after it rotated)."),
                "jwks_uri": text(2048, 1),
                "audiences": array(text(2048, 1), maxItems=32),
                "algorithms": array(enum(ASYMMETRIC_JWS_ALGORITHMS), maxItems=10),
                "scope_mode": enum(SCOPE_MODES),
            },
            [],
        ),
        "IssuerRemoved": obj({"issuer": STR, "removed": BOOL, "revoked_tokens": INT}),
        "IssuerCreate": obj(
            {
                "issuer": matching(URI_PATTERN),
                "jwks": described(OBJECT, "Public JWK Set (or jwks_uri)."),
                "jwks_uri": text(2048, 1),
                "audiences": array(text(2048, 1), maxItems=32),
                "algorithms": array(enum(ASYMMETRIC_JWS_ALGORITHMS), maxItems=10),
                "scope_mode": enum(SCOPE_MODES),
            },
            ["issuer"],
        ),
    }


def paths() -> dict[str, Schema]:
    return {
        f"{PREFIX}/issuers": {
            "get": admin_op(
                TAG,
                "listIssuers",
                "List trusted issuers",
                READ,
                {"200": response("IssuerList", "Trusted issuers.")},
            ),
            "post": admin_op(
                TAG,
                "addIssuer",
                "Trust an external issuer",
                WRITE,
                {
                    "201": created("Issuer", "Trusted."),
                    "200": response("Issuer", "Already trusted with the same settings."),
                    "409": error("Already trusted with other settings."),
                },
                body="IssuerCreate",
                description="Exactly one of `jwks` and `jwks_uri`. Idempotent like NHIs.",
            ),
        },
        f"{PREFIX}/issuers/{{issuer}}": {
            "get": lookup(
                TAG, "getIssuer", "Show a trusted issuer", [ISSUER_PARAM], "Issuer", "The issuer."
            ),
        },
        f"{PREFIX}/issuers/{{issuer}}/update": {
            "post": admin_op(
                TAG,
                "updateIssuer",
                "Change a trusted issuer's keys or settings",
                WRITE,
                {"200": response("Issuer", "The issuer, changed.")},
                parameters=[ISSUER_PARAM],
                body="IssuerUpdate",
                not_found=True,
                description="What is not given stays: after the issuer rotates its keys, "
                "give its new JWKS (or JWKS URI).",
            ),
        },
        f"{PREFIX}/issuers/{{issuer}}/disable": {
            "post": admin_op(
                TAG,
                "disableIssuer",
                "Stop trusting an issuer",
                CONTAIN,
                {"200": response("Issuer", "The issuer, revoked.")},
                parameters=[ISSUER_PARAM],
                body="Reason",
                body_required=False,
                not_found=True,
                description="Its tokens are refused, and every live token derived from one "
                "is revoked.",
            ),
        },
        f"{PREFIX}/issuers/{{issuer}}/enable": {
            "post": admin_op(
                TAG,
                "enableIssuer",
                "Trust an issuer again",
                WRITE,
                {"200": response("Issuer", "The issuer, active (new exchanges only).")},
                parameters=[ISSUER_PARAM],
                not_found=True,
            ),
        },
        f"{PREFIX}/issuers/{{issuer}}/remove": {
            "post": admin_op(
                TAG,
                "removeIssuer",
                "Forget a trusted issuer",
                WRITE,
                {"200": response("IssuerRemoved", "Removed.")},
                parameters=[ISSUER_PARAM],
                body="Reason",
                body_required=False,
                not_found=True,
                description="Every live token derived from its tokens is revoked first.",
            ),
        },
    }
