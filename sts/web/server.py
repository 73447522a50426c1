"""The production HTTP server: Granian serving ``sts.wsgi:app`` (``sts serve``, the image's
entry point, ``make run``).

An STS sits on every hop of every request, so one slow or hostile client must never hold a
worker. Granian's connections live on a Rust event loop: headers and bodies are read there,
without a Python thread, and only a complete request reaches the application's threads. Slow
senders cost a socket and a buffer, not a worker (the benchmark's slow-client scenario measures
it: ``bench/run.py``). Connections are kept alive between requests, so a hop's SDK reuses one.

Each worker process builds its own runtime (keys, database pool) from the ``STS_*`` settings on
import of ``sts.wsgi``; the processes share nothing but the database. Gunicorn remains a
supported alternative (``config/gunicorn.conf.py``).
"""

from __future__ import annotations

import os
from typing import Protocol

from granian import Granian
from granian.constants import Interfaces
from granian.http import HTTP1Settings

from sts.core.logs import logging_config
from sts.core.settings import Settings

__all__ = ["ACCESS_LOG_FORMAT", "production_server", "workers_for"]

#: The path only (Granian's ``path`` carries no query string): a token a client put in a query
#: string never reaches the log (DESIGN §9).
ACCESS_LOG_FORMAT = '%(addr)s "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).1fms'


def workers_for(settings: Settings) -> int:
    """``STS_HTTP_WORKERS``, or by default two per CPU on PostgreSQL (a worker runs one request
    at a time and waits for each database round trip: a second one per CPU fills those waits)
    and one on an embedded SQLite file (whose single writer a second process would only wait
    for)."""
    if settings.http_workers:
        return settings.http_workers
    if settings.database_url.startswith("sqlite"):
        return 1
    return 2 * max(len(os.sched_getaffinity(0)), 1)


class Serving(Protocol):
    def serve(self) -> None:
        """Serve until a stop signal."""


def production_server(settings: Settings, host: str, port: int) -> Serving:
    """A Granian server for the STS as ``settings`` shape it (not yet serving)."""
    server: Serving = Granian(
        "sts.rsgi:app",
        address=host,
        port=port,
        interface=Interfaces.RSGI,
        workers=workers_for(settings),
        http1_settings=HTTP1Settings(
            header_read_timeout=settings.http_header_timeout * 1000,
            keep_alive=settings.http_keepalive,
        ),
        websockets=False,
        # The access log is the adapter's (sts.web.rsgi): the STS's JSON records, with the
        # request id; Granian's own lines take the same format.
        log_access=False,
        log_access_format=ACCESS_LOG_FORMAT,
        log_dictconfig=logging_config(settings.log_level, settings.log_format),
        respawn_failed_workers=True,
    )
    return server
