"""Trusted external issuers, whose tokens may be exchanged."""

from __future__ import annotations

from sts.admin_api.openapi.common import (
    ACTIVE_OR_REVOKED,
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
    }
