"""Race-free revocation (DESIGN §7) on PostgreSQL: exchanges run concurrently with a revoke
(or a disable, which is containment), and once it returns no token derived from what it
killed is active, and none is issued afterwards."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import select

from sts.services import issuers, rules
from sts.services import nhis as nhi_service
from sts.store.admin import admin_store
from sts.store.models import AuthFailure, IssuedToken
from sts.store.revocation import revoke
from tests.conftest import _engine_for, empty_database
from tests.exchange_fixtures import ACCESS_TOKEN, PersonIdp, client_credentials, exchange
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


def _enable(runtime: Any, clock: Any, name: str) -> None:
    """Enable ``name`` again, forgetting the attempts refused while it was disabled (they
    count towards brute-force throttling, which is not under test here)."""
    with admin_store(runtime.engine) as store:
        nhi_service.set_nhi_status(
            store, name, status="active", reason="", now=clock.now(), admin="t"
        )
    with runtime.engine.begin() as conn:
        conn.execute(AuthFailure.__table__.delete().where(AuthFailure.client_id == name))


def _kill(runtime: Any, clock: Any, kind: str, target: str) -> None:
    """Revoke ``target`` of ``kind``, or (``disable_*``) disable it: containment too."""
    now = clock.now()
    if kind == "disable_rule":
        with admin_store(runtime.engine) as store:
            rules.disable_rule(store, target, now=now, admin="race-test", reason="race")
    elif kind == "disable_nhi":
        with admin_store(runtime.engine) as store:
            nhi_service.set_nhi_status(
                store, target, status="disabled", reason="race", now=now, admin="race-test"
            )
    else:
        with runtime.engine.begin() as conn:
            revoke(conn, kind, target, now=now, admin="race-test")


@pytest.mark.parametrize("kind", ["token", "rule", "nhi", "disable_rule", "disable_nhi"])
def test_revoke_when_exchanges_in_flight_then_nothing_derived_survives(
    app, client, runtime, world, clock, kind
):
    nhis, rule_ids = world
    earlier: list[str] = []  # tokens issued in earlier rounds, dead for good
    for _ in range(ROUNDS):
        root, delegated = _start_chain(client, nhis)
        target = {
            "token": claims_of(root)["jti"],
            "rule": rule_ids["agent"],
            "nhi": "agent",
            "disable_rule": rule_ids["agent"],
            "disable_nhi": "agent",
        }[kind]
        stop, results = threading.Event(), []
        threads = [
            threading.Thread(target=_hammer, args=(app, nhis, delegated, stop, results))
            for _ in range(WORKERS)
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.3)  # let the exchanges get going
        _kill(runtime, clock, kind, target)
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
        earlier += [r["body"]["access_token"] for r in issued[:10]]
        for jti_token in earlier:
            resp = client.post(
                "/introspect",
                data={"token": jti_token},
                content_type=FORM,
                headers=basic(introspector.client_id, introspector.secret),
            )
            assert resp.json == {"active": False}
        assert len(set(jtis)) == len(jtis)
        if kind == "disable_nhi":  # enabled again: new exchanges only, the dead stay dead
            _enable(runtime, clock, "agent")
        if kind in ("rule", "disable_rule"):  # the next round needs a rule again
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


# -- actor tokens, and tokens addressed to a disabled NHI ---------------------------------------
@pytest.fixture
def person(runtime, world, clock) -> str:
    """A person's token from a trusted IdP, addressed to web, and a rule letting web take it
    to the agent: each exchange of it starts a new transaction."""
    idp = PersonIdp()
    with admin_store(runtime.engine) as store:
        issuers.add_issuer(
            store,
            issuer=idp.issuer,
            jwks=idp.keys.jwks,
            audiences=["web"],
            algorithms=["ES256"],
            now=clock.now(),
            admin="t",
        )
        rules.create_rule(
            store,
            actor="web",
            targets=["agent"],
            scope="read",
            subject=f"issuer:{idp.issuer}",
            now=clock.now(),
            admin="t",
        )
    return idp.token("alice", "web", clock.now(), scope="read")


def _run(app, who, subject: Any, stop: threading.Event, results: list[dict[str, Any]], params):
    """Exchange ``subject`` (a token, or a callable giving the latest one) until stopped."""
    client = app.test_client()
    while not stop.is_set():
        token = subject() if callable(subject) else subject
        if token is None:
            time.sleep(0.005)
            continue
        started = time.monotonic()
        resp = exchange(client, who, token, **params)
        results.append(
            {
                "who": who.client_id,
                "started": started,
                "finished": time.monotonic(),
                "status": resp.status_code,
                "body": resp.json,
            }
        )


def _race(app, hammers: list[tuple[Any, Any, dict[str, Any]]], kill: Any, results: list) -> float:
    """Run the hammers (two workers each), ``kill`` while they run, keep them running a
    little after; when ``kill`` returned. Every exchange's result lands in ``results``."""
    stop = threading.Event()
    threads = [
        threading.Thread(target=_run, args=(app, who, subject, stop, results, params))
        for who, subject, params in hammers
        for _ in range(WORKERS // 2)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.3)  # let the exchanges get going
    kill()
    returned = time.monotonic()
    time.sleep(0.2)  # exchanges keep trying after it
    stop.set()
    for thread in threads:
        thread.join()
    for who in {h[0].client_id for h in hammers}:
        issued = [r for r in results if r["who"] == who and r["status"] == 200]
        assert issued, f"no exchange by {who} succeeded before: the race was not exercised"
    assert any(r["started"] > returned for r in results), "no exchange ran after"
    late = [r for r in results if r["status"] == 200 and r["started"] > returned]
    assert late == [], "a token was issued by an exchange that started after it returned"
    return returned


def _newest(results: list[dict[str, Any]], who: str) -> Any:
    """The newest token ``who`` was issued, as a subject for the next hop."""

    def newest() -> str | None:
        for r in reversed(results[-50:]):
            if r["who"] == who and r["status"] == 200:
                return str(r["body"]["access_token"])
        return None

    return newest


def _alive_derived(engine, now: int, seed: Any) -> list[str]:
    """Live tokens derived from those matching ``seed(row)``: descendants and tokens minted
    with one as the actor token, at any depth (computed here, independently of the SQL)."""
    with engine.connect() as conn:
        rows = conn.execute(select(IssuedToken)).all()
    children: dict[str, list[Any]] = {}
    for r in rows:
        for edge in (r.parent_jti, r.actor_jti):
            if edge:
                children.setdefault(edge, []).append(r)
    pending, seen = [r for r in rows if seed(r)], set()
    while pending:
        row = pending.pop()
        if row.jti not in seen:
            seen.add(row.jti)
            pending.extend(children.get(row.jti, []))
    live = [r.jti for r in rows if r.revoked_at is None and r.expires_at > now]
    return sorted(jti for jti in live if jti in seen)


def _assert_inactive(client, nhis, results: list[dict[str, Any]]) -> None:
    """Every token issued in the race is inactive, introspected by its holder."""
    for r in [r for r in results if r["status"] == 200][-20:]:
        holder = nhis[r["who"]]
        resp = client.post(
            "/introspect",
            data={"token": r["body"]["access_token"]},
            content_type=FORM,
            headers=basic(holder.client_id, holder.secret),
        )
        assert resp.json == {"active": False}


def test_revoke_actor_token_when_exchanges_use_it_then_nothing_it_reached_survives(
    app, client, runtime, world, person, clock
):
    """Web mints with its own token as the actor token, each time in a new transaction, while
    the agent exchanges what web just minted: revoking the actor token reaches both levels,
    including transactions that began while the revocation waited for its locks."""
    nhis, _ = world
    for _ in range(ROUNDS):
        actor = client_credentials(client, nhis["web"], scope="read").json["access_token"]
        jti, results = claims_of(actor)["jti"], []
        with_actor = {"audience": "agent", "actor_token": actor, "actor_token_type": ACCESS_TOKEN}
        hammers = [
            (nhis["web"], person, with_actor),
            (nhis["agent"], _newest(results, "web"), {"audience": "tool"}),
        ]

        def kill(jti: str = jti) -> None:
            with runtime.engine.begin() as conn:
                revoke(conn, "token", jti, now=clock.now(), admin="race-test")

        _race(app, hammers, kill, results)

        assert _alive_derived(runtime.engine, clock.now(), lambda r, j=jti: r.jti == j) == []
        _assert_inactive(client, nhis, results)


def test_disable_nhi_when_exchanges_by_it_and_to_it_in_flight_then_none_survives(
    app, client, runtime, world, person, clock
):
    """The agent exchanges (as the actor) and web mints tokens addressed to it while it is
    disabled: every token it acted in or was addressed to dies, and stays dead once it is
    enabled again."""
    nhis, _ = world
    for _ in range(ROUNDS):
        results: list[dict[str, Any]] = []
        hammers = [
            (nhis["web"], person, {"audience": "agent"}),
            (nhis["agent"], _newest(results, "web"), {"audience": "tool"}),
        ]

        def kill() -> None:
            _kill(runtime, clock, "disable_nhi", "agent")

        _race(app, hammers, kill, results)

        def touched(row: Any) -> bool:
            return row.client_id == "agent" or row.target == "agent"

        assert _alive_derived(runtime.engine, clock.now(), touched) == []
        _enable(runtime, clock, "agent")
        assert _alive_derived(runtime.engine, clock.now(), touched) == []
        _assert_inactive(client, nhis, results)
