"""The SDK reports without slowing the request (DESIGN §10): reports are queued, a background
sender batches them, and a stopped STS loses none of them below the queue's bound."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from chain_sts_client import AccessReporter, Caller
from chain_sts_client.flask import ChainSts, current_caller, require_token
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from sts.store.models import AccessReportRow
from tests.helpers import claims_of
from tests.sdk_fixtures import (  # noqa: F401 - fixtures
    LoopbackServer,
    chain_fixture,
    live_sts_fixture,
    settings_fixture,
    sts_http_fixture,
    token_for,
)


def stop(server: LoopbackServer) -> None:
    """Stop serving: connections to the STS's port are refused."""
    server._server.shutdown()
    server._server.server_close()
    server._thread.join(5)


def restart(server: LoopbackServer) -> None:
    """Serve the same application on the same port again."""
    port = int(server.url.rsplit(":", 1)[1])
    server._server = make_server("127.0.0.1", port, server._dispatch, threaded=True)
    server._thread = threading.Thread(target=server._server.serve_forever, daemon=True)
    server._thread.start()


def stored(runtime: Any) -> list[Any]:
    with runtime.engine.begin() as conn:
        return list(conn.execute(select(AccessReportRow).order_by(AccessReportRow.id)))


def reporter(chain: Any, **kwargs: Any) -> AccessReporter:
    kwargs.setdefault("first_delay", 0.02)
    kwargs.setdefault("max_delay", 0.1)
    return AccessReporter(chain.client("data"), flush_at_exit=0, **kwargs)


@pytest.fixture
def data_jti(chain: Any, clock: Any) -> str:
    """A token addressed to the data service (agent -> data)."""
    return str(claims_of(token_for(chain, clock, "data", scope="orders:read"))["jti"])


def test_reporter_when_sts_stopped_then_queued_and_delivered_after_restart(
    chain: Any, data_jti: str, sts_http: LoopbackServer, runtime: Any
) -> None:
    sender = reporter(chain, max_queue=500)
    stop(sts_http)
    started = time.monotonic()
    for i in range(250):
        assert sender.report(jti=data_jti, resource=f"db://orders/{i}", action="read", records=1)
    assert time.monotonic() - started < 1.0  # queued, never waiting for the STS
    deadline = time.monotonic() + 5
    while sender.failures < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sender.failures >= 3  # it kept trying, with backoff
    assert (sender.pending, sender.delivered, sender.dropped) == (250, 0, 0)
    assert stored(runtime) == []

    restart(sts_http)
    assert sender.flush(timeout=15)
    sender.close(1)
    assert (sender.pending, sender.delivered, sender.dropped, sender.rejected) == (0, 250, 0, 0)
    rows = stored(runtime)
    assert [r.resource for r in rows] == [f"db://orders/{i}" for i in range(250)]
    assert {(r.jti, r.reported_by, r.action, r.records) for r in rows} == {
        (data_jti, "data", "read", 1)
    }


def test_reporter_when_queue_full_then_new_reports_dropped_and_counted(
    chain: Any, data_jti: str, sts_http: LoopbackServer, runtime: Any
) -> None:
    sender = reporter(chain, max_queue=10)
    stop(sts_http)
    accepted = [sender.report(jti=data_jti, resource=f"r{i}", action="read") for i in range(15)]
    assert accepted == [True] * 10 + [False] * 5
    assert (sender.pending, sender.dropped) == (10, 5)
    restart(sts_http)
    assert sender.flush(timeout=15)
    sender.close(1)
    assert (sender.delivered, sender.dropped) == (10, 5)
    assert [r.resource for r in stored(runtime)] == [f"r{i}" for i in range(10)]


def test_reporter_when_one_report_refused_then_the_others_still_stored(
    chain: Any, data_jti: str, runtime: Any
) -> None:
    sender = reporter(chain)
    sender.report(jti=data_jti, resource="a", action="read")
    sender.report(jti="not-a-token-of-this-sts", resource="b", action="read")
    sender.report(jti=data_jti, resource="c", action="read")
    assert sender.flush(timeout=15)
    sender.close(1)
    assert (sender.delivered, sender.rejected, sender.dropped) == (2, 1, 0)
    assert [r.resource for r in stored(runtime)] == ["a", "c"]


def test_flask_when_report_true_or_caller_reports_then_stored_under_the_token(
    chain: Any, data_jti: str, clock: Any, runtime: Any
) -> None:
    app = Flask("data")
    ext = ChainSts(app, client=chain.client("data"), poll_interval=60)

    @app.get("/orders/<int:order>")
    @require_token(scope="orders:read", report=True)
    def order(order: int) -> dict[str, Any]:
        current_caller().report(
            resource="db://orders", action="read", records=1, data_classes=["pii"]
        )
        return {"order": order}

    token = token_for(chain, clock, "data", scope="orders:read")
    try:
        started = time.monotonic()
        resp = app.test_client().get("/orders/7", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 200, resp.json
        assert time.monotonic() - started < 2.0
        assert ext.reporter.flush(timeout=15)
    finally:
        ext.close()
    jti = claims_of(token)["jti"]
    rows = [(r.jti, r.resource, r.action, r.data_classes, r.outcome) for r in stored(runtime)]
    assert rows == [
        (jti, "db://orders", "read", ["pii"], None),
        (jti, "/orders/<int:order>", "GET", [], "success"),
    ]


def test_caller_report_when_not_verified_by_chain_sts_then_clear_error() -> None:
    caller = Caller(issuer="https://idp.test", sub="alice", audience=("data",),
                    scopes=frozenset(), exp=0)  # fmt: skip
    with pytest.raises(RuntimeError, match="only a token of the STS"):
        caller.report(resource="r", action="read")
