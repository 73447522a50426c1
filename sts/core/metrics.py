"""Prometheus metrics of Chain STS (DESIGN §13), named per the Prometheus conventions.

Every metric is a module-level collector, recorded where the fact happens at a cost of a few
microseconds (a dictionary lookup and an add; under a multi-process server, a write to a
memory-mapped file). When ``PROMETHEUS_MULTIPROC_DIR`` is set before this module is imported,
``prometheus_client`` keeps each process's values in that directory and :func:`exposition`
merges them, so any worker answers for all of them. Values that are read, not counted (the
signing key's age), are computed when scraped.

No label ever carries a token, a secret or a client-chosen string: endpoints, grants, outcomes
and error codes come from fixed sets.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "exposition"]

#: The text format every Prometheus server reads (our names and labels are all plain ASCII).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: OAuth error codes (RFC 6749 §5.2, RFC 8693 §2.2.2, DESIGN §6): any other is ``other``.
ERROR_CODES = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "invalid_target",
        "invalid_dpop_proof",
        "use_dpop_nonce",
        "temporarily_unavailable",
        "server_error",
    }
)
GRANTS = {
    "client_credentials": "client_credentials",
    "urn:ietf:params:oauth:grant-type:token-exchange": "token_exchange",
}
#: Token exchanges take milliseconds; a few buckets either side catch the slow tail.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CASCADE_BUCKETS = (0, 1, 2, 5, 10, 50, 100, 500, 1000, 10000)

REQUESTS = Counter(
    "sts_requests",
    "Requests answered at the OAuth endpoints, by endpoint, grant, outcome and error code.",
    ["endpoint", "grant", "outcome", "error"],
)
REQUEST_DURATION = Histogram(
    "sts_request_duration_seconds",
    "Time to answer a request at an OAuth endpoint, by endpoint and grant.",
    ["endpoint", "grant"],
    buckets=LATENCY_BUCKETS,
)
DB_ROUND_TRIPS = Counter(
    "sts_db_round_trips",
    "Statements sent to the database: prepared (the token endpoint's hot statements on "
    "PostgreSQL) or through SQLAlchemy (everything else).",
    ["via"],
)
DB_ERRORS = Counter(
    "sts_db_errors",
    "Database faults seen by a request: unavailable (503) or error (500).",
    ["kind"],
)
REVOCATIONS = Counter(
    "sts_revocations",
    "Revocations and containments that changed something, by what was revoked.",
    ["kind"],
)
REVOKED_TOKENS = Counter(
    "sts_revoked_tokens",
    "Tokens revoked, the whole cascade counted, by what was revoked.",
    ["kind"],
)
CASCADE_SIZE = Histogram(
    "sts_revocation_cascade_tokens",
    "Tokens one revocation reached (itself and everything derived from it).",
    buckets=CASCADE_BUCKETS,
)
FEED_POLLS = Counter("sts_revocation_feed_polls", "Polls of the revocation feed answered.")
FEED_LAST_POLL = Gauge(
    "sts_revocation_feed_last_poll_timestamp_seconds",
    "When the revocation feed was last polled: time() minus this is how stale a poller may be.",
    multiprocess_mode="max",
)
THROTTLED = Counter(
    "sts_client_throttled",
    "Client authentications refused because the client is throttled after failures.",
)


def grant_label(grant_type: str | None) -> str:
    if grant_type is None:
        return "none"
    return GRANTS.get(grant_type, "other")


def error_label(error: str) -> str:
    return error if error in ERROR_CODES else "other"


def record_request(endpoint: str, grant: str, status: int, error: str, seconds: float) -> None:
    """One answered request at an OAuth endpoint (called once per request, after the answer
    is known)."""
    outcome = "success" if status < 400 else ("error" if status >= 500 else "refused")
    REQUESTS.labels(endpoint, grant, outcome, error_label(error) if error else "").inc()
    REQUEST_DURATION.labels(endpoint, grant).observe(seconds)


def record_revocation(kind: str, tokens: int) -> None:
    REVOCATIONS.labels(kind).inc()
    REVOKED_TOKENS.labels(kind).inc(tokens)
    CASCADE_SIZE.observe(tokens)


class KeyAgeCollector(Collector):
    """The signing key's age, read when scraped (alert on it to rotate on time)."""

    def __init__(self, signing_key_created: Callable[[], tuple[int, int] | None]) -> None:
        #: Returns ``(now, when the signing key was created)``, or ``None`` without one.
        self._read = signing_key_created

    def collect(self) -> Iterator[Metric]:
        age = GaugeMetricFamily(
            "sts_signing_key_age_seconds", "Seconds since the key that signs now was created."
        )
        read = self._read()
        if read is not None:
            now, created = read
            age.add_metric([], max(0, now - created))
        yield age


class SsfDeliveryCollector(Collector):
    """Each SSF stream's backlog and delivery lag, read from the registry when scraped (every
    worker sees the same outbox, so this needs no multi-process aggregation)."""

    def __init__(self, read: Callable[[], list[dict[str, Any]]]) -> None:
        #: Returns the streams as ``sts ssf list`` shows them (``stream_id``, ``owner``,
        #: ``outbox``, ``pending``, ``lag``); raises when the registry cannot be read.
        self._read = read

    def collect(self) -> Iterator[Metric]:
        labels = ["stream", "receiver"]
        backlog = GaugeMetricFamily(
            "sts_ssf_backlog_events",
            "Revocations a stream's receiver has not taken yet (outbox rows and pending SETs).",
            labels=labels,
        )
        lag = GaugeMetricFamily(
            "sts_ssf_lag_seconds",
            "Age of the oldest revocation a stream's receiver has not taken yet, seconds.",
            labels=labels,
        )
        for stream in self._read():
            names = [stream["stream_id"], stream["owner"]]
            backlog.add_metric(names, stream["outbox"] + stream["pending"])
            lag.add_metric(names, stream["lag"])
        yield backlog
        yield lag


_PID = re.compile(r"_(\d+)\.db$")


def sweep_dead_workers(directory: Path) -> None:
    """Forget the live gauges of worker processes that have exited (any multi-process
    server: gunicorn's ``child_exit`` hook does it at once, this catches the rest). Counters
    and histograms of dead workers stay, so totals never go down."""
    pids = {int(m.group(1)) for p in directory.glob("*.db") if (m := _PID.search(p.name))}
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
        except PermissionError:
            continue  # alive, another user's


class _Workers(Collector):
    """Every worker's values from ``PROMETHEUS_MULTIPROC_DIR``, read when scraped."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def collect(self) -> Iterator[Metric]:
        sweep_dead_workers(self.directory)
        collector = multiprocess.MultiProcessCollector(None, path=str(self.directory))  # type: ignore[no-untyped-call]
        yield from collector.collect()  # type: ignore[no-untyped-call]


class _Everything(Collector):
    """The default registry (this process's metrics and its process statistics) inside a
    registry of one scrape, beside the collectors computed for that scrape."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def scrape_registry(*extra: Collector) -> CollectorRegistry:
    """What a scrape reads: this process's metrics, or under a multi-process server every
    worker's (``PROMETHEUS_MULTIPROC_DIR``), and ``extra``."""
    registry = CollectorRegistry(auto_describe=False)
    directory = os.environ.get(MULTIPROC_ENV)
    registry.register(_Workers(Path(directory)) if directory else _Everything())
    for collector in extra:
        registry.register(collector)
    return registry


def exposition(*extra: Collector) -> bytes:
    """Every metric in the Prometheus text format."""
    return generate_latest(scrape_registry(*extra))
