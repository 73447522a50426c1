"""The OpenAPI 3.1 document of the whole HTTP surface: the OAuth endpoints and the admin API.

It is data, built once per issuer, and it is also what the admin API validates request
bodies and query strings against (:mod:`sts.admin_api.validation`), so the document and the
behaviour cannot drift apart. Served at :data:`OPENAPI_PATH`.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from sts import __version__
from sts.core.domain import ASYMMETRIC_JWS_ALGORITHMS, KINDS
from sts.core.token_types import TOKEN_EXCHANGE
from sts.oauth.rfc8414 import (
    FEED_PATH,
    INTROSPECTION_PATH,
    JWKS_PATH,
    METADATA_PATH,
    REVOCATION_PATH,
    TOKEN_PATH,
)
from sts.services.registry import ADMIN_SCOPES
from sts.store.revocation import KINDS as REVOCATION_KINDS

OPENAPI_PATH = "/.well-known/openapi.json"
PREFIX = "/admin/v1"

#: Admin scopes (granted to an NHI, carried by its client_credentials token).
ADMIN, AUDIT, REVOKE = ADMIN_SCOPES

#: Every free-text string the admin API accepts is free of control characters and of lone
#: surrogates (which no database can store).
PRINTABLE = r"^[^\u0000-\u001f\u007f\ud800-\udfff]*$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
ID_PATTERN = r"^[A-Za-z0-9._~-]{1,64}$"
TARGET_PATTERN = r"^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,127})$"
URI_PATTERN = r"^[A-Za-z][A-Za-z0-9+.-]*:[!-~]{1,2040}$"
MAX_INT = 2**31 - 1
MAX_TIME = 2**53 - 1
MAX_PAGE = 1000

#: Stable machine-readable error codes of the admin API.
ERROR_CODES = (
    "missing_token",
    "invalid_token",
    "insufficient_scope",
    "bad_request",
    "malformed_json",
    "unsupported_media_type",
    "payload_too_large",
    "validation_failed",
    "route_not_found",
    "method_not_allowed",
    "nhi_not_found",
    "credential_not_found",
    "issuer_not_found",
    "rule_not_found",
    "token_not_found",
    "transaction_not_found",
    "nhi_conflict",
    "issuer_conflict",
    "conflict",
    "server_error",
    "temporarily_unavailable",
)
ERRORS = (
    "invalid_request",
    "invalid_token",
    "insufficient_scope",
    "not_found",
    "method_not_allowed",
    "conflict",
    "server_error",
    "temporarily_unavailable",
)


# -- schema helpers ---------------------------------------------------------------------------
def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def text(max_length: int = 1024, min_length: int = 0, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "maxLength": max_length, "pattern": PRINTABLE}
    if min_length:
        schema["minLength"] = min_length
    schema.update(extra)
    return schema


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    out = dict(schema)
    out["type"] = [schema["type"], "null"]
    return out


def obj(
    properties: dict[str, Any], required: list[str] | None = None, *, closed: bool = True
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    schema["required"] = list(properties) if required is None else required
    if closed:
        schema["additionalProperties"] = False
    return schema


def array(items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "array", "items": items, **extra}


STR: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
BOOL: dict[str, Any] = {"type": "boolean"}
OPT_STR = nullable(STR)
OPT_INT = nullable(INT)
STRINGS = array(STR)


def _credential() -> dict[str, Any]:
    return {
        "id": STR,
        "type": {"type": "string", "enum": ["secret", "jwks", "jwks_uri"]},
        "status": {"type": "string", "enum": ["active", "revoked"]},
        "created_at": INT,
        "expires_at": {
            **OPT_INT,
            "description": "A replaced credential keeps working until then.",
        },
        "jwks_uri": OPT_STR,
        "kids": array(OPT_STR),
    }


def _nhi() -> dict[str, Any]:
    return {
        "client_id": STR,
        "kind": {"type": "string", "enum": list(KINDS)},
        "sub": STR,
        "owner": STR,
        "status": {"type": "string", "enum": ["active", "disabled"]},
        "status_reason": STR,
        "scope": STR,
        "grants": STRINGS,
        "resources": STRINGS,
        "credentials": array(ref("Credential")),
        "created_at": INT,
    }


SECRET = {
    "type": "string",
    "description": "The generated client secret. Shown in this response only: store it now.",
}


def _event() -> dict[str, Any]:
    return {
        "id": INT,
        "at": INT,
        "event": STR,
        "decision": {"type": "string", "enum": ["allowed", "denied", "done"]},
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
        "detail": {"type": "object"},
    }


@lru_cache(maxsize=1)
def schemas() -> dict[str, Any]:
    """The component schemas (shared: never change the result)."""
    token_status = {
        "type": "string",
        "enum": ["active", "expired", "revoked", "void"],
        "description": "void: its actor is disabled, its rule no longer in force, or an "
        "ancestor is revoked or void (`status_reason` says which).",
    }
    return {
        # -- admin: errors and resources --
        "Error": {
            **obj(
                {
                    "error": {"type": "string", "enum": list(ERRORS)},
                    "error_description": STR,
                    "code": {"type": "string", "enum": list(ERROR_CODES)},
                    "fields": array(
                        obj({"field": STR, "message": STR}),
                        description="With validation_failed: each input at fault.",
                    ),
                },
                ["error", "error_description", "code"],
            ),
            "description": "Every admin API error. `error` is the class (RFC 6750 names for "
            "token problems), `code` the stable machine-readable reason.",
        },
        "Credential": obj(_credential()),
        "CredentialCreated": obj({**_credential(), "client_secret": SECRET}, list(_credential())),
        "Nhi": obj(_nhi()),
        "NhiCreated": obj({**_nhi(), "client_secret": SECRET}, list(_nhi())),
        "NhiPage": obj({"items": array(ref("Nhi")), "total": INT, "limit": INT, "offset": INT}),
        "CredentialList": obj({"items": array(ref("Credential"))}),
        "Issuer": obj(
            {
                "issuer": STR,
                "jwks_uri": OPT_STR,
                "kids": array(OPT_STR),
                "algorithms": STRINGS,
                "audiences": STRINGS,
                "scope_mode": {"type": "string", "enum": ["rule", "cap"]},
                "status": {"type": "string", "enum": ["active", "revoked"]},
                "created_at": INT,
            }
        ),
        "IssuerList": obj({"items": array(ref("Issuer"))}),
        "Rule": obj(
            {
                "id": STR,
                "actor": STR,
                "targets": STRINGS,
                "scope": STR,
                "subject": STR,
                "upstream": OPT_STR,
                "max_depth": OPT_INT,
                "max_ttl": OPT_INT,
                "expires_at": OPT_INT,
                "status": {"type": "string", "enum": ["enabled", "disabled"]},
                "created_at": INT,
            }
        ),
        "RulePage": obj({"items": array(ref("Rule")), "total": INT, "limit": INT, "offset": INT}),
        "RevocationResult": obj(
            {
                "kind": {"type": "string", "enum": list(REVOCATION_KINDS)},
                "target": STR,
                "dry_run": BOOL,
                "tokens": {
                    **INT,
                    "description": "Live tokens revoked (or, dry run, that would be).",
                },
                "transactions": INT,
                "jtis": {**STRINGS, "description": "The first 1000 of them."},
                "jtis_listed": INT,
                "revocation_id": OPT_INT,
            }
        ),
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
                "status": token_status,
                "status_reason": STR,
                "children": array(ref("ChainNode")),
            }
        ),
        "Chain": obj({"roots": array(ref("ChainNode"))}),
        "AuditEvent": obj(_event()),
        "AuditEventList": obj({"items": array(ref("AuditEvent"))}),
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
                "status": {
                    "type": "string",
                    "enum": ["active", "expired", "revoked", "void", "unknown"],
                },
                "status_reason": STR,
                "revoked_at": OPT_INT,
                "revocation_id": OPT_INT,
            }
        ),
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
                            "at": INT,
                        }
                    )
                ),
                "accessed": {
                    "type": "null",
                    "description": "What was accessed: not reported by resource servers yet.",
                },
            }
        ),
        # -- admin: request bodies --
        "NhiCreate": obj(
            {
                "name": {"type": "string", "pattern": NAME_PATTERN, "description": "client_id"},
                "kind": {"type": "string", "enum": list(KINDS)},
                "owner": text(255),
                "sub": text(2048, 1, description="Subject in its tokens; default the name."),
                "scope": text(1024, description="Scopes it may request, space-separated."),
                "grants": array(
                    {
                        "type": "string",
                        "enum": ["client_credentials", "token-exchange", TOKEN_EXCHANGE],
                    },
                    maxItems=4,
                    description="Default: both grants.",
                ),
                "resources": array(text(2048, 1), maxItems=32),
                "jwks": {"type": "object", "description": "Public JWK Set (private_key_jwt)."},
                "jwks_uri": text(2048, 1),
            },
            ["name", "kind"],
        ),
        "CredentialCreate": obj(
            {
                "type": {"type": "string", "enum": ["secret", "jwks", "jwks_uri"]},
                "jwks": {"type": "object", "description": "With type jwks: a public JWK Set."},
                "jwks_uri": text(2048, 1, description="With type jwks_uri."),
                "replace": {
                    "type": "boolean",
                    "description": "Retire the live credentials of the same family (secrets, "
                    "or keys) after `grace` seconds.",
                },
                "grace": {"type": "integer", "minimum": 0, "maximum": MAX_INT},
            },
            ["type"],
        ),
        "Reason": obj({"reason": text(1000)}, []),
        "RequiredReason": obj({"reason": text(1000, 1)}, ["reason"]),
        "IssuerCreate": obj(
            {
                "issuer": {"type": "string", "pattern": URI_PATTERN},
                "jwks": {"type": "object", "description": "Public JWK Set (or jwks_uri)."},
                "jwks_uri": text(2048, 1),
                "audiences": array(text(2048, 1), maxItems=32),
                "algorithms": array(
                    {"type": "string", "enum": list(ASYMMETRIC_JWS_ALGORITHMS)}, maxItems=10
                ),
                "scope_mode": {"type": "string", "enum": ["rule", "cap"]},
            },
            ["issuer"],
        ),
        "RuleCreate": obj(
            {
                "actor": {"type": "string", "pattern": NAME_PATTERN},
                "targets": array(
                    {"type": "string", "pattern": TARGET_PATTERN},
                    minItems=1,
                    maxItems=64,
                    description="Target NHIs; `*` means any registered target.",
                ),
                "scope": text(1024),
                "subject": text(
                    2048, 1, description="any | SUB | sub:SUB | issuer:ISS | kind:KIND"
                ),
                "upstream": nullable({"type": "string", "pattern": NAME_PATTERN}),
                "max_depth": nullable({"type": "integer", "minimum": 1, "maximum": 32}),
                "max_ttl": nullable({"type": "integer", "minimum": 1, "maximum": MAX_INT}),
                "expires": nullable(text(64, 1, description="ISO 8601 with a time zone.")),
            },
            ["actor", "targets", "scope"],
        ),
        "RevocationCreate": obj(
            {
                "kind": {"type": "string", "enum": list(REVOCATION_KINDS)},
                "target": text(
                    2048, 1, description="jti, NHI name, credential id, rule id, issuer or txn"
                ),
                "reason": text(1000),
                "dry_run": {"type": "boolean", "description": "Only report the blast radius."},
            },
            ["kind", "target"],
        ),
        # -- OAuth endpoints --
        "OAuthError": obj(
            {"error": STR, "error_description": STR}, ["error", "error_description"], closed=False
        ),
        "TokenRequest": obj(
            {
                "grant_type": STR,
                "scope": STR,
                "audience": STR,
                "resource": STR,
                "subject_token": STR,
                "subject_token_type": STR,
                "actor_token": STR,
                "actor_token_type": STR,
                "requested_token_type": STR,
                "client_id": STR,
                "client_secret": STR,
                "client_assertion": STR,
                "client_assertion_type": STR,
            },
            ["grant_type"],
            closed=False,
        ),
        "TokenResponse": obj(
            {
                "access_token": STR,
                "issued_token_type": STR,
                "token_type": {"type": "string", "enum": ["Bearer"]},
                "expires_in": INT,
                "scope": STR,
            },
            ["access_token", "token_type", "expires_in"],
        ),
        "TokenParam": obj(
            {
                "token": STR,
                "token_type_hint": STR,
                "client_id": STR,
                "client_secret": STR,
                "client_assertion": STR,
                "client_assertion_type": STR,
            },
            ["token"],
            closed=False,
        ),
        "Introspection": obj(
            {
                "active": BOOL,
                "token_type": STR,
                "iss": STR,
                "sub": STR,
                "aud": {"type": ["string", "array"], "items": STR},
                "client_id": STR,
                "scope": STR,
                "exp": INT,
                "iat": INT,
                "nbf": INT,
                "jti": STR,
                "txn": STR,
                "act": {"type": "object"},
                "depth": INT,
            },
            ["active"],
        ),
        "RevocationFeed": obj(
            {"revoked": array(obj({"jti": STR, "exp": INT})), "next": STR, "more": BOOL}
        ),
        "Metadata": obj(
            {
                "issuer": STR,
                "token_endpoint": STR,
                "jwks_uri": STR,
                "introspection_endpoint": STR,
                "revocation_endpoint": STR,
                "revocation_feed_endpoint": STR,
                "grant_types_supported": STRINGS,
                "token_endpoint_auth_methods_supported": STRINGS,
            },
            closed=False,
        ),
        "Jwks": obj(
            {"keys": array(obj({"kty": STR, "kid": STR}, ["kty"], closed=False))},
        ),
        "Health": obj({"status": {"type": "string", "enum": ["ok"]}}),
        "Readiness": obj(
            {
                "status": {"type": "string", "enum": ["ready", "not ready"]},
                "checks": {"type": "object", "additionalProperties": STR},
            }
        ),
    }


# -- operations -------------------------------------------------------------------------------
def _json(schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
        **extra,
    }


def _error(description: str, **extra: Any) -> dict[str, Any]:
    return _json(ref("Error"), description, **extra)


def _oauth_error(description: str, **extra: Any) -> dict[str, Any]:
    return _json(ref("OAuthError"), description, **extra)


WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": "RFC 6750 §3: `Bearer` with the error and, for 403, the scope needed.",
        "required": True,
        "schema": STR,
    }
}
NO_STORE = {
    "Cache-Control": {"schema": {"type": "string", "enum": ["no-store"]}},
    "Pragma": {"schema": {"type": "string", "enum": ["no-cache"]}},
}


def _path_param(name: str, pattern: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": pattern},
    }


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    param = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        param["description"] = description
    return param


NAME_PARAM = _path_param("name", NAME_PATTERN, "The NHI's client_id.")
CREDENTIAL_PARAM = _path_param("credential_id", ID_PATTERN, "A credential id.")
RULE_PARAM = _path_param("rule_id", ID_PATTERN, "A delegation rule id.")
JTI_PARAM = _path_param("jti", ID_PATTERN, "A token's jti.")
TXN_PARAM = _path_param("txn", ID_PATTERN, "A transaction id (the jti of its root token).")
ISSUER_PARAM = _path_param(
    "issuer", URI_PATTERN, "The issuer identifier, percent-encoded (`/` as `%2F`)."
)
LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 100})
OFFSET = _query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_INT, "default": 0})


def _admin_op(
    operation_id: str,
    summary: str,
    scopes: tuple[str, ...],
    responses: dict[str, Any],
    *,
    tag: str,
    parameters: list[dict[str, Any]] | None = None,
    body: str | None = None,
    body_required: bool = True,
    description: str = "",
    not_found: bool = False,
) -> dict[str, Any]:
    allowed = ", ".join(f"`{s}`" for s in scopes)
    op: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "description": (description + "\n\n" if description else "") + f"Scopes: {allowed}.",
        "tags": [tag],
        "security": [{"adminToken": [scope]} for scope in scopes],
        "parameters": parameters or [],
        "responses": {
            **responses,
            "401": _error("No bearer token, or not an admin token.", headers=WWW_AUTHENTICATE),
            "403": _error("The token lacks the scope this needs.", headers=WWW_AUTHENTICATE),
            "default": _error("Any other error."),
        },
    }
    if not_found:
        op["responses"]["404"] = _error("Not found.")
    if body is not None:
        op["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": ref(body)}},
        }
        op["responses"]["422"] = _error(
            "The body or a parameter is invalid (`fields` names each input at fault)."
        )
        op["responses"]["400"] = _error("The body is not JSON.")
    elif any(p["in"] == "query" for p in parameters or []):
        op["responses"]["422"] = _error("A query parameter is invalid.")
    return op


READ = (ADMIN, AUDIT)
WRITE = (ADMIN,)
CONTAIN = (ADMIN, REVOKE)


@lru_cache(maxsize=1)
def admin_paths() -> dict[str, Any]:
    """The admin API's path items (shared: never change the result)."""
    nhi, cred = _json(ref("Nhi"), "The NHI."), _json(ref("Credential"), "The credential.")
    revoked = _json(ref("RevocationResult"), "What was revoked.")
    return {
        f"{PREFIX}/nhis": {
            "get": _admin_op(
                "listNhis",
                "List NHIs",
                READ,
                {"200": _json(ref("NhiPage"), "A page of NHIs, by name.")},
                tag="nhis",
                parameters=[
                    _query("kind", {"type": "string", "enum": list(KINDS)}),
                    _query("status", {"type": "string", "enum": ["active", "disabled"]}),
                    LIMIT,
                    OFFSET,
                ],
            ),
            "post": _admin_op(
                "createNhi",
                "Register an NHI",
                WRITE,
                {
                    "201": _json(
                        ref("NhiCreated"),
                        "Registered. Without a JWKS it authenticates by a generated secret, "
                        "returned here once.",
                        headers={"Location": {"schema": STR}},
                    ),
                    "200": _json(
                        ref("Nhi"),
                        "Already registered with the same attributes: nothing changed, and "
                        "no secret is shown again.",
                    ),
                    "409": _error(
                        "The name is taken by an NHI with other attributes, or "
                        "the sub or a resource URI by another NHI."
                    ),
                },
                tag="nhis",
                body="NhiCreate",
                description="Idempotent: repeating a create with the same name and attributes "
                "returns the NHI (200) instead of a conflict.",
            ),
        },
        f"{PREFIX}/nhis/{{name}}": {
            "get": _admin_op(
                "getNhi",
                "Show an NHI",
                READ,
                {"200": nhi},
                tag="nhis",
                parameters=[NAME_PARAM],
                not_found=True,
            ),
        },
        f"{PREFIX}/nhis/{{name}}/disable": {
            "post": _admin_op(
                "disableNhi",
                "Disable an NHI",
                CONTAIN,
                {"200": nhi},
                tag="nhis",
                parameters=[NAME_PARAM],
                body="RequiredReason",
                not_found=True,
                description="It can no longer authenticate, act or be a target; tokens in "
                "whose chain it appears stop being accepted.",
            ),
        },
        f"{PREFIX}/nhis/{{name}}/enable": {
            "post": _admin_op(
                "enableNhi",
                "Enable a disabled NHI",
                WRITE,
                {"200": nhi},
                tag="nhis",
                parameters=[NAME_PARAM],
                not_found=True,
            ),
        },
        f"{PREFIX}/nhis/{{name}}/credentials": {
            "get": _admin_op(
                "listCredentials",
                "List an NHI's credentials",
                READ,
                {"200": _json(ref("CredentialList"), "Oldest first; never a secret.")},
                tag="credentials",
                parameters=[NAME_PARAM],
                not_found=True,
            ),
            "post": _admin_op(
                "addCredential",
                "Add a secret, a JWKS or a JWKS URI",
                WRITE,
                {
                    "201": _json(
                        ref("CredentialCreated"),
                        "Added; a generated secret is returned here once.",
                        headers={"Location": {"schema": STR}},
                    )
                },
                tag="credentials",
                parameters=[NAME_PARAM],
                body="CredentialCreate",
                not_found=True,
                description="With `replace`, the live credentials of the same family stop "
                "working after `grace` seconds (default 0: at once): a rotation.",
            ),
        },
        f"{PREFIX}/nhis/{{name}}/credentials/{{credential_id}}": {
            "get": _admin_op(
                "getCredential",
                "Show a credential",
                READ,
                {"200": cred},
                tag="credentials",
                parameters=[NAME_PARAM, CREDENTIAL_PARAM],
                not_found=True,
            ),
        },
        f"{PREFIX}/nhis/{{name}}/credentials/{{credential_id}}/revoke": {
            "post": _admin_op(
                "revokeCredential",
                "Revoke a credential",
                CONTAIN,
                {"200": revoked},
                tag="credentials",
                parameters=[NAME_PARAM, CREDENTIAL_PARAM],
                body="Reason",
                body_required=False,
                not_found=True,
                description="And every live token obtained with it, with their descendants.",
            ),
        },
        f"{PREFIX}/issuers": {
            "get": _admin_op(
                "listIssuers",
                "List trusted issuers",
                READ,
                {"200": _json(ref("IssuerList"), "Trusted issuers.")},
                tag="issuers",
            ),
            "post": _admin_op(
                "addIssuer",
                "Trust an external issuer",
                WRITE,
                {
                    "201": _json(ref("Issuer"), "Trusted.", headers={"Location": {"schema": STR}}),
                    "200": _json(ref("Issuer"), "Already trusted with the same settings."),
                    "409": _error("Already trusted with other settings."),
                },
                tag="issuers",
                body="IssuerCreate",
                description="Exactly one of `jwks` and `jwks_uri`. Idempotent like NHIs.",
            ),
        },
        f"{PREFIX}/issuers/{{issuer}}": {
            "get": _admin_op(
                "getIssuer",
                "Show a trusted issuer",
                READ,
                {"200": _json(ref("Issuer"), "The issuer.")},
                tag="issuers",
                parameters=[ISSUER_PARAM],
                not_found=True,
            ),
        },
        f"{PREFIX}/rules": {
            "get": _admin_op(
                "listRules",
                "List delegation rules",
                READ,
                {"200": _json(ref("RulePage"), "A page of rules, oldest first.")},
                tag="rules",
                parameters=[
                    _query("actor", {"type": "string", "pattern": NAME_PATTERN}),
                    _query("status", {"type": "string", "enum": ["enabled", "disabled"]}),
                    LIMIT,
                    OFFSET,
                ],
            ),
            "post": _admin_op(
                "createRule",
                "Create a delegation rule",
                WRITE,
                {
                    "201": _json(ref("Rule"), "Created.", headers={"Location": {"schema": STR}}),
                    "200": _json(ref("Rule"), "An enabled rule saying exactly this exists."),
                },
                tag="rules",
                body="RuleCreate",
                description="Rules have no name: an enabled rule with the same actor, targets, "
                "scope, subject, upstream, limits and expiry is returned (200) instead of a "
                "duplicate. An unknown actor, target or upstream is a 422 naming the field.",
            ),
        },
        f"{PREFIX}/rules/{{rule_id}}": {
            "get": _admin_op(
                "getRule",
                "Show a rule",
                READ,
                {"200": _json(ref("Rule"), "The rule.")},
                tag="rules",
                parameters=[RULE_PARAM],
                not_found=True,
            ),
        },
        f"{PREFIX}/rules/{{rule_id}}/disable": {
            "post": _admin_op(
                "disableRule",
                "Disable a rule",
                CONTAIN,
                {"200": _json(ref("Rule"), "The rule, disabled.")},
                tag="rules",
                parameters=[RULE_PARAM],
                body="Reason",
                body_required=False,
                not_found=True,
                description="No new exchanges under it; tokens it minted stop being accepted.",
            ),
        },
        f"{PREFIX}/revocations": {
            "post": _admin_op(
                "createRevocation",
                "Revoke a token, NHI, credential, rule, issuer or transaction",
                (ADMIN, REVOKE, AUDIT),
                {
                    "201": _json(ref("RevocationResult"), "Revoked, with every derived token."),
                    "200": _json(ref("RevocationResult"), "Dry run: the blast radius."),
                },
                tag="revocations",
                body="RevocationCreate",
                not_found=True,
                description="Revokes the target and every live token derived from it, at any "
                "depth. `dry_run` changes nothing and reports what would die. `sts:audit` "
                "may only dry-run. An unknown target is a 404 naming its kind.",
            ),
        },
        f"{PREFIX}/transactions/{{txn}}/chain": {
            "get": _admin_op(
                "getTransactionChain",
                "Lineage of a transaction",
                READ,
                {"200": _json(ref("Chain"), "Every token of the transaction, as a tree.")},
                tag="chains",
                parameters=[TXN_PARAM],
                not_found=True,
            ),
        },
        f"{PREFIX}/tokens/{{jti}}/chain": {
            "get": _admin_op(
                "getTokenChain",
                "Lineage of a token",
                READ,
                {"200": _json(ref("Chain"), "Its ancestors and all its descendants.")},
                tag="chains",
                parameters=[JTI_PARAM],
                not_found=True,
            ),
        },
        f"{PREFIX}/transactions/{{txn}}/audit": {
            "get": _admin_op(
                "getTransactionAudit",
                "The story of a transaction",
                READ,
                {
                    "200": _json(
                        ref("AuditStory"),
                        "Who initiated it, who executed it, hops, denials, revocations.",
                    )
                },
                tag="audit",
                parameters=[TXN_PARAM],
                not_found=True,
            ),
        },
        f"{PREFIX}/tokens/{{jti}}/audit": {
            "get": _admin_op(
                "getTokenAudit",
                "The story of a token's transaction",
                READ,
                {"200": _json(ref("AuditStory"), "As for its transaction, focused on it.")},
                tag="audit",
                parameters=[JTI_PARAM],
                not_found=True,
            ),
        },
        f"{PREFIX}/audit/events": {
            "get": _admin_op(
                "listAuditEvents",
                "Audit events, newest first",
                READ,
                {"200": _json(ref("AuditEventList"), "Matching events.")},
                tag="audit",
                parameters=[
                    _query("actor", text(255, 1), "Client that made the request or change."),
                    _query("subject", text(2048, 1)),
                    _query(
                        "since",
                        {"type": "integer", "minimum": 0, "maximum": MAX_TIME},
                        "Epoch seconds.",
                    ),
                    _query("decision", {"type": "string", "enum": ["allowed", "denied", "done"]}),
                    _query("event", text(64, 1), "e.g. token.issued, admin.revoke.nhi"),
                    LIMIT,
                ],
            ),
        },
    }


