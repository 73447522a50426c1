"""The SSF transmitter (OpenID SSF 1.0, RFC 8936 poll): metadata, stream management, status,
verification and a poll stream's endpoint."""

from __future__ import annotations

from typing import Any

from sts.admin_api.openapi.common import (
    BOOL,
    INT,
    OBJECT,
    STR,
    STRINGS,
    Schema,
    array,
    enum,
    integer,
    matching,
    obj,
    query,
    ref,
    response,
    text,
)

TAGS = [{"name": "ssf", "description": "Revocations pushed as Shared Signals events."}]
STREAM_ID = r"^[A-Za-z0-9_-]{1,64}$"
SECURITY: list[dict[str, list[str]]] = [{"ssfToken": []}]
NO_CONTENT = {"description": "Done."}
METHODS = ["urn:ietf:rfc:8935", "urn:ietf:rfc:8936"]


def schemas() -> dict[str, Schema]:
    delivery = obj(
        {"method": enum(METHODS), "endpoint_url": text(2048), "authorization_header": text(4096)},
        ["method"],
    )
    config = {
        "stream_id": STR,
        "iss": STR,
        "aud": STR,
        "events_supported": STRINGS,
        "events_requested": STRINGS,
        "events_delivered": STRINGS,
        "delivery": obj({"method": enum(METHODS), "endpoint_url": STR}, ["method"]),
        "min_verification_interval": INT,
        "description": STR,
    }
    return {
        "SsfError": obj(
            {
                "error": STR,
                "error_description": STR,
                "code": STR,
                "fields": array(obj({"field": STR, "message": STR})),
            },
            ["error", "error_description", "code"],
        ),
        "SsfMetadata": obj(
            {
                "spec_version": STR,
                "issuer": STR,
                "jwks_uri": STR,
                "delivery_methods_supported": STRINGS,
                "configuration_endpoint": STR,
                "status_endpoint": STR,
                "verification_endpoint": STR,
                "authorization_schemes": array(obj({"spec_urn": STR})),
            },
            closed=False,
        ),
        "SsfStream": obj(config),
        "SsfStreams": {"oneOf": [ref("SsfStream"), array(ref("SsfStream"))]},
        "SsfStreamRequest": obj(
            {
                "delivery": delivery,
                "events_requested": array(text(2048), maxItems=32),
                "description": text(255),
                **{k: v for k, v in config.items() if k not in ("delivery", "description")},
            },
            ["delivery"],
        ),
        "SsfStreamUpdate": obj(
            {
                "stream_id": matching(STREAM_ID),
                "delivery": delivery,
                "events_requested": array(text(2048), maxItems=32),
                "description": text(255),
                **{k: v for k, v in config.items() if k not in ("delivery", "description")},
            },
            ["stream_id"],
        ),
        "SsfStatus": obj(
            {
                "stream_id": matching(STREAM_ID),
                "status": enum(["enabled", "paused", "disabled"]),
                "reason": text(255),
            },
            ["stream_id", "status"],
        ),
        "SsfVerification": obj(
            {"stream_id": matching(STREAM_ID), "state": text(1024)}, ["stream_id"]
        ),
        "SsfPollRequest": obj(
            {
                "maxEvents": integer(0, 2**31 - 1),
                "returnImmediately": BOOL,
                "ack": array(STR),
                "setErrs": {"type": "object", "additionalProperties": OBJECT},
            },
            [],
        ),
        "SsfPollResponse": obj(
            {"sets": {"type": "object", "additionalProperties": STR}, "moreAvailable": BOOL}
        ),
    }


def _error(description: str) -> Schema:
    return response("SsfError", description)


def _op(operation_id: str, summary: str, ok: dict[str, Schema], **extra: Any) -> Schema:
    return {
        "operationId": operation_id,
        "summary": summary,
        "tags": ["ssf"],
        "security": SECURITY,
        **extra,
        "responses": {
            **ok,
            "400": _error("Malformed request or configuration; nothing stored."),
            "401": _error("No valid bearer token of a receiver."),
            "403": _error("The token lacks the scope ssf:manage."),
            "404": _error("No such stream (or another receiver's)."),
            "415": _error("The body is not application/json."),
            "default": response("OAuthError", "Any other error (503: registry unreachable)."),
        },
    }


def _body(schema: str) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": ref(schema)}}}


STREAM_QUERY = query("stream_id", matching(STREAM_ID), "The stream (all of the caller's: none).")


def paths() -> dict[str, Schema]:
    return {
        "/.well-known/ssf-configuration": {
            "get": {
                "operationId": "ssfMetadata",
                "summary": "SSF transmitter metadata (SSF 1.0 §7.1)",
                "tags": ["ssf"],
                "security": [],
                "responses": {"200": response("SsfMetadata", "Metadata.")},
            }
        },
        "/ssf/stream": {
            "get": _op(
                "ssfStreamGet",
                "A stream's configuration, or all of the caller's",
                {"200": response("SsfStreams", "One stream, or a list without stream_id.")},
                parameters=[STREAM_QUERY],
            ),
            "post": _op(
                "ssfStreamCreate",
                "Create a stream (SSF 1.0 §8.1.1.1); a push endpoint must answer",
                {"201": response("SsfStream", "Created.")},
                requestBody=_body("SsfStreamRequest"),
            ),
            "put": _op(
                "ssfStreamReplace",
                "Replace a stream's configuration",
                {"200": response("SsfStream", "Replaced.")},
                requestBody=_body("SsfStreamUpdate"),
            ),
            "patch": _op(
                "ssfStreamUpdate",
                "Change members of a stream's configuration",
                {"200": response("SsfStream", "Updated.")},
                requestBody=_body("SsfStreamUpdate"),
            ),
            "delete": _op(
                "ssfStreamDelete",
                "Delete a stream and what waits for it",
                {"204": NO_CONTENT},
                parameters=[STREAM_QUERY],
            ),
        },
        "/ssf/status": {
            "get": _op(
                "ssfStatusGet",
                "A stream's status (SSF 1.0 §8.1.2.1)",
                {"200": response("SsfStatus", "Status.")},
                parameters=[STREAM_QUERY],
            ),
            "post": _op(
                "ssfStatusSet",
                "Enable, pause or disable a stream (SSF 1.0 §8.1.2.2)",
                {"200": response("SsfStatus", "Status.")},
                requestBody=_body("SsfStatus"),
            ),
        },
        "/ssf/verify": {
            "post": _op(
                "ssfVerify",
                "Ask for a verification event (SSF 1.0 §8.1.4.2)",
                {
                    "204": NO_CONTENT,
                    "429": _error("Sooner than min_verification_interval after the last."),
                },
                requestBody=_body("SsfVerification"),
            )
        },
        "/ssf/poll/{stream_id}": {
            "post": _op(
                "ssfPoll",
                "Acknowledge and poll SETs (RFC 8936 §2.4)",
                {"200": response("SsfPollResponse", "SETs by jti, in order.")},
                parameters=[
                    {
                        "name": "stream_id",
                        "in": "path",
                        "required": True,
                        "schema": matching(STREAM_ID),
                    }
                ],
                requestBody=_body("SsfPollRequest"),
            )
        },
    }
