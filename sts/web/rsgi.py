"""The STS's WSGI application behind Granian's RSGI interface, with every request read in full
before it reaches the application.

Under a WSGI server, each request holds a worker thread from its first byte: a client that
announces a body and sends it one byte every few seconds holds that thread for hours, and a few
dozen such clients stop every worker (gunicorn's sync workers and Granian's own WSGI threads
alike). Here the body is awaited on the worker's event loop, which costs nothing while it waits;
only a complete request, within ``STS_HTTP_BODY_TIMEOUT``, is run, and the application
(synchronous, database-bound) runs on the loop itself, one request at a time per worker process,
as under a sync worker. A body that does not arrive in time is answered ``408`` before any work
is done; of a body larger than the application accepts, only one byte more than that is read,
and the application refuses it as it would under any server.

This module only adapts: it builds the PEP 3333 environ from the RSGI scope and sends the WSGI
answer back. Everything the STS does is in :mod:`sts.web.app`.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from sts.core.logs import access_facts
from sts.core.settings import Settings
from sts.web.app import create_app

__all__ = ["BufferedRequests", "create_rsgi_app"]

log = logging.getLogger("sts.web")
#: One record per request, in the STS's log format (Granian's own access log is off).
access_log = logging.getLogger("sts.access")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Scope(Protocol):
    """What this adapter reads of an RSGI HTTP scope (Granian's ``granian.rsgi.Scope``)."""

    proto: str
    http_version: str
    server: str
    client: str
    scheme: str
    method: str
    path: str
    query_string: str

    @property
    def headers(self) -> Any: ...


def _error(status: int, error: str, description: str) -> tuple[int, list[tuple[str, str]], bytes]:
    body = json.dumps({"error": error, "error_description": description}).encode()
    return (
        status,
        [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
            ("connection", "close"),
        ],
        body,
    )


def _no_write(data: bytes) -> None:
    raise NotImplementedError("write() is not supported: return the body")


class BufferedRequests:
    """An RSGI application running ``app`` (WSGI) on requests whose bodies are complete."""

    def __init__(self, app: WsgiApp, max_body: int, body_timeout: float) -> None:
        self.app = app
        self.max_body = max_body
        self.body_timeout = body_timeout
        self._base: dict[str, Any] = {
            "SCRIPT_NAME": "",
            "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
        }

    async def __rsgi__(self, scope: Scope, protocol: Any) -> None:
        if scope.proto != "http":  # websockets are not served
            return
        started = time.perf_counter()
        try:
            body = await asyncio.wait_for(self._body(protocol), self.body_timeout)
        except TimeoutError:
            status, headers, payload = _error(
                408, "invalid_request", "The request body did not arrive in time."
            )
        else:
            status, headers, payload = self._run(self.environ(scope, body))
        protocol.response_bytes(status, headers, payload)
        if access_log.isEnabledFor(logging.INFO):
            rid = next((v for k, v in headers if k.lower() == "x-request-id"), "")
            facts = access_facts(
                scope.method, scope.path, status, time.perf_counter() - started, rid, len(payload)
            )
            access_log.info("%s %s %s", scope.method, scope.path, status, extra=facts)

    async def _body(self, protocol: Any) -> bytes:
        """The body, or its first ``max_body + 1`` bytes: enough to be refused as too large."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in protocol:
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_body:
                break
        return b"".join(chunks)[: self.max_body + 1]

    def environ(self, scope: Scope, body: bytes) -> dict[str, Any]:
        """The PEP 3333 environ of one request (``PATH_INFO`` as latin-1 of its UTF-8 bytes)."""
        host, _, port = scope.server.rpartition(":")
        environ = {
            **self._base,
            "REQUEST_METHOD": scope.method,
            "PATH_INFO": scope.path.encode("utf-8").decode("latin-1"),
            "QUERY_STRING": scope.query_string,
            "SERVER_NAME": host,
            "SERVER_PORT": port,
            "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
            "REMOTE_ADDR": scope.client.rpartition(":")[0].strip("[]"),
            "wsgi.url_scheme": scope.scheme,
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
        }
        for name, value in scope.headers.items():
            if name == "content-type":
                environ["CONTENT_TYPE"] = value
            elif name != "content-length":  # the body is complete: its own length stands
                key = "HTTP_" + name.upper().replace("-", "_")
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _run(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        started: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            started[:] = [int(status.split(" ", 1)[0]), headers]
            return _no_write  # the legacy write() callable: nothing here uses it

        try:
            result = self.app(environ, start_response)
            try:
                payload = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:
            log.exception("unhandled error outside the application's own handling")
            return _error(500, "server_error", "The server could not answer.")
        return started[0], started[1], payload


def create_rsgi_app(settings: Settings | None = None) -> BufferedRequests:
    """The STS (:func:`sts.web.app.create_app`) as an RSGI application."""
    settings = settings or Settings.load()
    return BufferedRequests(
        create_app(settings), settings.max_request_bytes, settings.http_body_timeout
    )