def _form(schema: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/x-www-form-urlencoded": {"schema": ref(schema)}},
    }


CLIENT_AUTH: list[dict[str, list[str]]] = [{"clientBasic": []}, {}]


def _oauth_paths() -> dict[str, Any]:
    invalid_client = _oauth_error("invalid_client: client authentication failed (RFC 6749 §5.2).")
    unavailable = _oauth_error("temporarily_unavailable: the registry is unreachable.")
    return {
        TOKEN_PATH: {
            "post": {
                "operationId": "token",
                "summary": "Token endpoint: client_credentials and token exchange",
                "description": "RFC 6749 §3.2 and RFC 8693 §2. Clients authenticate with "
                "HTTP Basic, client_secret_post or private_key_jwt (RFC 7523).",
                "tags": ["oauth"],
                "security": CLIENT_AUTH,
                "requestBody": _form("TokenRequest"),
                "responses": {
                    "200": _json(ref("TokenResponse"), "Issued.", headers=NO_STORE),
                    "400": _oauth_error(
                        "invalid_request, unauthorized_client, "
                        "invalid_target, invalid_scope or "
                        "unsupported_grant_type."
                    ),
                    "401": invalid_client,
                    "503": unavailable,
                    "default": _oauth_error("Any other error."),
                },
            }
        },
        INTROSPECTION_PATH: {
            "post": {
                "operationId": "introspect",
                "summary": "Token introspection (RFC 7662)",
                "tags": ["oauth"],
                "security": CLIENT_AUTH,
                "requestBody": _form("TokenParam"),
                "responses": {
                    "200": _json(
                        ref("Introspection"),
                        '`{"active": false}` for anything '
                        "revoked, expired, unknown or not the caller's.",
                        headers=NO_STORE,
                    ),
                    "400": _oauth_error("invalid_request."),
                    "401": invalid_client,
                    "503": unavailable,
                    "default": _oauth_error("Any other error."),
                },
            }
        },
        REVOCATION_PATH: {
            "post": {
                "operationId": "revoke",
                "summary": "Token revocation (RFC 7009)",
                "tags": ["oauth"],
                "security": CLIENT_AUTH,
                "requestBody": _form("TokenParam"),
                "responses": {
                    "200": _json(
                        {"type": "object", "maxProperties": 0},
                        "Always, whether or not anything was revoked.",
                    ),
                    "400": _oauth_error("invalid_request."),
                    "401": invalid_client,
                    "503": unavailable,
                    "default": _oauth_error("Any other error."),
                },
            }
        },
        FEED_PATH: {
            "get": {
                "operationId": "revocationFeed",
                "summary": "Revoked, still-unexpired jtis after a cursor",
                "tags": ["oauth"],
                "security": [{"clientBasic": []}, {"feedBearer": []}],
                "parameters": [
                    _query("since", STR, "The `next` of the previous answer; empty: start."),
                ],
                "responses": {
                    "200": _json(ref("RevocationFeed"), "A page.", headers=NO_STORE),
                    "400": _oauth_error("Malformed cursor."),
                    "401": invalid_client,
                    "503": unavailable,
                    "default": _oauth_error("Any other error."),
                },
            }
        },
        METADATA_PATH: {
            "get": {
                "operationId": "metadata",
                "summary": "Authorization server metadata (RFC 8414)",
                "tags": ["discovery"],
                "security": [],
                "responses": {"200": _json(ref("Metadata"), "Metadata.")},
            }
        },
        JWKS_PATH: {
            "get": {
                "operationId": "jwks",
                "summary": "Public signing keys (RFC 7517)",
                "tags": ["discovery"],
                "security": [],
                "responses": {"200": _json(ref("Jwks"), "Keys.")},
            }
        },
        OPENAPI_PATH: {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "tags": ["discovery"],
                "security": [],
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1.")},
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness",
                "tags": ["operations"],
                "security": [],
                "responses": {"200": _json(ref("Health"), "Up.")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: database reachable and migrated, keys loaded",
                "tags": ["operations"],
                "security": [],
                "responses": {
                    "200": _json(ref("Readiness"), "Ready."),
                    "503": _json(ref("Readiness"), "Not ready, with the check that failed."),
                },
            }
        },
    }


