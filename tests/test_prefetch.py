"""Reading ahead (Store.prefetch) changes round trips, never answers.

The exchange tells the store what it is about to look up; on PostgreSQL the store fetches it
all in one statement. Every lookup must answer exactly as it does without the read-ahead, for
present, absent and hostile values alike, and a write to a client's rows must not be answered
from rows read before it.
"""

from __future__ import annotations

import itertools
from typing import Any

import jwt
import pytest

from sts.store import statements
from sts.store.sql import SqlStore
from tests.conftest import Registered
from tests.exchange_fixtures import ACCESS_TOKEN, exchange
from tests.test_exchange_abuse import ORDERS, World, world  # noqa: F401 - the shared fixture

NAMES = ["web", "agent", "nobody", "", "we\x00b"]
ISSUERS = ["https://idp.example.test", "https://unknown.example.test", "idp\x00"]


def lookups(store: SqlStore, client_id: str, issuer: str, target: str, now: int) -> Any:
    client = store.client(client_id, now)
    named = store.target_by_name(target)
    rules = store.rules_for(client.id, named.id, now) if client and named else None
    return client, store.trusted_issuer(issuer), named, rules


def test_prefetch_when_read_ahead_then_every_lookup_answers_as_without(
    world: World,  # noqa: F811
) -> None:
    now = world.clock.now()
    with world.runtime.engine.begin() as conn:
        for client_id, issuer, target, rules in itertools.product(
            NAMES, ISSUERS, NAMES, [True, False]
        ):
            expected = lookups(SqlStore(conn), client_id, issuer, target, now)
            ahead = SqlStore(conn)
            ahead.prefetch(client_id=client_id, issuer=issuer, target=target, rules=rules, now=now)
            case = (client_id, issuer, target, rules)
            assert lookups(ahead, client_id, issuer, target, now) == expected, case


def test_prefetch_when_lineages_read_ahead_then_each_answers_as_without(
    world: World,  # noqa: F811
) -> None:
    agent = jwt.decode(world.agent_token(), options={"verify_signature": False})["jti"]
    tool = jwt.decode(world.tool_token(), options={"verify_signature": False})["jti"]
    own = jwt.decode(world.own("agent"), options={"verify_signature": False})["jti"]
    now = world.clock.now()
    with world.runtime.engine.begin() as conn:
        for jtis in [(tool, own), (agent,), (tool, agent), ("unknown", tool), ("ti\x00d",)]:
            expected = [SqlStore(conn).lineage(jti, now) for jti in jtis]
            ahead = SqlStore(conn)
            ahead.prefetch(client_id="agent", issuer=None, target="tool", rules=False, now=now)
            ahead.prefetch_lineage(jtis)
            assert [ahead.lineage(jti, now) for jti in jtis] == expected, jtis
            assert ahead.client("agent", now) == SqlStore(conn).client("agent", now)
        assert len(SqlStore(conn).lineage(tool, now)) == 2  # both hops, to the root


def test_prefetch_when_a_write_follows_then_rows_are_read_again(world: World) -> None:  # noqa: F811
    now = world.clock.now()
    with world.runtime.engine.begin() as conn:
        store = SqlStore(conn)
        store.prefetch(client_id="web", issuer=None, target=None, rules=False, now=now)
        client = store.client("web", now)
        assert client is not None and client.failures == 0
        store.record_auth_failure("web", "", now, 300)
        again = store.client("web", now)
        assert again is not None and again.failures == 1


