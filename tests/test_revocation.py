"""Revocation (DESIGN §7): each kind kills exactly what is derived from it, at every depth,
and nothing else. Seen the three ways a resource server or a hop sees it: introspection as the
token's audience, a further exchange, and the revocation feed."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from sts.services import audit, credentials, issuers, nhis, revocation, rules
from sts.services.errors import Invalid, NotFound
from sts.store.admin import admin_store
from sts.store.models import IssuedToken
from sts.store.revocation import Result, revoke
from tests.conftest import Registered
from tests.exchange_fixtures import PersonIdp, client_credentials, exchange
from tests.helpers import FORM, basic, claims_of

INVALID_SUBJECT = {"error": "invalid_request", "error_description": "The subject token is invalid."}
INVALID_CLIENT = {"error": "invalid_client", "error_description": "Client authentication failed."}
INVALID_TARGET = {
    "error": "invalid_target",
    "error_description": "The requested target is unknown or not allowed.",
}
#: Each hop of a chain: the actor exchanges the token it holds for one addressed to the target.
HOPS = [
    ("web", "agent", None),
    ("agent", "tool", "orders:read orders:write"),
    ("tool", "data", "orders:read"),
]


@dataclass
class Token:
    token: str
    claims: dict[str, Any]

    @property
    def jti(self) -> str:
        return str(self.claims["jti"])

    @property
    def aud(self) -> str:
        return str(self.claims["aud"])

    @property
    def holder(self) -> str:
        return str(self.claims["client_id"])


@dataclass
class Chain:
    person: str
    hops: list[Token]

    @property
    def txn(self) -> str:
        return str(self.hops[0].claims["txn"])

    @property
    def jtis(self) -> set[str]:
        return {h.jti for h in self.hops}


@dataclass
class World:
    """Two chains of alice (sibling transactions), one of bob, each person → web → agent →
    tool → data; bob's direct web → data token, which no agent touched; tool's own token."""

    client: Any
    runtime: Any
    clock: Any
    idp: PersonIdp
    nhis: dict[str, Registered]
    rules: dict[str, str]
    chains: dict[str, Chain] = field(default_factory=dict)
    direct: Token | None = None
    tool_cc: Token | None = None

    def tokens(self) -> list[Token]:
        assert self.direct is not None and self.tool_cc is not None
        return [h for c in self.chains.values() for h in c.hops] + [self.direct, self.tool_cc]

    def person_token(self, person: str) -> str:
        return self.idp.token(person, "web", self.clock.now(), scope="orders:read orders:write")

    def run_chain(self, person: str, **secrets: str) -> Chain:
        """Three hops; ``secrets`` overrides the secret an actor authenticates with."""
        token, hops = self.person_token(person), []
        for actor, target, scope in HOPS:
            who = self.nhis[actor]
            if actor in secrets:
                who = replace(who, secret=secrets[actor])
            resp = exchange(self.client, who, token, audience=target, scope=scope)
            assert resp.status_code == 200, resp.json
            token = resp.json["access_token"]
            hops.append(Token(token, claims_of(token)))
        return Chain(person, hops)


def build_world(client: Any, runtime: Any, make_nhi: Any, clock: Any) -> World:
    idp = PersonIdp()
    nhis = {
        name: make_nhi(name, kind)
        for name, kind in [
            ("web", "service"),
            ("agent", "agent"),
            ("tool", "workload"),
            ("data", "service"),
        ]
    }
    now = clock.now()
    with admin_store(runtime.engine) as store:
        issuers.add_issuer(
            store,
            issuer=idp.issuer,
            jwks=idp.keys.jwks,
            audiences=["web"],
            algorithms=["ES256"],
            scope_mode="cap",
            now=now,
            admin="t",
        )
        people = f"issuer:{idp.issuer}"
        rule_ids = {
            "web": rules.create_rule(
                store,
                actor="web",
                targets=["agent"],
                scope="orders:read orders:write",
                subject=people,
                now=now,
                admin="t",
            )["id"],
            "direct": rules.create_rule(
                store,
                actor="web",
                targets=["data"],
                scope="orders:read",
                subject=people,
                now=now,
                admin="t",
            )["id"],
            "agent": rules.create_rule(
                store,
                actor="agent",
                targets=["tool"],
                scope="orders:read orders:write",
                upstream="web",
                now=now,
                admin="t",
            )["id"],
            "tool": rules.create_rule(
                store,
                actor="tool",
                targets=["data"],
                scope="orders:read",
                upstream="agent",
                max_ttl=120,
                now=now,
                admin="t",
            )["id"],
        }
    world = World(client, runtime, clock, idp, nhis, rule_ids)
    world.chains = {
        "alice1": world.run_chain("alice"),
        "alice2": world.run_chain("alice"),
        "bob": world.run_chain("bob"),
    }
    resp = exchange(
        client, nhis["web"], world.person_token("bob"), audience="data", scope="orders:read"
    )
    assert resp.status_code == 200, resp.json
    world.direct = Token(resp.json["access_token"], claims_of(resp.json["access_token"]))
    resp = client_credentials(client, nhis["tool"])
    assert resp.status_code == 200, resp.json
    world.tool_cc = Token(resp.json["access_token"], claims_of(resp.json["access_token"]))
    return world


@pytest.fixture
def world(client: Any, runtime: Any, make_nhi: Any, clock: Any) -> World:
    return build_world(client, runtime, make_nhi, clock)


# -- observation helpers ----------------------------------------------------------------------
def introspect(client: Any, caller: Registered, token: str) -> Any:
    return client.post(
        "/introspect",
        data={"token": token},
        headers=basic(caller.client_id, caller.secret or ""),
        content_type=FORM,
    )


def is_active(world: World, token: Token, unusable: frozenset[str] = frozenset()) -> bool:
    """Introspect as the token's audience (as its holder when the audience is the STS or an
    identity that can no longer authenticate)."""
    name = token.aud if token.aud in world.nhis and token.aud not in unusable else token.holder
    resp = introspect(world.client, world.nhis[name], token.token)
    assert resp.status_code == 200, resp.json
    if resp.json["active"]:
        assert resp.json["jti"] == token.jti
        return True
    assert resp.json == {"active": False}
    return False


def feed_jtis(client: Any, caller: Registered) -> dict[str, int]:
    """Every revoked, unexpired jti in the feed (following ``next`` while ``more``)."""
    seen: dict[str, int] = {}
    since = ""
    for _ in range(1000):
        resp = client.get(
            f"/revocations?since={since}", headers=basic(caller.client_id, caller.secret or "")
        )
        assert resp.status_code == 200, resp.json
        for item in resp.json["revoked"]:
            assert item["jti"] not in seen
            seen[item["jti"]] = item["exp"]
        since = resp.json["next"]
        if not resp.json["more"]:
            return seen
    raise AssertionError("the feed never ended")


def further_exchange(world: World, token: Token) -> Any:
    """The token's audience exchanges it for the next hop (or for itself, at the end)."""
    following = {"agent": "tool", "tool": "data"}.get(token.aud)
    return exchange(world.client, world.nhis[token.aud], token.token, audience=following)