@lru_cache(maxsize=8)
def _document(issuer: str) -> dict[str, Any]:
    base = issuer.rstrip("/")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Chain STS",
            "version": __version__,
            "summary": "OAuth 2.0 token exchange with identity chaining, and its admin API.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": base}],
        "tags": [
            {"name": "oauth", "description": "Token, introspection, revocation, feed."},
            {"name": "discovery"},
            {"name": "operations"},
            {"name": "nhis", "description": "Admin: non-human identities."},
            {"name": "credentials", "description": "Admin: NHI credentials."},
            {"name": "issuers", "description": "Admin: trusted external issuers."},
            {"name": "rules", "description": "Admin: delegation rules."},
            {"name": "revocations", "description": "Admin: revoke and see the blast radius."},
            {"name": "chains", "description": "Admin: lineage of tokens and transactions."},
            {"name": "audit", "description": "Admin: the audit trail."},
        ],
        "paths": {**_oauth_paths(), **admin_paths()},
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "adminToken": {
                    "type": "oauth2",
                    "description": "A bearer token this STS issued by client_credentials to an "
                    "active NHI for itself (audience: this STS) carrying an admin scope. "
                    "Tokens minted by a token exchange are never admin credentials.",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": base + TOKEN_PATH,
                            "scopes": {
                                ADMIN: "Everything.",
                                AUDIT: "Read only: registry, chains, audit, dry-run revocations.",
                                REVOKE: "Contain: revoke, disable NHIs and rules.",
                            },
                        }
                    },
                },
                "clientBasic": {"type": "http", "scheme": "basic"},
                "feedBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A client_credentials token of the polling client.",
                },
            },
        },
    }


def document(issuer: str) -> dict[str, Any]:
    """The document for this issuer (a copy: callers may change it)."""
    return copy.deepcopy(_document(issuer))


def parameters(path: str, method: str) -> list[dict[str, Any]]:
    """The parameters of an admin operation."""
    params: list[dict[str, Any]] = admin_paths()[PREFIX + path][method]["parameters"]
    return params
