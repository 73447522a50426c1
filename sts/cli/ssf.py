"""``sts ssf``: the SSF transmitter's streams, their backlog, and the push delivery worker."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from sqlalchemy.engine import Connection

from sts.cli.support import (
    TAKES_IDS,
    administrator,
    emit,
    handles_errors,
    iso_time,
    json_option,
    load_settings,
    now_seconds,
    say,
)
from sts.runtime import build_runtime
from sts.services import ssf as ssf_service
from sts.store.db import create_engine


@contextmanager
def _transaction() -> Iterator[Connection]:
    engine = create_engine(load_settings().database_url, hide_parameters=True)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


@click.group()
def ssf() -> None:
    """SSF streams (OpenID Shared Signals): list them, their lag, and deliver."""


def _line(s: dict[str, Any]) -> str:
    where = s["endpoint_url"] or "(poll)"
    line = (
        f"{s['stream_id']}  {s['owner']}  {s['status']}  {where}  outbox={s['outbox']} "
        f"pending={s['pending']} lag={s['lag']}s delivered={s['delivered']}"
    )
    if s["attempts"]:
        line += (
            f"  failing x{s['attempts']} ({s['last_error']}), next {iso_time(s['next_attempt_at'])}"
        )
    return line


@ssf.command("list")
@json_option
@handles_errors
def ssf_list(as_json: bool) -> None:
    """Streams with their backlog and delivery lag."""
    with _transaction() as conn:
        found = ssf_service.overview(conn, now_seconds())

    def human() -> None:
        for s in found:
            say(_line(s))
        if not found:
            say("no streams")

    emit(as_json, found, human)


@ssf.command("pending", context_settings=TAKES_IDS)
@click.argument("stream_id")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@json_option
@handles_errors
def ssf_pending(stream_id: str, limit: int, as_json: bool) -> None:
    """The SETs waiting for one stream, oldest first."""
    with _transaction() as conn:
        (summary,) = ssf_service.overview(conn, now_seconds(), stream_id)
        events = ssf_service.pending_events(conn, stream_id, limit)

    def human() -> None:
        say(_line(summary))
        for e in events:
            say(f"  {e['jti']}  {iso_time(e['created_at'])}")

    emit(as_json, {**summary, "events": events}, human)


@ssf.command("grant", context_settings=TAKES_IDS)
@click.argument("stream_id")
@click.option("--all-subjects/--own-subjects", default=True, help="Every token, or only its own.")
@json_option
@handles_errors
def ssf_grant(stream_id: str, all_subjects: bool, as_json: bool) -> None:
    """Let a stream receive events about every token (by default a receiver only hears of
    tokens addressed to it or to the NHIs it owns)."""
    with _transaction() as conn:
        ssf_service.grant_all_subjects(
            conn, stream_id, all_subjects, now_seconds(), administrator()
        )
    emit(
        as_json,
        {"stream_id": stream_id, "all_subjects": all_subjects},
        lambda: say(f"stream {stream_id}: {'every' if all_subjects else 'its own'} subject(s)"),
    )


@ssf.command("deliver")
@click.option("--once", is_flag=True, help="Push what is due, then exit.")
@click.option("--interval", type=click.FloatRange(0.05, 60), default=1.0, show_default=True)
@json_option
@handles_errors
def ssf_deliver(once: bool, interval: float, as_json: bool) -> None:
    """Push SETs to the push streams (RFC 8935): run as many as wanted, beside the servers."""
    rt = build_runtime(load_settings())
    worker = ssf_service.PushWorker(rt.engine, rt.settings, rt.keys, rt.clock)
    try:
        if once:
            report = worker.run_once()
            emit(
                as_json,
                {"streams": report.streams, "delivered": report.delivered, "failed": report.failed},
                lambda: say(
                    f"pushed {report.delivered} SET(s) to {report.streams} stream(s)"
                    + (f", {len(report.failed)} failing" if report.failed else "")
                ),
            )
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        worker.run(stop, interval)
    finally:
        rt.close()