def assert_only_dead(world: World, dead: set[str], unusable: frozenset[str] = frozenset()) -> None:
    """Exactly ``dead`` is inactive and listed by the feed (with its exp); all else lives."""
    by_jti = {t.jti: t for t in world.tokens()}
    assert dead <= set(by_jti)
    for jti, token in by_jti.items():
        assert is_active(world, token, unusable) is (jti not in dead), (jti, token.claims)
    listed = feed_jtis(world.client, world.nhis["data"])
    assert listed == {jti: by_jti[jti].claims["exp"] for jti in dead}
    for jti in dead:
        token = by_jti[jti]
        if token.aud in world.nhis and token.aud not in unusable:
            resp = further_exchange(world, token)
            assert (resp.status_code, resp.json) == (400, INVALID_SUBJECT), token.claims


def revoke_checked(world: World, kind: str, target: str, **kwargs: Any) -> Result:
    """A dry run first: it must change nothing and predict exactly what the real run does."""
    with world.runtime.engine.begin() as conn:
        dry = revoke(
            conn, kind, target, now=world.clock.now(), admin="test", dry_run=True, **kwargs
        )
    assert dry.dry_run and dry.revocation_id is None
    assert feed_jtis(world.client, world.nhis["data"]) == {}
    with world.runtime.engine.connect() as conn:
        revoked = conn.execute(
            IssuedToken.__table__.select().where(IssuedToken.revoked_at.is_not(None))
        ).all()
    assert revoked == []
    with world.runtime.engine.begin() as conn:
        real = revoke(conn, kind, target, now=world.clock.now(), admin="test", **kwargs)
    assert not real.dry_run and real.revocation_id is not None
    assert (dry.tokens, dry.transactions, dry.jtis) == (real.tokens, real.transactions, real.jtis)
    assert real.jtis == sorted(real.jtis)
    return real


