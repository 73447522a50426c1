"""The OAuth endpoints (token, introspection, revocation, the revocation feed), discovery
(metadata, JWKS, this document) and the operations probes."""

from __future__ import annotations

from typing import Any

from sts.admin_api.openapi.common import (
    BOOL,
    INT,
    OBJECT,
    OPENAPI_PATH,
    STR,
    STRINGS,
    Schema,
    array,
    described,
    enum,
    obj,
    query,
    ref,
    response,
)
from sts.oauth.rfc8414 import (
    ACCESS_REPORT_PATH,
    FEED_PATH,
    INTROSPECTION_PATH,
    JWKS_PATH,
    METADATA_PATH,
    REVOCATION_PATH,
    TOKEN_PATH,
)

TAGS = [
    {"name": "oauth", "description": "Token, introspection, revocation, feed."},
    {"name": "discovery"},
    {"name": "operations"},
]
#: The client authentication parameters of a form endpoint (besides HTTP Basic).
CLIENT_AUTH_PARAMS = {
    "client_id": STR,
    "client_secret": STR,
    "client_assertion": STR,
    "client_assertion_type": STR,
}
CLIENT_AUTH: list[dict[str, list[str]]] = [{"clientBasic": []}, {}]
NO_STORE = {
    "Cache-Control": {"schema": enum(["no-store"])},
    "Pragma": {"schema": enum(["no-cache"])},
}


def _access_report() -> Schema:
    return {
        "jti": described(STR, "The token the access was made under."),
        "resource": described(STR, "What was touched (a URI, table, path)."),
        "action": described(STR, "What was done: read, write, list, send, ..."),
        "data_classes": described(STRINGS, "e.g. pii, financial (at most 32)."),
        "records": INT,
        "bytes": INT,
        "destination": described(STR, "Where the data went, if it left."),
        "outcome": STR,
        "at": described(INT, "When (epoch seconds; default: received)."),
    }


def schemas() -> dict[str, Schema]:
    return {
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
                **CLIENT_AUTH_PARAMS,
            },
            ["grant_type"],
            closed=False,
        ),
        "TokenResponse": obj(
            {
                "access_token": STR,
                "issued_token_type": STR,
                "token_type": described(
                    enum(["Bearer", "DPoP"]),
                    "DPoP when the request carried a DPoP proof (RFC 9449 §5): the token is "
                    "bound to its key (`cnf.jkt`).",
                ),
                "expires_in": INT,
                "scope": STR,
            },
            ["access_token", "token_type", "expires_in"],
        ),
        "TokenParam": obj(
            {"token": STR, "token_type_hint": STR, **CLIENT_AUTH_PARAMS}, ["token"], closed=False
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
                "act": OBJECT,
                "sub_id": described(
                    obj({"format": enum(["iss_sub"]), "iss": STR, "sub": STR}),
                    "RFC 9493: the trusted issuer the subject came from (absent when the "
                    "subject is an NHI of this STS).",
                ),
                "cnf": described(
                    obj({"jkt": STR}),
                    "RFC 9449 §6.2: the thumbprint of the key a DPoP-bound token is bound to "
                    "(token_type is then DPoP).",
                ),
                "depth": INT,
            },
            ["active"],
        ),
        "AccessReport": obj(_access_report(), ["jti", "resource", "action"]),
        "AccessReportRequest": described(
            obj(
                {
                    **_access_report(),
                    "reports": array(ref("AccessReport"), minItems=1, maxItems=100),
                    **CLIENT_AUTH_PARAMS,
                },
            ),
            "One report (jti, resource and action required) or a batch as reports (and no "
            "report member beside it), with client_id/client_secret or "
            "client_assertion/client_assertion_type unless HTTP Basic is used.",
        ),
        "AccessReportError": obj(
            {
                "error": STR,
                "error_description": STR,
                "code": enum(
                    [
                        "unsupported_media_type",
                        "body_too_large",
                        "malformed_json",
                        "invalid_report",
                        "batch_too_large",
                        "unknown_token",
                        "token_expired",
                        "at_outside_lifetime",
                    ]
                ),
                "fields": array(obj({"field": STR, "message": STR})),
            },
            ["error", "error_description", "code"],
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
                "access_report_endpoint": STR,
                "grant_types_supported": STRINGS,
                "token_endpoint_auth_methods_supported": STRINGS,
            },
            closed=False,
        ),
        "Jwks": obj({"keys": array(obj({"kty": STR, "kid": STR}, ["kty"], closed=False))}),
        "Health": obj({"status": enum(["ok"])}),
        "Readiness": obj(
            {
                "status": enum(["ready", "not ready"]),
                "checks": {"type": "object", "additionalProperties": STR},
            }
        ),
    }


def oauth_error(description: str) -> Schema:
    return response("OAuthError", description)


def _oauth_op(
    operation_id: str,
    summary: str,
    ok: Schema,
    bad_request: str,
    *,
    security: list[dict[str, list[str]]] = CLIENT_AUTH,
    **extra: Any,
) -> Schema:
    """An OAuth endpoint: its answer, and the errors every OAuth endpoint shares."""
    return {
        "operationId": operation_id,
        "summary": summary,
        "tags": ["oauth"],
        "security": security,
        **extra,
        "responses": {
            "200": ok,
            "400": oauth_error(bad_request),
            "401": oauth_error("invalid_client: client authentication failed (RFC 6749 §5.2)."),
            "503": oauth_error("temporarily_unavailable: the registry is unreachable."),
            "default": oauth_error("Any other error."),
        },
    }


