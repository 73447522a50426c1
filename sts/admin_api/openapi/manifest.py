"""The registry as code: export it as one document, apply a document to it."""

from __future__ import annotations

from sts.admin_api.openapi.common import (
    BOOL,
    INT,
    OBJECT,
    PREFIX,
    READ,
    STR,
    STRINGS,
    WRITE,
    Schema,
    admin_op,
    array,
    boolean_query,
    described,
    enum,
    error,
    obj,
    response,
)

TAG = "registry"
TAGS = [{"name": TAG, "description": "Admin: the registry as code (export, apply)."}]


def schemas() -> dict[str, Schema]:
    return {
        "RegistryDocument": described(
            OBJECT,
            "`version: 1` and lists of `nhis`, `issuers` and `rules` (see the operations "
            "guide). Never a secret: credentials are JWKS or JWKS URIs only.",
        ),
        "RegistryPlan": obj(
            {
                "dry_run": BOOL,
                "changes": array(
                    obj(
                        {
                            "action": enum(["create", "update", "delete"]),
                            "kind": enum(["nhi", "issuer", "rule"]),
                            "name": STR,
                            "fields": STRINGS,
                        }
                    )
                ),
                "summary": obj({"create": INT, "update": INT, "delete": INT}),
                "client_secrets": described(
                    {"type": "object", "additionalProperties": STR},
                    "Secrets generated for NHIs created without keys, shown once.",
                ),
            }
        ),
    }


def paths() -> dict[str, Schema]:
    return {
        f"{PREFIX}/registry": {
            "get": admin_op(
                TAG,
                "exportRegistry",
                "Export the registry as one document",
                READ,
                {"200": response("RegistryDocument", "NHIs, trusted issuers and rules.")},
            ),
        },
        f"{PREFIX}/registry/apply": {
            "post": admin_op(
                TAG,
                "applyRegistry",
                "Make the registry match a document",
                WRITE,
                {
                    "200": response("RegistryPlan", "What was (or, dry run, would be) done."),
                    "409": error("A change conflicts with the registry (nothing changed)."),
                },
                parameters=[
                    boolean_query("dry_run", "Work the plan out and change nothing."),
                    boolean_query("prune", "Also remove what the document does not name."),
                ],
                body="RegistryDocument",
                description="Creates what is missing, changes what differs and, with "
                "`prune=true`, removes what the document does not name, in one transaction: "
                "a refused document changes nothing (422, its message naming the line of the "
                "body it failed on).",
            ),
        },
    }
