"""End to end: a person's token travels web → agent → tool → data service (DESIGN §5)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sts.services import issuers, rules
from sts.store.admin import admin_store
from sts.store.models import AuditEvent, IssuedToken
from tests.conftest import ISSUER
from tests.exchange_fixtures import PersonIdp, exchange
from tests.helpers import claims_of


@pytest.fixture
def chain_registry(runtime, make_nhi, clock):
    idp = PersonIdp()
    nhis = {name: make_nhi(name, kind) for name, kind in
            [("web", "service"), ("agent", "agent"), ("tool", "workload"), ("data", "service")]}
    with admin_store(runtime.engine) as store:
        issuers.add_issuer(store, issuer=idp.issuer, jwks=idp.keys.jwks, audiences=["web"],
                            algorithms=["ES256"], scope_mode="cap", now=clock.now(), admin="t")
        rules.create_rule(store, actor="web", targets=["agent"], scope="orders:read orders:write",
                          subject=f"issuer:{idp.issuer}", now=clock.now(), admin="t")
        rules.create_rule(store, actor="agent", targets=["tool"], scope="orders:read orders:write",
                          upstream="web", now=clock.now(), admin="t")
        rules.create_rule(store, actor="tool", targets=["data"], scope="orders:read",
                          upstream="agent", max_ttl=120, now=clock.now(), admin="t")
    return idp, nhis


def test_four_hop_chain_when_each_hop_exchanges_then_invariants_hold(client, chain_registry,
                                                                     clock, runtime):
    idp, nhis = chain_registry
    person = idp.token("alice", "web", clock.now(), scope="orders:read orders:write profile")
    hops = [("web", "agent", None), ("agent", "tool", "orders:read orders:write"),
            ("tool", "data", "orders:read")]
    token, prev = person, claims_of(person)
    expected_actors: list[str] = []
    txn = None
    for actor, target, scope in hops:
        resp = exchange(client, nhis[actor], token, audience=target, scope=scope)
        assert resp.status_code == 200, resp.json
        body = resp.json
        assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
        assert body["token_type"] == "Bearer"
        claims = claims_of(body["access_token"])
        expected_actors.insert(0, actor)
        assert claims["iss"] == ISSUER
        assert claims["sub"] == "alice"
        assert claims["aud"] == target
        assert claims["client_id"] == actor
        assert set(claims["scope"].split()) <= set(prev["scope"].split())
        assert claims["exp"] <= prev["exp"]
        txn = txn or claims["txn"]
        assert claims["txn"] == txn
        act, actors = claims.get("act"), []
        while act:
            assert set(act) <= {"sub", "act"}
            actors.append(act["sub"])
            act = act.get("act")
        assert actors == expected_actors
        assert "may_act" not in claims
        token, prev = body["access_token"], claims
    assert prev["scope"] == "orders:read"
    assert prev["exp"] == clock.now() + 120
    with runtime.engine.connect() as conn:
        rows = conn.execute(select(IssuedToken).where(IssuedToken.txn == txn)).all()
        events = conn.execute(select(AuditEvent).where(AuditEvent.txn == txn)).all()
    assert len(rows) == 3 and len(events) == 3
    assert [r.depth for r in sorted(rows, key=lambda r: r.depth)] == [1, 2, 3]
