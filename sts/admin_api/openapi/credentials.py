"""An NHI's credentials: secrets, JWK Sets and JWKS URIs, added, rotated and revoked."""

from __future__ import annotations

from sts.admin_api.openapi.common import (
    ACTIVE_OR_REVOKED,
    BOOL,
    CONTAIN,
    ID_PATTERN,
    INT,
    MAX_INT,
    NAME_PARAM,
    OBJECT,
    OPT_INT,
    OPT_STR,
    PREFIX,
    STR,
    WRITE,
    Schema,
    admin_op,
    array,
    created,
    described,
    enum,
    integer,
    listing,
    lookup,
    obj,
    path_param,
    response,
    text,
    with_secret,
)

TAG = "credentials"
TAGS = [{"name": TAG, "description": "Admin: NHI credentials."}]
TYPES = ("secret", "jwks", "jwks_uri")
CREDENTIAL_PARAM = path_param("credential_id", ID_PATTERN, "A credential id.")


def _credential() -> Schema:
    return {
        "id": STR,
        "type": enum(TYPES),
        "status": enum(ACTIVE_OR_REVOKED),
        "created_at": INT,
        "expires_at": described(OPT_INT, "A replaced credential keeps working until then."),
        "jwks_uri": OPT_STR,
        "kids": array(OPT_STR),
    }


def schemas() -> dict[str, Schema]:
    return {
        "Credential": obj(_credential()),
        "CredentialCreated": with_secret(_credential()),
        "CredentialList": listing("Credential"),
        "CredentialCreate": obj(
            {
                "type": enum(TYPES),
                "jwks": described(OBJECT, "With type jwks: a public JWK Set."),
                "jwks_uri": text(2048, 1, description="With type jwks_uri."),
                "replace": described(
                    BOOL,
                    "Retire the live credentials of the same family (secrets, or keys) after "
                    "`grace` seconds.",
                ),
                "grace": integer(0, MAX_INT),
            },
            ["type"],
        ),
    }


def paths() -> dict[str, Schema]:
    one = f"{PREFIX}/nhis/{{name}}/credentials/{{credential_id}}"
    return {
        f"{PREFIX}/nhis/{{name}}/credentials": {
            "get": lookup(
                TAG,
                "listCredentials",
                "List an NHI's credentials",
                [NAME_PARAM],
                "CredentialList",
                "Oldest first; never a secret.",
            ),
            "post": admin_op(
                TAG,
                "addCredential",
                "Add a secret, a JWKS or a JWKS URI",
                WRITE,
                {
                    "201": created(
                        "CredentialCreated", "Added; a generated secret is returned here once."
                    )
                },
                parameters=[NAME_PARAM],
                body="CredentialCreate",
                not_found=True,
                description="With `replace`, the live credentials of the same family stop "
                "working after `grace` seconds (default 0: at once): a rotation.",
            ),
        },
        one: {
            "get": lookup(
                TAG,
                "getCredential",
                "Show a credential",
                [NAME_PARAM, CREDENTIAL_PARAM],
                "Credential",
                "The credential.",
            ),
        },
        f"{one}/revoke": {
            "post": admin_op(
                TAG,
                "revokeCredential",
                "Revoke a credential",
                CONTAIN,
                {"200": response("RevocationResult", "What was revoked.")},
                parameters=[NAME_PARAM, CREDENTIAL_PARAM],
                body="Reason",
                body_required=False,
                not_found=True,
                description="And every live token obtained with it, with their descendants.",
            ),
        },
    }
