"""Non-human identities: register, list, show, disable and enable them."""

from __future__ import annotations

from sts.admin_api.openapi.common import (
    BOOL,
    CONTAIN,
    INT,
    LIMIT,
    NAME_PARAM,
    NAME_PATTERN,
    OBJECT,
    OFFSET,
    PREFIX,
    READ,
    STR,
    STRINGS,
    WRITE,
    Schema,
    admin_op,
    array,
    boolean_query,
    created,
    described,
    enum,
    error,
    lookup,
    matching,
    obj,
    page,
    query,
    ref,
    response,
    text,
    with_secret,
)
from sts.core.domain import KINDS
from sts.core.token_types import TOKEN_EXCHANGE

TAG = "nhis"
TAGS = [{"name": TAG, "description": "Admin: non-human identities."}]
STATUSES = ("active", "disabled")


def _nhi() -> Schema:
    return {
        "client_id": STR,
        "kind": enum(KINDS),
        "sub": STR,
        "owner": STR,
        "status": enum(STATUSES),
        "status_reason": STR,
        "scope": STR,
        "grants": STRINGS,
        "resources": STRINGS,
        "credentials": array(ref("Credential")),
        "created_at": INT,
    }


def schemas() -> dict[str, Schema]:
    return {
        "Nhi": obj(_nhi()),
        "NhiCreated": with_secret(_nhi()),
        "NhiPage": page("Nhi"),
        "NhiUpdate": obj(
            {
                "kind": enum(KINDS),
                "owner": text(255),
                "sub": text(2048, 1),
                "scope": text(1024),
                "grants": array(
                    enum(["client_credentials", "token-exchange", TOKEN_EXCHANGE]),
                    maxItems=4,
                ),
                "resources": array(text(2048, 1), maxItems=32),
                "jwks": described(OBJECT, "New public JWK Set: replaces its live keys."),
                "jwks_uri": text(2048, 1),
            },
            [],
        ),
        "NhiDeleted": obj({"client_id": STR, "deleted": BOOL, "revoked_tokens": INT}),
        "NhiCreate": obj(
            {
                "name": described(matching(NAME_PATTERN), "client_id"),
                "kind": enum(KINDS),
                "owner": text(255),
                "sub": text(2048, 1, description="Subject in its tokens; default the name."),
                "scope": text(1024, description="Scopes it may request, space-separated."),
                "grants": array(
                    enum(["client_credentials", "token-exchange", TOKEN_EXCHANGE]),
                    maxItems=4,
                    description="Default: both grants.",
                ),
                "resources": array(text(2048, 1), maxItems=32),
                "jwks": described(OBJECT, "Public JWK Set (private_key_jwt)."),
                "jwks_uri": text(2048, 1),
            },
            ["name", "kind"],
        ),
    }


def paths() -> dict[str, Schema]:
    nhi = response("Nhi", "The NHI.")
    return {
        f"{PREFIX}/nhis": {
            "get": admin_op(
                TAG,
                "listNhis",
                "List NHIs",
                READ,
                {"200": response("NhiPage", "A page of NHIs, by name.")},
                parameters=[
                    query("kind", enum(KINDS)),
                    query("status", enum(STATUSES)),
                    LIMIT,
                    OFFSET,
                ],
            ),
            "post": admin_op(
                TAG,
                "createNhi",
                "Register an NHI",
                WRITE,
                {
                    "201": created(
                        "NhiCreated",
                        "Registered. Without a JWKS it authenticates by a generated secret, "
                        "returned here once.",
                    ),
                    "200": response(
                        "Nhi",
                        "Already registered with the same attributes: nothing changed, and "
                        "no secret is shown again.",
                    ),
                    "409": error(
                        "The name is taken by an NHI with other attributes, or the name, "
                        "the sub or a resource URI is another NHI's client_id, sub or "
                        "resource URI (one namespace); the message names that NHI."
                    ),
                },
                body="NhiCreate",
                description="Idempotent: repeating a create with the same name and attributes "
                "returns the NHI (200) instead of a conflict.",
            ),
        },
        f"{PREFIX}/nhis/{{name}}": {
            "get": lookup(TAG, "getNhi", "Show an NHI", [NAME_PARAM], "Nhi", "The NHI."),
        },
        f"{PREFIX}/nhis/{{name}}/disable": {
            "post": admin_op(
                TAG,
                "disableNhi",
                "Disable an NHI",
                CONTAIN,
                {"200": nhi},
                parameters=[NAME_PARAM],
                body="RequiredReason",
                not_found=True,
                description="It can no longer authenticate, act or be a target; every live "
                "token it acted in or was addressed to is revoked with its descendants, for "
                "good (on the revocation feed). Enabling it again only allows new exchanges.",
            ),
        },
        f"{PREFIX}/nhis/{{name}}/enable": {
            "post": admin_op(
                TAG,
                "enableNhi",
                "Enable a disabled NHI",
                WRITE,
                {"200": nhi},
                parameters=[NAME_PARAM],
                not_found=True,
            ),
        },
        f"{PREFIX}/nhis/{{name}}/update": {
            "post": admin_op(
                TAG,
                "updateNhi",
                "Change an NHI",
                WRITE,
                {
                    "200": nhi,
                    "409": error("A new name (sub, resource URI) belongs to another NHI."),
                },
                parameters=[NAME_PARAM],
                body="NhiUpdate",
                not_found=True,
                description="What is not given stays. A JWKS or JWKS URI replaces its live "
                "keys at once (its secrets stay).",
            ),
        },
        f"{PREFIX}/nhis/{{name}}/delete": {
            "post": admin_op(
                TAG,
                "deleteNhi",
                "Remove an NHI",
                WRITE,
                {
                    "200": response("NhiDeleted", "Removed."),
                    "409": error(
                        "A rule names it, or (without revoke=true) a live token involves it."
                    ),
                },
                parameters=[NAME_PARAM, boolean_query("revoke", "Revoke its live tokens.")],
                not_found=True,
                description="Its credentials go with it; the lineage and the audit trail "
                "keep its name.",
            ),
        },
    }
