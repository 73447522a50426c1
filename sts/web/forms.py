"""The form-POST OAuth endpoints as plain WSGI: token, introspection, revocation.

These three sit on every hop of every request, so they are answered here, in front of Flask,
without a routing table, request context or response object: the body is read and decoded
(RFC 6749 §3.2: ``application/x-www-form-urlencoded``, size-capped before anything is looked
up), the protocol handler runs inside one database transaction, and the JSON answer is sent
only after that transaction has committed. Every other path goes on to the Flask application.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from werkzeug.datastructures import EnvironHeaders
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.wsgi import get_input_stream

from sts.core import errors, metrics
from sts.core.response import Response
from sts.oauth.rfc6749 import OAuthRequest
from sts.oauth.rfc6749.request import check_parameter_lengths
from sts.store.db import database_host, is_database_error, is_unavailable
from sts.store.sql import SqlStore
from sts.web.source import request_source
from sts.web.tracing import exchange_tracer

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sts.core.ports import Store
    from sts.runtime import Runtime

log = logging.getLogger("sts.web")
MAX_FORM_FIELDS = 64
FORM = "application/x-www-form-urlencoded"
#: Methods refused with 400 ``invalid_request``; any other is not allowed here at all (405).
KNOWN_METHODS = frozenset({"POST", "GET", "PUT", "DELETE", "PATCH"})
_OWN_HEADERS = frozenset({"content-type", "content-length", "x-request-id"})

Handler = Callable[[OAuthRequest, "Store"], Response]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def request_id(incoming: str) -> str:
    """The caller's ``X-Request-Id`` when it is a plain token, else a fresh one."""
    ok = 0 < len(incoming) <= 64 and incoming.replace("-", "").isalnum()
    return incoming if ok else secrets.token_hex(8)


def read_form(environ: dict[str, Any], max_bytes: int) -> list[tuple[str, str]]:
    """The body as ``application/x-www-form-urlencoded`` only (RFC 6749 §3.2), at most
    ``max_bytes``; anything else is ``invalid_request`` before any work is done."""
    mimetype = parse_options_header(environ.get("CONTENT_TYPE", ""))[0].lower()
    if mimetype != FORM:
        raise errors.InvalidRequest(
            "token request body is not form-encoded",
            "The body must be application/x-www-form-urlencoded.",
        )

    def too_large() -> errors.StsError:
        return errors.InvalidRequest("request body too large", "Request too large.")

    try:
        # A body without Content-Length (chunked) is capped one byte above the limit, so an
        # oversized one is seen as such instead of cut at the limit.
        stream = get_input_stream(environ, max_content_length=max_bytes + 1)
        body = stream.read(max_bytes + 1)
    except RequestEntityTooLarge:
        raise too_large() from None
    if len(body) > max_bytes:
        raise too_large()
    try:
        return parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            max_num_fields=MAX_FORM_FIELDS,
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError):
        raise errors.InvalidRequest("undecodable form body", "The body is malformed.") from None


def run_in_transaction(
    rt: Runtime,
    handler: Handler,
    path: str,
    method: str,
    headers: Mapping[str, str] | Any,
    pairs: list[tuple[str, str]],
    rid: str,
    source: str,
) -> Response:
    """Run a protocol endpoint in one transaction; return only after it has committed, so
    the lineage and audit rows exist before any token leaves."""
    oauth_request = OAuthRequest(
        method,
        rt.settings.issuer.rstrip("/") + path,
        headers,
        pairs,
        rt.clock.now(),
        rid,
        source,
    )
    with rt.engine.begin() as conn:
        return handler(oauth_request, SqlStore(conn))


def failure(rt: Runtime, exc: Exception, path: str, rid: str) -> errors.StsError:
    """The OAuth error for an exception no endpoint turned into one: refused input keeps its
    own; an unreachable database is 503 with ``Retry-After``; anything else is logged and is
    ``server_error``, with nothing of the exception in the answer."""
    if isinstance(exc, errors.StsError):
        log.info(
            "request refused",
            extra={
                "event": "request.refused",
                "error": exc.error,
                "reason": exc.reason,
                "path": path,
                "request_id": rid,
            },
        )
        return exc
    if is_unavailable(exc):
        log_unavailable(rt, exc, rid)
        return errors.TemporarilyUnavailable(
            "database unavailable", rt.settings.retry_after_seconds
        )
    if is_database_error(exc):
        metrics.DB_ERRORS.labels("error").inc()
    log.error("unhandled error", exc_info=exc, extra={"request_id": rid})
    return errors.ServerError(type(exc).__name__)


def log_unavailable(rt: Runtime, exc: BaseException, rid: str = "") -> None:
    """One line saying why the database cannot serve: its host and the error's class, never
    the URL's credentials or the driver's message (which may quote a statement)."""
    metrics.DB_ERRORS.labels("unavailable").inc()
    log.warning(
        "database unavailable",
        extra={
            "event": "db.unavailable",
            "request_id": rid,
            "db_host": database_host(rt.settings.database_url),
            "error_class": type(getattr(exc, "orig", None) or exc).__name__,
        },
    )


class FormEndpoints:
    """WSGI middleware answering the form-POST endpoints; other paths go to ``app``."""

    def __init__(self, app: WsgiApp, rt: Runtime, endpoints: dict[str, tuple[str, Handler]]):
        self.app = app
        self.rt = rt
        self.endpoints = endpoints
        self.proxies = rt.settings.proxy_networks()
        #: OpenTelemetry spans of the token endpoint, when tracing is on (off by default).
        self.tracer = exchange_tracer() if "token" in {n for n, _ in endpoints.values()} else None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        endpoint = self.endpoints.get(path)
        if endpoint is None:
            return self.app(environ, start_response)
        name, handler = endpoint
        started = time.perf_counter()
        grant = "none"
        rid = request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        span = self.tracer.start(name, environ) if self.tracer and name == "token" else None
        method = environ.get("REQUEST_METHOD", "")
        if method == "OPTIONS":
            start_response("200 OK", [("Allow", "POST"), ("Content-Length", "0")])
            return [b""]
        try:
            if method != "POST":
                raise errors.InvalidRequest(
                    f"{path} called with {method[:16]}", f"The {name} endpoint accepts POST only."
                )
            pairs = read_form(environ, self.rt.settings.max_request_bytes)
            check_parameter_lengths(pairs)  # before the transaction: no work, no write
            grant = metrics.grant_label(next((v for k, v in pairs if k == "grant_type"), None))
            source = request_source(environ, self.proxies)
            status, body, headers = run_in_transaction(
                self.rt, handler, path, method, EnvironHeaders(environ), pairs, rid, source
            )
        except Exception as exc:
            status, body, headers = failure(self.rt, exc, path, rid).response()
            if method not in KNOWN_METHODS:
                status, headers = 405, [*headers, ("Allow", "POST")]
        metrics.record_request(
            name, grant, status, body.get("error", ""), time.perf_counter() - started
        )
        if span is not None:
            assert self.tracer is not None
            self.tracer.end(span, grant, status, body, rid)
        # A HEAD answer carries the status and headers of the same request as GET, no body.
        payload = b"" if method == "HEAD" else json.dumps(body).encode()
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(payload))),
                # An OAuth error names its Content-Type too: each header is sent once.
                *((k, v) for k, v in headers if k.lower() not in _OWN_HEADERS),
                ("X-Request-Id", rid),
                ("X-Content-Type-Options", "nosniff"),
            ],
        )
        return [payload]
