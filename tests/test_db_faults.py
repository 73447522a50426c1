"""Database faults (DESIGN §5.10, §6): PostgreSQL taken away under traffic.

The tests own their PostgreSQL server (``tests/pg_server.py``) so they can stop it hard
(``pg_ctl stop -m immediate``, as a crash would) while exchanges are in flight. While it is
gone every answer is 503 ``temporarily_unavailable`` with ``Retry-After``, never a 500; no
answer ever carried a token whose lineage row and ``allowed`` audit event were not committed
first; and once the server is back the same application serves again without a restart (a
first few requests may answer 503 while pooled connections to the dead server are discarded).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy import select

from sts.core.clock import FrozenClock
from sts.core.settings import Settings
from sts.runtime import Runtime, build_runtime
from sts.services import nhis, rules
from sts.store.admin import admin_store
from sts.store.migrate import upgrade
from sts.store.models import AuditEvent, IssuedToken
from sts.web import create_app
from tests.conftest import ISSUER, Registered
from tests.exchange_fixtures import client_credentials, exchange
from tests.helpers import FORM, basic, claims_of
from tests.pg_server import PostgresServer, own_postgres

pytestmark = pytest.mark.postgres

RETRY_AFTER = 7
UNAVAILABLE = {
    "error": "temporarily_unavailable",
    "error_description": "The service is temporarily unavailable.",
}
#: Requests that may still answer 503 after the server is back, while the pool discards its
#: connections to the old server (at most one per pooled connection).
STALE_CONNECTION_BOUND = 10
WORKERS = 4


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with own_postgres() as server:
        yield server


@dataclass
class World:
    pg: PostgresServer
    app: Flask
    runtime: Runtime
    web: Registered

    def token_answers(self, n: int) -> list[Any]:
        """``n`` sequential client_credentials + exchange pairs through a fresh client."""
        client, out = self.app.test_client(), []
        for _ in range(n):
            resp = client_credentials(client, self.web, scope="orders:read")
            out.append(resp)
            if resp.status_code == 200:
                out.append(exchange(client, self.web, resp.json["access_token"],
                                    audience="agent"))
        return out


@pytest.fixture
def world(pg: PostgresServer, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[World]:
    if not pg.running:
        pg.start()
    url = pg.create_database(f"faults_{request.node.name[:40].lower()}_{time.time_ns()}")
    upgrade(url)
    settings = Settings(issuer=ISSUER, database_url=url, keys_dir=tmp_path / "keys",
                        retry_after_seconds=RETRY_AFTER)
    clock = FrozenClock(int(time.time()))
    runtime = build_runtime(settings, clock)
    app = create_app(settings, rt=runtime)
    with admin_store(runtime.engine) as store:
        view, secret = nhis.create_nhi(store, runtime.hasher, name="web", kind="service",
                                           scope="orders:read", now=clock.now(), admin="t")
        nhis.create_nhi(store, runtime.hasher, name="agent", kind="agent",
                            now=clock.now(), admin="t")
        rules.create_rule(store, actor="web", targets=["agent"], scope="orders:read",
                          now=clock.now(), admin="t")
    yield World(pg, app, runtime, Registered(view.client_id, secret, view.sub))
    runtime.close()
    if not pg.running:
        pg.start()


def assert_ok_or_unavailable(resp: Any) -> None:
    if resp.status_code == 200:
        assert set(resp.json) >= {"access_token", "token_type", "expires_in"}
        return
    assert (resp.status_code, resp.json) == (503, UNAVAILABLE), resp.data[:300]
    assert resp.headers["Retry-After"] == str(RETRY_AFTER)
    assert resp.headers["Cache-Control"] == "no-store"


def assert_every_token_recorded(runtime: Runtime, answers: list[Any]) -> int:
    """Every token a client received has its lineage row and its allowed audit event."""
    jtis = {claims_of(a.json["access_token"])["jti"] for a in answers if a.status_code == 200}
    with runtime.engine.connect() as conn:
        rows = set(conn.execute(
            select(IssuedToken.jti).where(IssuedToken.jti.in_(jtis))).scalars())
        allowed = set(conn.execute(
            select(AuditEvent.jti).where(AuditEvent.jti.in_(jtis),
                                         AuditEvent.decision == "allowed")).scalars())
    assert rows == jtis, f"tokens without lineage: {sorted(jtis - rows)[:5]}"
    assert allowed == jtis, f"tokens without an allowed audit event: {sorted(jtis - allowed)[:5]}"
    return len(jtis)


def recover(world: World) -> list[Any]:
    """Requests until the first success (503 allowed, a bounded number of times), then
    twenty more exchanges that must all succeed."""
    client, stale = world.app.test_client(), []
    while True:
        resp = client_credentials(client, world.web, scope="orders:read")
        if resp.status_code == 200:
            break
        assert_ok_or_unavailable(resp)
        stale.append(resp)
        assert len(stale) <= STALE_CONNECTION_BOUND, "still unavailable after restart"
    after = [resp, *world.token_answers(10)]
    assert [a.status_code for a in after] == [200] * len(after), [a.json for a in after]
    return stale + after


def test_database_when_stopped_mid_traffic_then_503_and_no_unrecorded_token_then_serves_again(
    world: World,
):
    answers: list[Any] = []
    lock, stop = threading.Lock(), threading.Event()
    errors: list[BaseException] = []

    def traffic() -> None:
        try:
            client = world.app.test_client()
            while not stop.is_set():
                resp = client_credentials(client, world.web, scope="orders:read")
                got = [resp]
                if resp.status_code == 200:
                    got.append(exchange(client, world.web, resp.json["access_token"],
                                        audience="agent"))
                with lock:
                    answers.extend(got)
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)

    def wait_for(what: str, predicate: Any, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert not errors, errors
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.01)

    def count(status: int) -> int:
        with lock:
            return sum(1 for a in answers if a.status_code == status)

    threads = [threading.Thread(target=traffic, daemon=True) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    try:
        wait_for("traffic", lambda: count(200) >= 40)
        world.pg.stop("immediate")  # a crash, with requests in flight
        wait_for("503 answers", lambda: count(503) >= 4 * WORKERS)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not errors, errors
    statuses = {a.status_code for a in answers}
    assert statuses <= {200, 503}, statuses
    for resp in answers:
        assert_ok_or_unavailable(resp)

    # Readiness says so too, while the server is down.
    ready = world.app.test_client().get("/readyz")
    assert (ready.status_code, ready.json) == (
        503, {"status": "not ready", "checks": {"database": "unavailable", "keys": "ok"}})

    world.pg.start()
    answers += recover(world)
    assert assert_every_token_recorded(world.runtime, answers) >= 40


def test_database_when_down_then_every_endpoint_answers_503_and_serves_once_back(world: World):
    client = world.app.test_client()
    token = client_credentials(client, world.web).json["access_token"]
    world.pg.stop("fast")
    auth = basic(world.web.client_id, world.web.secret)
    down = [
        client_credentials(client, world.web),
        exchange(client, world.web, token, audience="agent"),
        client.post("/introspect", data={"token": token}, content_type=FORM, headers=auth),
        client.post("/revoke", data={"token": token}, content_type=FORM, headers=auth),
        client.get("/revocations", headers=auth),
    ]
    for resp in down:
        assert (resp.status_code, resp.json) == (503, UNAVAILABLE), resp.data[:300]
        assert resp.headers["Retry-After"] == str(RETRY_AFTER)
    world.pg.start()
    answers = recover(world)
    introspected = client.post("/introspect", data={"token": token}, content_type=FORM,
                               headers=auth)
    assert (introspected.status_code, introspected.json["active"]) == (200, True)
    assert_every_token_recorded(world.runtime, answers)


def test_database_when_exchange_times_out_waiting_for_a_lock_then_503_not_500(world: World):
    """An operator's ``lock_timeout`` (or ``statement_timeout``) fires while an exchange waits
    for its transaction's root row (held here, as a long revocation would hold it)."""
    client = world.app.test_client()
    root = client_credentials(client, world.web, scope="orders:read").json["access_token"]
    database = world.runtime.engine.url.database
    with psycopg.connect(world.pg.url(database).replace("+psycopg", ""),
                         autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE \"{database}\" SET lock_timeout = '200ms'")
    world.runtime.engine.dispose()  # new sessions pick the setting up
    with psycopg.connect(world.pg.url(database).replace("+psycopg", "")) as holder:
        holder.execute("SELECT jti FROM issued_token WHERE jti = %s FOR UPDATE",
                       (claims_of(root)["jti"],))
        resp = exchange(client, world.web, root, audience="agent")
        holder.rollback()
    assert (resp.status_code, resp.json) == (503, UNAVAILABLE), resp.data[:300]
    assert resp.headers["Retry-After"] == str(RETRY_AFTER)
    served = exchange(client, world.web, root, audience="agent")
    assert served.status_code == 200, served.json
