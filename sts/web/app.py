"""Flask application factory (the Flask tutorial's ``create_app`` shape)."""

from __future__ import annotations

import functools
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask, Response, current_app, g, request
from sqlalchemy import text
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from sts import errors, feed, logs, rfc7009, rfc7662
from sts.admin_api import init_app as init_admin_api
from sts.clock import Clock
from sts.rfc6749 import TokenRequest
from sts.rfc6749.request import check_parameter_lengths
from sts.rfc8414 import (
    FEED_PATH,
    INTROSPECTION_PATH,
    JWKS_PATH,
    METADATA_PATH,
    REVOCATION_PATH,
    TOKEN_PATH,
    metadata,
)
from sts.runtime import Runtime, build_runtime, schema_ready
from sts.settings import Settings
from sts.store.db import is_unavailable
from sts.store.sql import SqlStore

log = logging.getLogger("sts.web")
MAX_FORM_FIELDS = 64


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["sts"]
    return rt


def _json(body: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    for name, value in headers or []:
        response.headers[name] = value
    return response


def _error(err: errors.StsError) -> Response:
    status, body, headers = err.response()
    return _json(body, status, headers)


def _form_pairs(max_bytes: int) -> list[tuple[str, str]]:
    """Read the body as ``application/x-www-form-urlencoded`` only (RFC 6749 §3.2)."""
    if request.mimetype != "application/x-www-form-urlencoded":
        raise errors.InvalidRequest(
            "token request body is not form-encoded",
            "The body must be application/x-www-form-urlencoded.",
        )
    too_large = errors.InvalidRequest("request body too large", "Request too large.")
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large
    try:
        # A body without Content-Length (chunked) is capped one byte above the limit by
        # MAX_CONTENT_LENGTH, so an oversized one is seen as such instead of cut at the limit.
        body = request.stream.read(max_bytes + 1)
    except RequestEntityTooLarge:
        raise too_large from None
    if len(body) > max_bytes:
        raise too_large
    try:
        return parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            max_num_fields=MAX_FORM_FIELDS,
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError):
        raise errors.InvalidRequest("undecodable form body", "The body is malformed.") from None


Handler = Callable[[TokenRequest], tuple[int, dict[str, Any], list[Any]]]


def _run(handler: Handler, path: str, pairs: list[tuple[str, str]]) -> Response:
    """Run a protocol endpoint in one transaction; respond only after it has committed, so
    the lineage and audit rows exist before any token leaves."""
    rt = runtime()
    with rt.engine.begin() as conn:
        oauth_request = TokenRequest(
            request.method,
            rt.settings.issuer.rstrip("/") + path,
            request.headers,
            pairs,
            SqlStore(conn),
            rt.clock.now(),
            g.request_id,
        )
        status, body, headers = handler(oauth_request)
    return _json(body, status, headers)


def _post_endpoint(
    name: str, path: str, handler: Callable[[Runtime], Handler]
) -> Callable[[], Response]:
    """A form-POST OAuth endpoint (RFC 6749 §3.2, RFC 7662 §2.1, RFC 7009 §2.1)."""

    def view() -> Response:
        rt = runtime()
        if request.method != "POST":
            raise errors.InvalidRequest(
                f"{path} called with {request.method}", f"The {name} endpoint accepts POST only."
            )
        pairs = _form_pairs(rt.settings.max_request_bytes)
        check_parameter_lengths(pairs)  # before the transaction: no work, no write
        return _run(handler(rt), path, pairs)

    return view


token = _post_endpoint("token", TOKEN_PATH, lambda rt: rt.server.token_response)
introspect = _post_endpoint(
    "introspection", INTROSPECTION_PATH, lambda rt: functools.partial(rfc7662.introspect, rt.server)
)
revoke = _post_endpoint(
    "revocation", REVOCATION_PATH, lambda rt: functools.partial(rfc7009.revoke, rt.server)
)