def all_hops(world: World, *depths: int) -> set[str]:
    """The jtis at these depths (1-based) of every chain."""
    return {c.hops[d - 1].jti for c in world.chains.values() for d in depths}


# -- each kind ---------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_revoke_token_when_at_any_depth_then_it_and_descendants_die_and_nothing_else(
    world: World, depth: int
) -> None:
    chain = world.chains["alice1"]
    dead = {h.jti for h in chain.hops[depth - 1 :]}

    result = revoke_checked(world, "token", chain.hops[depth - 1].jti, reason="leaked")

    assert (result.tokens, result.transactions, set(result.jtis)) == (len(dead), 1, dead)
    assert_only_dead(world, dead)
    # Its ancestor (or, at the root, the sibling transaction's root) still exchanges.
    alive = chain.hops[depth - 2] if depth > 1 else world.chains["alice2"].hops[0]
    resp = further_exchange(world, alive)
    assert resp.status_code == 200, resp.json


def test_revoke_token_when_mid_chain_then_sibling_transaction_continues(world: World) -> None:
    revoke_checked(world, "token", world.chains["alice1"].hops[1].jti)

    resp = further_exchange(world, world.chains["alice2"].hops[1])
    assert resp.status_code == 200, resp.json
    assert claims_of(resp.json["access_token"])["txn"] == world.chains["alice2"].txn


def test_revoke_txn_when_revoked_then_every_hop_of_it_dies_and_siblings_live(
    world: World,
) -> None:
    chain = world.chains["alice1"]

    result = revoke_checked(world, "txn", chain.txn)

    assert (result.tokens, result.transactions, set(result.jtis)) == (3, 1, chain.jtis)
    assert_only_dead(world, chain.jtis)
    assert world.chains["alice2"].txn != chain.txn


def test_revoke_nhi_when_agent_revoked_then_every_chain_through_it_dies(world: World) -> None:
    # alice's two chains and bob's: the agent is in all of them, from the hop addressed to it
    # (DESIGN §7: a token addressed to a revoked NHI dies too) to the last.
    dead = all_hops(world, 1, 2, 3)

    result = revoke_checked(world, "nhi", "agent", reason="compromised")

    assert (result.tokens, result.transactions, set(result.jtis)) == (9, 3, dead)
    assert_only_dead(world, dead, unusable=frozenset({"agent"}))
    agent = world.nhis["agent"]
    resp = client_credentials(world.client, agent)
    assert (resp.status_code, resp.json) == (401, INVALID_CLIENT)
    resp = exchange(world.client, agent, world.chains["alice2"].hops[0].token, audience="tool")
    assert (resp.status_code, resp.json) == (401, INVALID_CLIENT)
    with admin_store(world.runtime.engine) as store:
        view = nhis.get_nhi(store, "agent")
    assert view.status == "disabled" and view.status_reason == "compromised"
    assert {c["status"] for c in view.credentials} == {"revoked"}
    # Tokens no agent touched keep working: bob's direct token, tool's own token.
    resp = client_credentials(world.client, world.nhis["tool"])
    assert resp.status_code == 200, resp.json


def test_revoke_credential_when_rotated_then_only_tokens_of_the_old_one_die(
    world: World,
) -> None:
    with admin_store(world.runtime.engine) as store:
        old = nhis.get_nhi(store, "agent").credentials[0]["id"]
        new_id, new_secret = credentials.rotate_secret(
            store, world.runtime.hasher, "agent", now=world.clock.now(), admin="t"
        )
    world.chains["carol"] = world.run_chain("carol", agent=new_secret)
    with world.runtime.engine.connect() as conn:
        used = dict(
            conn.execute(
                IssuedToken.__table__.select()
                .with_only_columns(IssuedToken.jti, IssuedToken.credential_id)
                .where(IssuedToken.client_id == "agent")
            ).all()
        )
    assert used[world.chains["alice1"].hops[1].jti] == old
    assert used[world.chains["carol"].hops[1].jti] == new_id
    dead = {c.hops[d].jti for name, c in world.chains.items() if name != "carol" for d in (1, 2)}

    result = revoke_checked(world, "credential", old, reason="leaked")

    assert (result.tokens, result.transactions, set(result.jtis)) == (6, 3, dead)
    old_secret = world.nhis["agent"]
    resp = client_credentials(world.client, old_secret)
    assert (resp.status_code, resp.json) == (401, INVALID_CLIENT)
    new = world.nhis["agent"] = replace(old_secret, secret=new_secret)
    assert_only_dead(world, dead)
    resp = client_credentials(world.client, new)
    assert resp.status_code == 200, resp.json
    resp = exchange(world.client, new, world.chains["alice1"].hops[0].token, audience="tool")
    assert resp.status_code == 200, resp.json


