"""Flask application factory (the Flask tutorial's ``create_app`` shape)."""

from __future__ import annotations

import functools
import json
from typing import Any

from flask import Flask, Response, current_app, g, request
from sqlalchemy import text
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from sts.admin_api import init_app as init_admin_api
from sts.core import errors, logs, metrics
from sts.core.clock import Clock
from sts.core.ports import Store
from sts.core.response import Response as EndpointResponse
from sts.core.settings import JWKS_MAX_AGE, Settings
from sts.oauth import access_reports, feed, rfc7009, rfc7662
from sts.oauth.audit_facts import Denied
from sts.oauth.rfc6749 import OAuthRequest
from sts.oauth.rfc8414 import (
    ACCESS_REPORT_PATH,
    FEED_PATH,
    INTROSPECTION_PATH,
    JWKS_PATH,
    METADATA_PATH,
    REVOCATION_PATH,
    TOKEN_PATH,
    metadata,
)
from sts.runtime import Runtime, build_runtime, schema_ready
from sts.store.db import is_unavailable
from sts.store.sql import SqlStore
from sts.web.console import init_app as init_console
from sts.web.forms import FormEndpoints, failure, log_unavailable, request_id, run_in_transaction
from sts.web.metrics import METRICS_PATH, metrics_view, start_listener
from sts.web.source import request_source
from sts.web.ssf import init_app as init_ssf


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


def revocation_feed() -> Response:
    rt = runtime()

    def handler(oauth_request: OAuthRequest, store: Store) -> EndpointResponse:
        try:
            feed.authenticate_poller(rt.server, oauth_request, store)
        except (Denied, errors.StsError) as exc:
            return rt.server.refuse(store, oauth_request, exc, "feed.denied")
        metrics.FEED_POLLS.inc()
        metrics.FEED_LAST_POLL.set(oauth_request.now)
        since, grace = request.args.get("since"), rt.settings.verifier_leeway
        return feed.feed(store, oauth_request.now, since, grace)

    source = request_source(request.environ, rt.settings.proxy_networks())
    status, body, headers = run_in_transaction(
        rt, handler, FEED_PATH, request.method, request.headers, [], g.request_id, source
    )
    return _json(body, status, headers)


def _report_body(max_bytes: int) -> bytes:
    """The body, at most ``max_bytes`` (a larger one is refused before it is parsed)."""
    try:
        body = request.stream.read(max_bytes + 1)
    except RequestEntityTooLarge:
        raise access_reports.too_large() from None
    if len(body) > max_bytes:
        raise access_reports.too_large()
    return body


def access_report() -> Response:
    """``POST /access-reports`` (DESIGN §10): the body is read and checked before the
    transaction, the reports are stored in it, the answer leaves after the commit."""
    rt = runtime()
    rid = g.request_id
    try:
        raw = _report_body(rt.settings.max_request_bytes)
        batch = access_reports.parse(raw, request.mimetype)
        oauth_request = OAuthRequest(
            "POST",
            rt.settings.issuer.rstrip("/") + ACCESS_REPORT_PATH,
            request.headers,
            batch.auth,
            rt.clock.now(),
            rid,
            request_source(request.environ, rt.settings.proxy_networks()),
        )
        with rt.engine.begin() as conn:
            status, body, headers = access_reports.accept(
                rt.server, batch, oauth_request, SqlStore(conn)
            )
    except Exception as exc:
        status, body, headers = failure(rt, exc, ACCESS_REPORT_PATH, rid).response()
    return _json(body, status, [(k, v) for k, v in headers if k.lower() != "content-type"])


def oauth_metadata() -> Response:
    rt = runtime()
    return _json(
        metadata(rt.settings, rt.server.grant_types),
        headers=[("Cache-Control", "public, max-age=300")],
    )


def jwks() -> Response:
    rt = runtime()
    return _json(
        rt.keys.ring.jwks(rt.clock.now()),
        headers=[("Cache-Control", f"public, max-age={JWKS_MAX_AGE}")],
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
        log_unavailable(rt, exc)
    try:
        rt.keys.ring.signing_key(rt.clock.now())  # loads or reloads the key ring
        checks["keys"] = "ok"
    except Exception:
        checks["keys"] = "error"
    ready = all(v == "ok" for v in checks.values())
    return _json(
        {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
    )


def _handle_exception(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        code = exc.code or 500
        name = "not_found" if code == 404 else "invalid_request"
        return _json({"error": name, "error_description": exc.name}, code)
    return _error(failure(runtime(), exc, request.path, g.get("request_id", "")))


def _assign_request_id() -> None:
    g.request_id = request_id(request.headers.get("X-Request-Id", ""))


def _security_headers(response: Response) -> Response:
    response.headers["X-Request-Id"] = g.get("request_id", "")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def create_app(
    settings: Settings | None = None, *, clock: Clock | None = None, rt: Runtime | None = None
) -> Flask:
    """Build the STS. ``settings`` default to ``Settings.load()`` (env over config file)."""
    settings = settings or Settings.load()
    logs.configure(settings.log_level, settings.log_format)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes + 1  # see _form_pairs
    rt = app.extensions["sts"] = rt or build_runtime(settings, clock)
    # The form-POST endpoints are answered in front of Flask (sts.web.forms).
    app.wsgi_app = FormEndpoints(  # type: ignore[method-assign]
        app.wsgi_app,
        rt,
        {
            TOKEN_PATH: ("token", rt.server.token_response),
            INTROSPECTION_PATH: ("introspection", functools.partial(rfc7662.introspect, rt.server)),
            REVOCATION_PATH: ("revocation", functools.partial(rfc7009.revoke, rt.server)),
        },
    )
    app.add_url_rule(FEED_PATH, "revocation_feed", revocation_feed)
    app.add_url_rule(METADATA_PATH, "metadata", oauth_metadata)
    app.add_url_rule(ACCESS_REPORT_PATH, "access_reports", access_report, methods=["POST"])
    app.add_url_rule(JWKS_PATH, "jwks", jwks)
    app.add_url_rule("/healthz", "healthz", healthz)
    app.add_url_rule("/readyz", "readyz", readyz)
    app.add_url_rule(METRICS_PATH, "metrics", metrics_view)
    if settings.metrics_listen:
        start_listener(rt)
    app.before_request(_assign_request_id)
    app.after_request(_security_headers)
    app.register_error_handler(Exception, _handle_exception)
    init_admin_api(app)
    init_console(app, rt)
    init_ssf(app)
    return app
