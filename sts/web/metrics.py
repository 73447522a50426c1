"""``/metrics`` (DESIGN §13): the Prometheus text format, protected or on a port of its own.

``STS_METRICS`` chooses: ``protected`` answers a bearer token with an admin scope
(``sts:admin`` or ``sts:audit``, as for the admin API) or the static ``STS_METRICS_TOKEN`` a
scraper is configured with; ``open`` answers anyone who reaches it; ``off`` answers 404 here.
``STS_METRICS_LISTEN`` (``host:port``) serves the same metrics, unprotected, on a separate
listener that only the monitoring network should reach.
"""

from __future__ import annotations

import hmac
import logging
from http.server import ThreadingHTTPServer
from threading import Thread
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from flask import Response, current_app, request
from prometheus_client import make_wsgi_app
from sqlalchemy.exc import SQLAlchemyError

from sts.admin_api.auth import authenticate
from sts.admin_api.errors import ApiError
from sts.admin_api.openapi import ADMIN, AUDIT
from sts.core import metrics
from sts.services import ssf

if TYPE_CHECKING:
    from sts.runtime import Runtime

log = logging.getLogger("sts.metrics")
METRICS_PATH = "/metrics"


def key_age(rt: Runtime) -> metrics.KeyAgeCollector:
    def read() -> tuple[int, int] | None:
        now = rt.clock.now()
        try:
            return now, rt.keys.ring.signing_key(now).created_at
        except Exception:  # no usable key: readiness says so; the gauge stays empty
            return None

    return metrics.KeyAgeCollector(read)


def ssf_delivery(rt: Runtime) -> metrics.SsfDeliveryCollector:
    def read() -> list[dict[str, Any]]:
        try:
            with rt.engine.begin() as conn:
                return ssf.overview(conn, rt.clock.now())
        except SQLAlchemyError:  # the registry is down: readiness says so; no gauges
            log.warning("ssf delivery metrics unavailable", extra={"event": "metrics.ssf"})
            return []

    return metrics.SsfDeliveryCollector(read)


def _allowed(rt: Runtime) -> bool:
    if rt.settings.metrics == "open":
        return True
    scheme, _, credential = (request.headers.get("Authorization") or "").partition(" ")
    token = rt.settings.metrics_token
    if token and scheme.lower() == "bearer" and hmac.compare_digest(credential, token):
        return True
    try:
        with rt.engine.begin() as conn:
            authenticate(conn, rt, rt.clock.now()).require((ADMIN, AUDIT))
    except ApiError:
        return False
    return True


def metrics_view() -> Response:
    rt: Runtime = current_app.extensions["sts"]
    if rt.settings.metrics == "off":
        return Response(
            '{"error": "not_found", "error_description": "Not Found"}',
            404,
            mimetype="application/json",
        )
    if not _allowed(rt):
        return Response(
            '{"error": "invalid_token", "error_description": '
            '"A bearer token with an admin scope, or the metrics token, is required."}',
            401,
            {"WWW-Authenticate": 'Bearer realm="metrics"'},
            mimetype="application/json",
        )
    body = metrics.exposition(key_age(rt), ssf_delivery(rt))
    return Response(body, 200, {"Cache-Control": "no-store"}, content_type=metrics.CONTENT_TYPE)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return None


class _ThreadingWSGIServer(ThreadingHTTPServer, WSGIServer):
    daemon_threads = True


def start_listener(rt: Runtime) -> WSGIServer | None:
    """The separate metrics listener of ``STS_METRICS_LISTEN``, in a daemon thread. Under a
    multi-process server every worker tries; the first binds it and, reading every worker's
    values, answers for all. ``None`` when the address is taken (by another worker)."""
    host, _, port = rt.settings.metrics_listen.rpartition(":")
    app = make_wsgi_app(metrics.scrape_registry(key_age(rt), ssf_delivery(rt)))
    try:
        server = make_server(
            host.strip("[]"), int(port), app, _ThreadingWSGIServer, handler_class=_Quiet
        )
    except OSError:
        log.debug("metrics listener taken", extra={"event": "metrics.listener_taken"})
        return None
    Thread(target=server.serve_forever, name="sts-metrics", daemon=True).start()
    log.info(
        "metrics listener started",
        extra={"event": "metrics.listener", "address": rt.settings.metrics_listen},
    )
    return server
