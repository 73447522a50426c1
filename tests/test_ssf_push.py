"""SSF PUSH delivery (RFC 8935): a receiver written against the specifications only gets every
revoked jti, in order; a receiver that is down gets everything once it is back; a delivery
worker that dies mid-push loses nothing, and what it sends twice carries the same jti."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from werkzeug.serving import make_server

from sts.cli import main
from sts.core.settings import Settings
from sts.services import ssf as ssf_service
from sts.store import ssf as ssf_store
from sts.store.models import SsfEvent, SsfStream
from tests.sdk_fixtures import LoopbackServer, serve
from tests.ssf_fixtures import (
    PUSH,
    SpecReceiver,
    SsfWorld,
    build_ssf_world,
    revoked_jtis,
    verify_set,
)
from tests.test_ssf import count, revoke


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, ssf_allow_http_loopback=True, ssf_push_timeout=2.0)


@pytest.fixture
def world(client: Any, runtime: Any, make_nhi: Any, clock: Any) -> SsfWorld:
    return build_ssf_world(client, runtime, make_nhi, clock)


@pytest.fixture
def receiver() -> Iterator[tuple[SpecReceiver, LoopbackServer]]:
    app = SpecReceiver()
    server = serve(app)
    yield app, server
    server.close()


def push_stream(world: SsfWorld, url: str, who: str = "data") -> dict[str, Any]:
    return world.create(
        who,
        {
            "delivery": {
                "method": PUSH,
                "endpoint_url": url,
                "authorization_header": "Bearer receiver-secret",
            }
        },
    )


def worker(world: SsfWorld) -> ssf_service.PushWorker:
    rt = world.runtime
    return ssf_service.PushWorker(rt.engine, rt.settings, rt.keys, world.clock)


def stream_row(world: SsfWorld, stream_id: str) -> Any:
    with world.runtime.engine.connect() as conn:
        return conn.execute(select(SsfStream).where(SsfStream.id == stream_id)).one()


def jtis_in(world: SsfWorld, received: list[str], audience: str = "data") -> list[str]:
    jwks = world.jwks()
    return [j for s in received for j in revoked_jtis(verify_set(s, jwks, audience))]


def test_push_when_chains_revoked_then_spec_receiver_gets_every_jti_in_order(
    world: SsfWorld, receiver: tuple[SpecReceiver, LoopbackServer]
) -> None:
    app, server = receiver
    push_stream(world, server.url + "/events")
    chains = [world.chain() for _ in range(4)]
    for chain in chains:
        revoke(world, "token", chain[0])
    report = worker(world).run_once()
    assert (report.streams, report.delivered, report.failed) == (1, 4, [])
    assert jtis_in(world, app.received) == [c[2] for c in chains]
    assert count(world, SsfEvent) == 0
    assert worker(world).run_once().delivered == 0  # nothing twice


def test_push_when_receiver_down_then_backoff_and_all_delivered_in_order_after(
    world: SsfWorld, receiver: tuple[SpecReceiver, LoopbackServer]
) -> None:
    app, server = receiver
    stream = push_stream(world, server.url + "/events")
    app.down = True
    chains = [world.chain() for _ in range(3)]
    for chain in chains:
        revoke(world, "token", chain[0])
    report = worker(world).run_once()
    assert (report.delivered, report.failed) == (0, [stream["stream_id"]])
    row = stream_row(world, stream["stream_id"])
    assert (row.attempts, row.next_attempt_at, row.last_error) == (
        1,
        world.clock.now() + 1,
        "HTTP 503",
    )
    assert worker(world).run_once().streams == 0  # not due yet: backing off
    world.clock.advance(1)
    worker(world).run_once()
    row = stream_row(world, stream["stream_id"])
    assert (row.attempts, row.next_attempt_at) == (2, world.clock.now() + 2)  # doubled
    world.clock.advance(2)
    app.down = False
    more = world.chain()
    revoke(world, "token", more[0])
    report = worker(world).run_once()
    assert (report.delivered, report.failed) == (4, [])
    assert jtis_in(world, app.received) == [c[2] for c in [*chains, more]]
    row = stream_row(world, stream["stream_id"])
    assert (row.attempts, row.last_error, row.delivered) == (0, "", 4)


def test_push_when_receiver_unreachable_then_kept_until_it_listens(
    world: SsfWorld, receiver: tuple[SpecReceiver, LoopbackServer]
) -> None:
    app, server = receiver
    stream = push_stream(world, server.url + "/events")
    port = int(server.url.rsplit(":", 1)[1])
    server.close()
    chain = world.chain()
    revoke(world, "token", chain[0])
    report = worker(world).run_once()
    assert report.failed == [stream["stream_id"]]
    assert stream_row(world, stream["stream_id"]).last_error == "unreachable: ConnectionError"
    again = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=again.serve_forever, daemon=True)
    thread.start()
    try:
        world.clock.advance(1)
        assert worker(world).run_once().delivered == 1
    finally:
        again.shutdown()
        again.server_close()
    assert jtis_in(world, app.received) == [chain[2]]


def test_push_when_worker_dies_after_a_push_then_nothing_lost_and_duplicate_has_same_jti(
    world: SsfWorld, receiver: tuple[SpecReceiver, LoopbackServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, server = receiver
    push_stream(world, server.url + "/events")
    chains = [world.chain() for _ in range(3)]
    for chain in chains:
        revoke(world, "token", chain[0])

    class Killed(BaseException):
        """The process dies between the receiver's 202 and the record of it."""

    real = ssf_store.delivered
    calls = {"n": 0}

    def dies_on_second(*args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(ssf_store, "delivered", dies_on_second)
    with pytest.raises(Killed):
        worker(world).run_once()
    monkeypatch.setattr(ssf_store, "delivered", real)
    assert len(app.received) == 2
    assert worker(world).run_once().streams == 0  # the dead worker's lease still holds
    world.clock.advance(ssf_service.LEASE_SECONDS)
    report = worker(world).run_once()
    assert (report.delivered, report.failed) == (2, [])
    jwks = world.jwks()
    claims = [verify_set(s, jwks, "data") for s in app.received]
    set_jtis = [c["jti"] for c in claims]
    assert len(set_jtis) == 4 and set_jtis[1] == set_jtis[2]  # the second SET, twice
    assert claims[1] == {**claims[2], "iat": claims[1]["iat"]}
    by_jti = {c["jti"]: revoked_jtis(c) for c in claims}
    assert [j for js in by_jti.values() for j in js] == [c[2] for c in chains]


def test_push_when_receiver_unauthorized_then_kept_but_400_refusal_is_final(
    world: SsfWorld, receiver: tuple[SpecReceiver, LoopbackServer]
) -> None:
    app, server = receiver
    push_stream(world, server.url + "/events")
    app.secret = "rotated"  # 401: the receiver's configuration changed, keep trying
    revoke(world, "token", world.chain()[0])
    assert worker(world).run_once().failed
    assert count(world, SsfEvent) == 1
    app.secret, app.refuse = "receiver-secret", True  # 400: this SET will never do
    world.clock.advance(1)
    report = worker(world).run_once()
    assert (report.delivered, report.failed) == (1, [])
    assert count(world, SsfEvent) == 0 and app.received == []


def test_push_when_two_workers_then_each_stream_pushed_by_one(
    world: SsfWorld, receiver: tuple[SpecReceiver, LoopbackServer]
) -> None:
    app, server = receiver
    push_stream(world, server.url + "/events")
    push_stream(world, server.url + "/events", who="ops")
    chain = world.chain()
    revoke(world, "token", chain[0])
    with world.runtime.engine.begin() as conn:
        first = ssf_store.claim_push(conn, world.clock.now(), 60)
    second = worker(world).run_once()
    assert first is not None and second.streams == 1  # the other stream only
    assert len(app.received) == 1


def test_cli_when_backlog_then_listed_and_deliver_once_pushes_it(
    world: SsfWorld,
    receiver: tuple[SpecReceiver, LoopbackServer],
    settings: Settings,
) -> None:
    app, server = receiver
    stream = push_stream(world, server.url + "/events")
    sid = stream["stream_id"]
    chain = world.chain()
    revoke(world, "token", chain[0])
    env = {
        "STS_DATABASE_URL": settings.database_url,
        "STS_KEYS_DIR": str(settings.keys_dir),
        "STS_ISSUER": settings.issuer,
        "STS_SSF_ALLOW_HTTP_LOOPBACK": "true",
    }

    def sts(*args: str, code: int = 0) -> Any:
        result = CliRunner().invoke(main, list(args), env=env)
        assert result.exit_code == code, result.output
        return result

    (listed,) = json.loads(sts("ssf", "list", "--json").stdout)
    assert {k: listed[k] for k in ("stream_id", "owner", "method", "outbox", "pending")} == {
        "stream_id": sid,
        "owner": "data",
        "method": PUSH,
        "outbox": 1,
        "pending": 0,
    }
    assert listed["lag"] >= 0
    assert json.loads(sts("ssf", "pending", sid, "--json").stdout)["events"] == []
    assert json.loads(sts("ssf", "deliver", "--once", "--json").stdout) == {
        "streams": 1,
        "delivered": 1,
        "failed": [],
    }
    assert jtis_in(world, app.received) == [chain[2]]
    (after,) = json.loads(sts("ssf", "list", "--json").stdout)
    assert (after["outbox"], after["pending"], after["lag"], after["delivered"]) == (0, 0, 0, 1)
    missing = sts("ssf", "pending", "nope", code=2)
    assert missing.stderr == "error (not_found): no stream 'nope'\n"


class Hangs(SpecReceiver):
    """Takes the first SET, then holds the answer to the second until released: the worker
    dies while that push is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = threading.Event()
        self.release = threading.Event()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        if environ["REQUEST_METHOD"] == "POST" and len(self.received) == 1:
            answer = super().__call__(environ, start_response)
            self.holding.set()
            self.release.wait(30)
            return answer
        return super().__call__(environ, start_response)


def test_push_when_deliver_process_killed_mid_push_then_no_loss_and_same_jti_again(
    world: SsfWorld, settings: Settings, tmp_path: Any
) -> None:
    app = Hangs()
    server = serve(app)
    try:
        push_stream(world, server.url + "/events")
        chains = [world.chain() for _ in range(3)]
        for chain in chains:
            revoke(world, "token", chain[0])
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("STS_")},
            "STS_DATABASE_URL": settings.database_url,
            "STS_KEYS_DIR": str(settings.keys_dir),
            "STS_ISSUER": settings.issuer,
            "STS_LOG_LEVEL": "ERROR",
        }
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "sts"), "ssf", "deliver", "--interval", "0.1"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert app.holding.wait(30), "the worker never pushed the second SET"
        finally:
            process.kill()
            process.wait(10)
        app.release.set()
        assert len(app.received) == 2  # the second arrived, its 202 never reached the worker
        # the dead worker (on the real clock, which has run ahead of the test's) loses its lease
        world.clock.advance(ssf_service.LEASE_SECONDS + 60)
        report = worker(world).run_once()
        assert (report.delivered, report.failed) == (2, [])
    finally:
        server.close()
    jwks = world.jwks()
    claims = [verify_set(s, jwks, "data") for s in app.received]
    assert [c["jti"] for c in claims][1] == claims[2]["jti"]  # sent again, same jti
    unique = {c["jti"]: revoked_jtis(c) for c in claims}
    assert [j for js in unique.values() for j in js] == [c[2] for c in chains]