def _form(schema: str) -> Schema:
    return {
        "required": True,
        "content": {"application/x-www-form-urlencoded": {"schema": ref(schema)}},
    }


def _public_op(operation_id: str, summary: str, tag: str, responses: Schema) -> Schema:
    """An endpoint anyone may call."""
    return {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "security": [],
        "responses": responses,
    }


def paths() -> dict[str, Schema]:
    return {
        TOKEN_PATH: {
            "post": _oauth_op(
                "token",
                "Token endpoint: client_credentials and token exchange",
                response("TokenResponse", "Issued.", headers=NO_STORE),
                "invalid_request, unauthorized_client, invalid_target, invalid_scope, "
                "unsupported_grant_type, invalid_dpop_proof or use_dpop_nonce (RFC 9449: "
                "with a DPoP-Nonce header).",
                description="RFC 6749 §3.2 and RFC 8693 §2. Clients authenticate with "
                "HTTP Basic, client_secret_post or private_key_jwt (RFC 7523; a workload "
                "may present its SPIFFE JWT-SVID as the assertion). A `DPoP` header (RFC "
                "9449) binds the issued token to the proof's key.",
                requestBody=_form("TokenRequest"),
            )
        },
        INTROSPECTION_PATH: {
            "post": _oauth_op(
                "introspect",
                "Token introspection (RFC 7662)",
                response(
                    "Introspection",
                    '`{"active": false}` for anything '
                    "revoked, expired, unknown or not the caller's.",
                    headers=NO_STORE,
                ),
                "invalid_request.",
                requestBody=_form("TokenParam"),
            )
        },
        REVOCATION_PATH: {
            "post": _oauth_op(
                "revoke",
                "Token revocation (RFC 7009)",
                response(
                    {"type": "object", "maxProperties": 0},
                    "Always, whether or not anything was revoked.",
                ),
                "invalid_request.",
                requestBody=_form("TokenParam"),
            )
        },
        FEED_PATH: {
            "get": _oauth_op(
                "revocationFeed",
                "Revoked, still-unexpired jtis after a cursor",
                response("RevocationFeed", "A page.", headers=NO_STORE),
                "Malformed cursor.",
                security=[{"clientBasic": []}, {"feedBearer": []}],
                parameters=[
                    query("since", STR, "The `next` of the previous answer; empty: start."),
                ],
            )
        },
        ACCESS_REPORT_PATH: {
            "post": {
                "operationId": "reportAccess",
                "summary": "Report what was done under a token (its audience only)",
                "description": "DESIGN §10. Accepted from the token's audience, for a token "
                "of this STS, until its exp plus STS_ACCESS_REPORT_GRACE; a batch is stored "
                "whole or not at all.",
                "tags": ["oauth"],
                "security": CLIENT_AUTH,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("AccessReportRequest")}},
                },
                "responses": {
                    "201": response(obj({"stored": INT}), "Every report stored.", headers=NO_STORE),
                    **{
                        status: response("AccessReportError", text)
                        for status, text in (
                            ("400", "A report is malformed or refused (see code)."),
                            ("413", "body_too_large."),
                            ("415", "unsupported_media_type."),
                        )
                    },
                    "401": oauth_error("invalid_client: client authentication failed."),
                    "503": oauth_error("temporarily_unavailable: the registry is unreachable."),
                    "default": oauth_error("Any other error."),
                },
            }
        },
        METADATA_PATH: {
            "get": _public_op(
                "metadata",
                "Authorization server metadata (RFC 8414)",
                "discovery",
                {"200": response("Metadata", "Metadata.")},
            )
        },
        JWKS_PATH: {
            "get": _public_op(
                "jwks",
                "Public signing keys (RFC 7517)",
                "discovery",
                {"200": response("Jwks", "Keys.")},
            )
        },
        OPENAPI_PATH: {
            "get": _public_op(
                "openapi",
                "This document",
                "discovery",
                {"200": response(OBJECT, "OpenAPI 3.1.")},
            )
        },
        "/healthz": {
            "get": _public_op(
                "healthz", "Liveness", "operations", {"200": response("Health", "Up.")}
            )
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (text format 0.0.4)",
                "description": "With STS_METRICS=protected (the default): a bearer token with "
                "an admin scope, or STS_METRICS_TOKEN. STS_METRICS=open: anyone; off: 404 "
                "(STS_METRICS_LISTEN then serves them on a port of its own).",
                "tags": ["operations"],
                "security": [
                    {"adminToken": ["sts:admin"]},
                    {"adminToken": ["sts:audit"]},
                    {"metricsToken": []},
                    {},
                ],
                "responses": {
                    "200": {
                        "description": "Every metric.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": response("OAuthError", "No acceptable bearer token."),
                    "404": response("OAuthError", "Metrics are off here."),
                },
            }
        },
        "/readyz": {
            "get": _public_op(
                "readyz",
                "Readiness: database reachable and migrated, keys loaded",
                "operations",
                {
                    "200": response("Readiness", "Ready."),
                    "503": response("Readiness", "Not ready, with the check that failed."),
                },
            )
        },
    }
