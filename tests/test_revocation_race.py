"""Race-free revocation (DESIGN §7) on PostgreSQL: exchanges run concurrently with a revoke,
and once the revoke returns no token derived from what it revoked is active, and none is
issued afterwards."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import select

from sts.services import rules
from sts.store.admin import admin_store
from sts.store.models import IssuedToken
from sts.store.revocation import revoke
from tests.conftest import _engine_for, empty_database
from tests.exchange_fixtures import client_credentials, exchange
from tests.helpers import FORM, basic, claims_of

WORKERS = 4
ROUNDS = 3


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, _engines: dict[str, Any]) -> Any:
    """PostgreSQL only: SQLite serialises every writer, so it has no race to lose."""
    eng = _engine_for(request.param, request, _engines)
    yield eng
    empty_database(eng)


@pytest.fixture
def world(runtime, make_nhi, clock):
    nhis = {
        n: make_nhi(n, k, scope="read")
        for n, k in [("web", "service"), ("agent", "agent"), ("tool", "workload")]
    }
    with admin_store(runtime.engine) as store:
        web_rule = rules.create_rule(
            store,
            actor="web",
            targets=["agent"],
            scope="read",
            subject="kind:service",
            now=clock.now(),
            admin="t",
        )
        agent_rule = rules.create_rule(
            store,
            actor="agent",
            targets=["tool"],
            scope="read",
            upstream="web",
            now=clock.now(),
            admin="t",
        )
    return nhis, {"web": web_rule["id"], "agent": agent_rule["id"]}


def _start_chain(client, nhis) -> tuple[str, str]:
    root = client_credentials(client, nhis["web"], scope="read").json["access_token"]
    resp = exchange(client, nhis["web"], root, audience="agent")
    assert resp.status_code == 200, resp.json
    return root, resp.json["access_token"]


def _hammer(app, nhis, subject: str, stop: threading.Event, results: list[dict[str, Any]]):
    client = app.test_client()
    while not stop.is_set():
        started = time.monotonic()
        resp = exchange(client, nhis["agent"], subject, audience="tool")
        results.append(
            {
                "started": started,
                "finished": time.monotonic(),
                "status": resp.status_code,
                "body": resp.json,
            }
        )


@pytest.mark.parametrize("kind", ["token", "rule", "nhi"])
def test_revoke_when_exchanges_in_flight_then_nothing_derived_survives(
    app, client, runtime, world, clock, kind
):
    nhis, rule_ids = world
    for _ in range(ROUNDS):
        root, delegated = _start_chain(client, nhis)
        target = {"token": claims_of(root)["jti"], "rule": rule_ids["agent"], "nhi": "agent"}[kind]
        stop, results = threading.Event(), []
        threads = [
            threading.Thread(target=_hammer, args=(app, nhis, delegated, stop, results))
            for _ in range(WORKERS)
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.3)  # let the exchanges get going
        with runtime.engine.begin() as conn:
            revoke(conn, kind, target, now=clock.now(), admin="race-test")
        returned = time.monotonic()
        time.sleep(0.2)  # exchanges keep trying after the revoke
        stop.set()
        for thread in threads:
            thread.join()

        issued = [r for r in results if r["status"] == 200]
        assert issued, "no exchange succeeded before the revoke: the race was not exercised"
        late = [r for r in issued if r["started"] > returned]
        assert late == [], "a token was issued by an exchange that started after the revoke"
        assert any(r["started"] > returned for r in results), "no exchange ran after revoke"
        jtis = [claims_of(r["body"]["access_token"])["jti"] for r in issued]
        with runtime.engine.connect() as conn:
            txn = claims_of(delegated)["txn"]
            alive = (
                conn.execute(
                    select(IssuedToken.jti).where(
                        IssuedToken.txn == txn,
                        IssuedToken.revoked_at.is_(None),
                        IssuedToken.expires_at > clock.now(),
                    )
                )
                .scalars()
                .all()
            )
        # Revoking the root kills the whole chain; revoking the agent's rule or the agent kills
        # what the agent minted, while the two tokens before it stay alive.
        survivors = (
            set() if kind == "token" else {claims_of(root)["jti"], claims_of(delegated)["jti"]}
        )
        assert set(alive) <= survivors
        introspector = nhis["tool"]
        for jti_token in (r["body"]["access_token"] for r in issued[:10]):
            resp = client.post(
                "/introspect",
                data={"token": jti_token},
                content_type=FORM,
                headers=basic(introspector.client_id, introspector.secret),
            )
            assert resp.json == {"active": False}
        assert len(set(jtis)) == len(jtis)
        if kind == "rule":  # the next round needs a rule again
            with admin_store(runtime.engine) as store:
                rule_ids["agent"] = rules.create_rule(
                    store,
                    actor="agent",
                    targets=["tool"],
                    scope="read",
                    upstream="web",
                    now=clock.now(),
                    admin="t",
                )["id"]
        if kind == "nhi":
            break  # the agent is gone for good
