"""Gunicorn settings for running Chain STS: ``gunicorn -c config/gunicorn.conf.py``.

The production default is ``sts serve`` (Granian, see ``sts/web/server.py``), whose event loops
read each request in full before it is run. Gunicorn's sync workers read requests themselves:
a client that trickles its body holds a worker until ``GUNICORN_TIMEOUT``, so run gunicorn
behind a proxy that buffers requests (nginx, Envoy, a cloud load balancer).

The STS itself is configured by ``STS_*`` variables (and ``config/sts.toml``); this file only
shapes the HTTP server, through its own environment variables:

``GUNICORN_BIND``        address to listen on (default ``127.0.0.1:8000``; the image uses
                         ``0.0.0.0:8000``)
``GUNICORN_WORKERS``     worker processes (default ``WEB_CONCURRENCY``, else 2)
``GUNICORN_TIMEOUT``     seconds before a silent worker is restarted (default 30)
``GUNICORN_KEEPALIVE``   seconds an idle keep-alive connection is held (default 5)
``FORWARDED_ALLOW_IPS``  proxies trusted for ``X-Forwarded-*`` (read by gunicorn itself)
``PROMETHEUS_MULTIPROC_DIR``  where the workers keep their metrics, so that ``/metrics`` on
                         any worker answers for all (emptied at start; set in the image)

Logs, gunicorn's own and its access log included, are the STS's JSON lines
(``STS_LOG_FORMAT``, ``STS_LOG_LEVEL``; see ``sts.core.logs``). A bad setting or a missing key
stops the master before any worker starts, with one line naming it.

Each worker builds its own runtime (keys, database pool) after the fork; the processes share
nothing but the database, so any number of them, on any number of hosts, can serve together.
"""

import os
import sys as _sys
from pathlib import Path as _Path

from sts.core.logs import logging_config as _logging_config

wsgi_app = "sts.wsgi:app"

bind = [os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")]
worker_class = "sync"
workers = int(os.environ.get("GUNICORN_WORKERS", os.environ.get("WEB_CONCURRENCY", "2")))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = timeout
# Sync workers close the connection after each response; with worker_class "gthread" this
# applies, and should then exceed the idle timeout of the load balancer in front.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))

# Tokens travel in POST bodies, but a misbehaving client may still put one in a query string
# or a Referer: the access log records the path only (%(U)s, never %(r)s, %(q)s or %(f)s).
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# One JSON format for the STS and gunicorn: each access is one record (method, path without
# the query string, status, duration, request id), see sts.web.access_log.
logger_class = "sts.web.access_log.GunicornLogger"
logconfig_dict = _logging_config(
    os.environ.get("STS_LOG_LEVEL", "INFO"), os.environ.get("STS_LOG_FORMAT", "json")
)
# The line gunicorn's own logger class would write (it is not used with the one above).
access_log_format = (
    '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s" request_id=%({x-request-id}o)s'
)

# Heartbeat files on a memory filesystem: a slow container disk must not stall workers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108


def on_starting(server: object) -> None:
    """In the master, once, before any worker: a bad setting or a missing key is one line
    (not a traceback per worker), and the metrics of a previous run are cleared."""
    from sts.runtime import preflight

    problem = preflight()
    if problem is not None:
        _sys.stderr.write(f"Chain STS cannot start: {problem}\n")
        _sys.exit(1)
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        _Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in _Path(directory).glob("*.db"):
            stale.unlink()


def child_exit(server: object, worker: object) -> None:
    """A worker has exited: its live gauges go (its counters stay in the totals)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