def test_exchange_when_subject_is_external_then_reads_take_one_statement_on_postgres(
    world: World,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The one-hop exchange: one read for client, issuer, target and rules, one write for
    the lineage row with its audit event (SQLite, local, looks each up on its own)."""
    person = world.person()
    ran = count_statements(monkeypatch)
    resp = exchange(world.client, world.nhis["web"], person, audience="agent")
    assert resp.status_code == 200, resp.get_json()
    if world.runtime.engine.dialect.name == "postgresql":
        assert ran == ["prefetch", "insert"]
    else:
        assert ran == ["client", "issuer", "target", "rules"]


def test_exchange_when_subject_is_ours_then_lineage_is_one_lock_and_one_walk_on_postgres(
    world: World,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A later hop: the client and target read ahead, then the root lock and the walk, then
    the rules (locked after the root, as a revocation takes them)."""
    agent_token = world.agent_token()
    ran = count_statements(monkeypatch)
    world.hop("agent", agent_token, audience="tool", scope=ORDERS)
    if world.runtime.engine.dialect.name == "postgresql":
        assert ran == ["prefetch", "lock_roots", "lineages", "rules", "insert"]
    else:
        assert ran == ["client", "lineage", "target", "rules"]


def test_exchange_when_subject_external_and_actor_token_ours_then_roots_locked_before_issuer(
    world: World,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The actor token's lineage is part of the decision (revoking it reaches what it
    minted): its root is locked before the subject's issuer, in the order a revocation
    takes them (roots, then issuers), so the two can wait for each other but not deadlock."""
    person, webs_own = world.person(), world.own("web")
    ran = count_statements(monkeypatch)
    resp = exchange(
        world.client,
        world.nhis["web"],
        person,
        audience="agent",
        actor_token=webs_own,
        actor_token_type=ACCESS_TOKEN,
    )
    assert resp.status_code == 200, resp.get_json()
    if world.runtime.engine.dialect.name == "postgresql":
        assert ran == ["prefetch", "lock_roots", "lineages", "issuer", "rules", "insert"]
    else:
        assert ran == ["client", "issuer", "lineage", "target", "rules"]


def test_exchange_when_client_fails_authentication_then_no_root_is_locked(
    world: World,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lineages are read ahead (their roots locked) only for an authenticated client: a
    stranger holding a real token cannot make a revocation wait on its transaction."""
    agent_token = world.agent_token()
    ran = count_statements(monkeypatch)
    stranger = Registered("agent", "sts_" + "x" * 43, "agent")
    resp = exchange(world.client, stranger, agent_token, audience="tool", scope=ORDERS)
    assert resp.status_code == 401, resp.get_json()
    assert "lock_roots" not in ran and "lineages" not in ran and "lock_root" not in ran, ran


def count_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    ran: list[str] = []
    real = SqlStore._run

    def counted(self: SqlStore, stmt: Any, params: dict[str, Any]) -> list[Any]:
        ran.append(next((name for name, s in STATEMENTS.items() if s(self) is stmt), "other"))
        return real(self, stmt, params)

    monkeypatch.setattr(SqlStore, "_run", counted)
    return ran


STATEMENTS = {
    "prefetch": lambda store: store._sql.prefetch,
    "client": lambda store: store._sql.client,
    "issuer": lambda store: store._sql.issuer,
    "rules": lambda store: store._sql.rules,
    "target": lambda store: statements.TARGET_BY_NAME,
    "insert": lambda store: statements.INSERT_BOTH,
    "lock_roots": lambda store: statements.LOCK_ROOTS,
    "lineages": lambda store: statements.LINEAGES,
    "lineage": lambda store: statements.LINEAGE,
    "lock_root": lambda store: store._sql.lock_txn_root,
}


def test_store_when_connection_reused_then_one_cursor_per_connection(
    world: World,  # noqa: F811
) -> None:
    """The protocol store keeps its PostgreSQL cursor with the pooled connection, not per
    request; a replaced connection gets a cursor of its own."""
    engine = world.runtime.engine
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite statements go through SQLAlchemy: no cursor of the store's own")
    # One pooled connection: tests before this one may have left several in the pool (which
    # hands them out in turn), and each has a cursor of its own.
    engine.dispose()
    with engine.begin() as conn:
        first = SqlStore(conn)._cursor
        assert SqlStore(conn)._cursor is first
    with engine.begin() as conn:
        assert SqlStore(conn)._cursor is first
        assert first.connection is conn.connection.driver_connection
    engine.dispose()
    with engine.begin() as conn:
        fresh = SqlStore(conn)._cursor
        assert fresh is not first and fresh.connection is conn.connection.driver_connection
        now = world.clock.now()
        assert SqlStore(conn).client("web", now) is not None
