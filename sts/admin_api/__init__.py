"""The admin REST API (``/admin/v1``) and the OpenAPI document of the whole HTTP surface.

Everything the ``sts`` command does, over HTTP, through the same service layer
(:mod:`sts.services.nhis`, :mod:`sts.services.rules`, :mod:`sts.services.revocation`,
:mod:`sts.services.lineage`, :mod:`sts.services.audit`). Callers authenticate with a bearer
token this STS issued them by ``client_credentials`` (:mod:`sts.admin_api.auth`). Errors
under ``/admin/`` share one JSON shape (:mod:`sts.admin_api.errors`); the document is
served at :data:`OPENAPI_PATH`.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from sts.admin_api import authzen
from sts.admin_api.errors import ApiError, json_response
from sts.admin_api.openapi import OPENAPI_PATH, document
from sts.admin_api.views import bp

__all__ = ["OPENAPI_PATH", "bp", "document", "init_app"]

ADMIN_PREFIX = "/admin/"
#: Paths whose errors take the admin API's shape: the admin API and the AuthZEN PDP, which
#: administrators call with the same tokens.
SHAPED_PREFIXES = (ADMIN_PREFIX, "/access/")


def _http_error(exc: HTTPException) -> ApiError:
    code = exc.code or 500
    if code == 404:
        return ApiError(404, "not_found", "route_not_found", "No such admin resource.")
    if isinstance(exc, MethodNotAllowed):
        return ApiError(
            405,
            "method_not_allowed",
            "method_not_allowed",
            "This method is not allowed here.",
            # Sorted: werkzeug collects the methods in a set, whose order changes per process.
            headers={"Allow": ", ".join(sorted(exc.valid_methods or []))},
        )
    if isinstance(exc, RequestEntityTooLarge):
        return ApiError(413, "invalid_request", "payload_too_large", "The body is too large.")
    if code < 500:
        return ApiError(code, "invalid_request", "bad_request", "The request is malformed.")
    return ApiError(code, "server_error", "server_error", "The server could not answer.")


def _app_handler(exc: Exception) -> Any:
    """The application's own handler for anything else (logs, 503 vs 500)."""
    handler = current_app.error_handler_spec[None][None].get(Exception)
    if handler is None:  # an application without one: still JSON, never a page
        return json_response(
            {"error": "server_error", "error_description": "Unexpected error."}, 500
        )
    return handler(exc)


def _admin_errors(exc: Exception) -> Any:
    """Errors under /admin/ (and /access/) in the admin shape; unknown ones stay the
    application's generic error (logged as such), given the admin API's ``code`` too."""
    if not request.path.startswith(SHAPED_PREFIXES):
        return _app_handler(exc)
    if isinstance(exc, ApiError):
        return exc.response()
    if isinstance(exc, HTTPException):
        return _http_error(exc).response()
    response: Response = current_app.make_response(_app_handler(exc))
    body = response.get_json(silent=True)
    if isinstance(body, dict) and "error" in body:
        body["code"] = body["error"]
        response.set_data(json.dumps(body))
    return response


bp.register_error_handler(Exception, _admin_errors)
authzen.bp.register_error_handler(Exception, _admin_errors)


def init_app(app: Flask) -> None:
    """Serve the admin API, the AuthZEN policy decision point and the OpenAPI document from
    ``app``."""
    app.register_blueprint(bp)
    app.register_blueprint(authzen.bp)
    # Routing errors happen before any blueprint is chosen: under /admin/ they take the admin
    # shape too; elsewhere they stay the application's.
    app.register_error_handler(NotFound, _admin_errors)
    app.register_error_handler(MethodNotAllowed, _admin_errors)