def revocation_feed() -> Response:
    rt = runtime()

    def handler(oauth_request: TokenRequest) -> tuple[int, dict[str, Any], list[Any]]:
        try:
            feed.authenticate_poller(rt.server, oauth_request)
        except errors.StsError as err:
            rt.server.record_denial(oauth_request, err, event="feed.denied")
            return err.response()
        return feed.feed(oauth_request, request.args.get("since"))

    return _run(handler, FEED_PATH, [])


def oauth_metadata() -> Response:
    rt = runtime()
    return _json(
        metadata(rt.settings, rt.server.grant_types),
        headers=[("Cache-Control", "public, max-age=300")],
    )


def jwks() -> Response:
    rt = runtime()
    return _json(
        rt.keys.ring.jwks(rt.clock.now()), headers=[("Cache-Control", "public, max-age=60")]
    )


def healthz() -> Response:
    return _json({"status": "ok"})


def readyz() -> Response:
    rt = runtime()
    checks: dict[str, str] = {}
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok" if schema_ready(rt.engine) else "not migrated"
    except Exception as exc:
        checks["database"] = "unavailable" if is_unavailable(exc) else "error"
    try:
        rt.keys.ring.signing  # noqa: B018 - loads or reloads the key ring
        checks["keys"] = "ok"
    except Exception:
        checks["keys"] = "error"
    ready = all(v == "ok" for v in checks.values())
    return _json(
        {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
    )


def _handle_exception(exc: Exception) -> Response:
    if isinstance(exc, errors.StsError):
        # Refused before any endpoint ran (method, body): the reason still reaches the logs.
        log.info(
            "request refused",
            extra={
                "event": "request.refused",
                "error": exc.error,
                "reason": exc.reason,
                "path": request.path,
                "request_id": g.get("request_id"),
            },
        )
        return _error(exc)
    if isinstance(exc, HTTPException):
        code = exc.code or 500
        name = "not_found" if code == 404 else "invalid_request"
        return _json({"error": name, "error_description": exc.name}, code)
    rt = runtime()
    if is_unavailable(exc):
        log.warning(
            "database unavailable",
            extra={"event": "db.unavailable", "request_id": g.get("request_id")},
        )
        return _error(
            errors.TemporarilyUnavailable("database unavailable", rt.settings.retry_after_seconds)
        )
    log.error("unhandled error", exc_info=exc, extra={"request_id": g.get("request_id")})
    return _error(errors.ServerError(type(exc).__name__))


def _assign_request_id() -> None:
    incoming = request.headers.get("X-Request-Id", "")
    ok = 0 < len(incoming) <= 64 and incoming.replace("-", "").isalnum()
    g.request_id = incoming if ok else secrets.token_hex(8)


def _security_headers(response: Response) -> Response:
    response.headers["X-Request-Id"] = g.get("request_id", "")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def create_app(
    settings: Settings | None = None, *, clock: Clock | None = None, rt: Runtime | None = None
) -> Flask:
    """Build the STS. ``settings`` default to ``Settings.load()`` (env over config file)."""
    settings = settings or Settings.load()
    logs.configure(settings.log_level)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes + 1  # see _form_pairs
    app.extensions["sts"] = rt or build_runtime(settings, clock)
    any_method = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    app.add_url_rule(TOKEN_PATH, "token", token, methods=any_method)
    app.add_url_rule(INTROSPECTION_PATH, "introspect", introspect, methods=any_method)
    app.add_url_rule(REVOCATION_PATH, "revoke", revoke, methods=any_method)
    app.add_url_rule(FEED_PATH, "revocation_feed", revocation_feed)
    app.add_url_rule(METADATA_PATH, "metadata", oauth_metadata)
    app.add_url_rule(JWKS_PATH, "jwks", jwks)
    app.add_url_rule("/healthz", "healthz", healthz)
    app.add_url_rule("/readyz", "readyz", readyz)
    app.before_request(_assign_request_id)
    app.after_request(_security_headers)
    app.register_error_handler(Exception, _handle_exception)
    init_admin_api(app)
    return app