def test_revoke_rule_when_mid_chain_rule_revoked_then_its_tokens_die_and_it_mints_nothing(
    world: World,
) -> None:
    dead = all_hops(world, 2, 3)

    result = revoke_checked(world, "rule", world.rules["agent"])

    assert (result.tokens, result.transactions, set(result.jtis)) == (6, 3, dead)
    assert_only_dead(world, dead)
    resp = exchange(
        world.client, world.nhis["agent"], world.chains["alice1"].hops[0].token, audience="tool"
    )
    assert (resp.status_code, resp.json) == (400, INVALID_TARGET)


def test_revoke_rule_when_last_hop_rule_revoked_then_only_last_hops_die(world: World) -> None:
    dead = all_hops(world, 3)

    result = revoke_checked(world, "rule", world.rules["tool"])

    assert (result.tokens, set(result.jtis)) == (3, dead)
    assert_only_dead(world, dead)
    resp = exchange(
        world.client, world.nhis["tool"], world.chains["alice1"].hops[1].token, audience="data"
    )
    assert (resp.status_code, resp.json) == (400, INVALID_TARGET)


def test_revoke_issuer_when_revoked_then_every_chain_it_started_dies(world: World) -> None:
    assert world.direct is not None
    dead = all_hops(world, 1, 2, 3) | {world.direct.jti}

    result = revoke_checked(world, "issuer", world.idp.issuer)

    assert (result.tokens, result.transactions, set(result.jtis)) == (10, 4, dead)
    assert_only_dead(world, dead)
    resp = exchange(world.client, world.nhis["web"], world.person_token("alice"), audience="agent")
    assert (resp.status_code, resp.json) == (400, INVALID_SUBJECT)
    resp = client_credentials(world.client, world.nhis["web"])
    assert resp.status_code == 200, resp.json


def test_revoke_when_already_revoked_then_nothing_more_dies(world: World) -> None:
    chain = world.chains["alice1"]
    revoke_checked(world, "token", chain.hops[1].jti)

    with world.runtime.engine.begin() as conn:
        again = revoke(conn, "txn", chain.txn, now=world.clock.now(), admin="test")

    assert (again.tokens, again.jtis) == (1, [chain.hops[0].jti])
    assert_only_dead(world, chain.jtis)


def test_revoke_when_tokens_expired_then_they_are_not_counted(world: World) -> None:
    chain = world.chains["alice1"]
    world.clock.advance(chain.hops[2].claims["exp"] - world.clock.now())  # the last hop's end

    with world.runtime.engine.begin() as conn:
        result = revoke(conn, "txn", chain.txn, now=world.clock.now(), admin="test")

    assert set(result.jtis) == {chain.hops[0].jti, chain.hops[1].jti}


@pytest.mark.parametrize(
    ("kind", "target"),
    [
        ("token", "no-such-jti"),
        ("txn", "no-such-txn"),
        ("nhi", "nobody"),
        ("credential", "cred_nope"),
        ("rule", "rule_nope"),
        ("issuer", "https://unknown.example.test"),
    ],
)
@pytest.mark.parametrize("dry_run", [True, False])
def test_revoke_when_target_unknown_then_not_found(
    world: World, kind: str, target: str, dry_run: bool
) -> None:
    with pytest.raises(NotFound) as raised, admin_store(world.runtime.engine) as store:
        revocation.revoke(
            store, kind, target, now=world.clock.now(), admin="test", dry_run=dry_run
        )

    assert (raised.value.code, raised.value.what) == ("not_found", kind)
    assert feed_jtis(world.client, world.nhis["data"]) == {}


def test_revoke_when_kind_unknown_then_invalid(world: World) -> None:
    with pytest.raises(Invalid) as raised, admin_store(world.runtime.engine) as store:
        revocation.revoke(store, "person", "alice", now=world.clock.now(), admin="test")

    assert raised.value.code == "invalid"


def test_revoke_when_done_then_audited_with_admin_reason_and_count(world: World) -> None:
    revoke_checked(world, "nhi", "agent", reason="compromised")

    with admin_store(world.runtime.engine) as store:
        events = audit.list_events(store, event="admin.revoke.nhi")
    assert len(events) == 1
    assert events[0]["client_id"] == "test"
    assert events[0]["decision"] == "done"
    assert events[0]["detail"]["target"] == "agent"
    assert events[0]["detail"]["reason"] == "compromised"
    assert events[0]["detail"]["tokens"] == 9
