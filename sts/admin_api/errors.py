"""Admin API errors: one JSON shape for every failure under ``/admin/``.

``{"error": ..., "error_description": ..., "code": ...}`` (and ``fields`` for input at fault):
``error`` is the class of problem (RFC 6750 names where a bearer token is at fault),
``code`` one of :data:`sts.admin_api.openapi.ERROR_CODES`, stable for scripts to branch on.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response

from sts.services.errors import Conflict, NotFound, ServiceError

#: Resources whose absence a path names, as error codes name them.
NOT_FOUND = {
    "nhi": "nhi_not_found",
    "credential": "credential_not_found",
    "issuer": "issuer_not_found",
    "rule": "rule_not_found",
    "token": "token_not_found",
    "txn": "transaction_not_found",
}
REALM = 'Bearer realm="chain-sts-admin"'


class ApiError(Exception):
    """An admin API answer other than success. ``reason`` is internal (audit and logs)."""

    def __init__(
        self,
        status: int,
        error: str,
        code: str,
        description: str,
        *,
        fields: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        reason: str = "",
    ) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.code = code
        self.description = description
        self.fields = fields
        self.headers = headers or {}
        self.reason = reason or description

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "error": self.error,
            "error_description": self.description,
            "code": self.code,
        }
        if self.fields is not None:
            body["fields"] = self.fields
        return body

    def response(self) -> Response:
        return json_response(self.body(), self.status, self.headers)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def invalid(fields: list[dict[str, str]]) -> ApiError:
    return ApiError(
        422,
        "invalid_request",
        "validation_failed",
        "The request is invalid: " + "; ".join(f"{f['field']}: {f['message']}" for f in fields),
        fields=fields,
    )


def not_found(resource: str, description: str | None = None) -> ApiError:
    code = NOT_FOUND[resource]
    return ApiError(404, "not_found", code, description or code.replace("_", " ").capitalize())


def unauthorized(code: str, description: str, reason: str = "") -> ApiError:
    header = REALM if code == "missing_token" else f'{REALM}, error="invalid_token"'
    return ApiError(
        401,
        "invalid_token",
        code,
        description,
        headers={"WWW-Authenticate": header},
        reason=reason,
    )


def forbidden(scopes: tuple[str, ...]) -> ApiError:
    return ApiError(
        403,
        "insufficient_scope",
        "insufficient_scope",
        f"This needs one of the scopes: {', '.join(scopes)}.",
        headers={
            "WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{" ".join(scopes)}"'
        },
    )


def from_service(err: ServiceError) -> ApiError:
    """The one mapping of a service's refusal to HTTP: 404 for a thing the path names that
    does not exist, 409 for a conflict, 422 for input at fault (including an unknown NHI
    named in the body)."""
    if isinstance(err, NotFound) and err.field is None and err.what in NOT_FOUND:
        return not_found(err.what, _sentence(err.message))
    if isinstance(err, Conflict):
        code = f"{err.what}_conflict" if err.what in ("nhi", "issuer") else "conflict"
        return ApiError(
            409,
            "conflict",
            code,
            _sentence(err.message),
            fields=[{"field": err.field, "message": err.message}] if err.field else None,
        )
    return invalid([{"field": err.field or "(body)", "message": err.message}])


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")
