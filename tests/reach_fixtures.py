"""A registry whose chains were made with actor tokens, for what a revocation reaches
(DESIGN §7): person → web → agent → tool, the agent's hop made four ways.

- ``plain``: no actor token;
- ``own``: the agent's own token ``A`` (client credentials) as the actor token;
- ``relay``: the agent's ``C2`` as the actor token, itself minted by exchanging the agent's
  own ``C`` with ``A`` as the actor token (so ``A`` → ``C2`` → the hop is two actor edges);
- ``vouched``: an actor token from a trusted workload issuer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sts.services import issuers, rules
from sts.store.admin import admin_store
from sts.store.models import IssuedToken
from sts.store.revocation import Result, revoke
from tests.conftest import Registered
from tests.exchange_fixtures import ACCESS_TOKEN, JWT_TYPE, PersonIdp, client_credentials, exchange
from tests.helpers import claims_of
from tests.test_revocation import INVALID_SUBJECT, Token, feed_jtis, is_active

WORKLOAD = "https://workload.example.test"
ORDERS = "orders:read orders:write"
CHAINS = ("plain", "own", "relay", "vouched")


@dataclass
class ReachWorld:
    client: Any
    runtime: Any
    clock: Any
    idp: PersonIdp
    workload: PersonIdp
    nhis: dict[str, Registered]
    rules: dict[str, str]
    #: The agent's own tokens: ``A``, ``C`` and ``C2`` (see the module docstring).
    own: dict[str, Token] = field(default_factory=dict)
    #: Each chain's hops: web's (addressed to the agent), the agent's, the tool's.
    chains: dict[str, list[Token]] = field(default_factory=dict)

    def tokens(self) -> dict[str, Token]:
        every = [*self.own.values(), *(h for hops in self.chains.values() for h in hops)]
        return {t.jti: t for t in every}

    def hops(self, *names: str, depths: tuple[int, ...] = (1, 2, 3)) -> set[str]:
        return {self.chains[n][d - 1].jti for n in names for d in depths}

    def send(self, who: str, subject: str, **params: Any) -> Token:
        resp = exchange(self.client, self.nhis[who], subject, **params)
        assert resp.status_code == 200, resp.json
        return token_of(resp.json["access_token"])

    def run_chain(self, actor_token: str | None, actor_type: str = ACCESS_TOKEN) -> list[Token]:
        person = self.idp.token("alice", "web", self.clock.now(), scope=ORDERS)
        first = self.send("web", person, audience="agent")
        extra = {"actor_token": actor_token, "actor_token_type": actor_type} if actor_token else {}
        second = self.send("agent", first.token, audience="tool", scope=ORDERS, **extra)
        third = self.send("tool", second.token, audience="data", scope="orders:read")
        return [first, second, third]


def token_of(token: str) -> Token:
    return Token(token, claims_of(token))


def build_reach_world(client: Any, runtime: Any, make_nhi: Any, clock: Any) -> ReachWorld:
    nhis = {
        "web": make_nhi("web", "service"),
        "agent": make_nhi("agent", "agent", scope="self"),
        "tool": make_nhi("tool", "workload"),
        "data": make_nhi("data", "service"),
    }
    idp, workload, now = PersonIdp(), PersonIdp(WORKLOAD), clock.now()
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
        issuers.add_issuer(
            store,
            issuer=WORKLOAD,
            jwks=workload.keys.jwks,
            algorithms=["ES256"],
            now=now,
            admin="t",
        )

        def rule(actor: str, target: str, scope: str, **terms: Any) -> str:
            made = rules.create_rule(
                store, actor=actor, targets=[target], scope=scope, now=now, admin="t", **terms
            )
            return str(made["id"])

        rule_ids = {
            "web": rule("web", "agent", ORDERS, subject=f"issuer:{idp.issuer}"),
            "agent": rule("agent", "tool", ORDERS, upstream="web"),
            "tool": rule("tool", "data", "orders:read", upstream="agent"),
            "self": rule("agent", "agent", "self"),
        }
    world = ReachWorld(client, runtime, clock, idp, workload, nhis, rule_ids)
    agent = nhis["agent"]
    for name in ("A", "C"):
        resp = client_credentials(client, agent, scope="self")
        assert resp.status_code == 200, resp.json
        world.own[name] = token_of(resp.json["access_token"])
    # The agent exchanges its own C for itself, with A as the actor token.
    world.own["C2"] = world.send(
        "agent",
        world.own["C"].token,
        actor_token=world.own["A"].token,
        actor_token_type=ACCESS_TOKEN,
    )
    vouched = workload.token("agent", runtime.settings.issuer, now)
    world.chains = {
        "plain": world.run_chain(None),
        "own": world.run_chain(world.own["A"].token),
        "relay": world.run_chain(world.own["C2"].token),
        "vouched": world.run_chain(vouched, JWT_TYPE),
    }
    return world


def lineage_of(world: ReachWorld) -> dict[str, tuple[str | None, str | None, str | None]]:
    """Each token's recorded ``(parent_jti, actor_jti, actor_issuer)``, by jti."""
    with world.runtime.engine.connect() as conn:
        rows = conn.execute(
            IssuedToken.__table__.select().with_only_columns(
                IssuedToken.jti,
                IssuedToken.parent_jti,
                IssuedToken.actor_jti,
                IssuedToken.actor_issuer,
            )
        ).all()
    return {r.jti: (r.parent_jti, r.actor_jti, r.actor_issuer) for r in rows}


def revoke_both_ways(world: ReachWorld, kind: str, target: str, reason: str = "") -> Result:
    """A dry run that changes nothing, then the revocation, which must do what it predicted."""
    with world.runtime.engine.begin() as conn:
        dry = revoke(conn, kind, target, now=world.clock.now(), admin="ops", dry_run=True)
    assert feed_jtis(world.client, world.nhis["data"]) == {}
    with world.runtime.engine.begin() as conn:
        real = revoke(conn, kind, target, now=world.clock.now(), admin="ops", reason=reason)
    assert (dry.tokens, dry.transactions, dry.jtis) == (real.tokens, real.transactions, real.jtis)
    return real


def holder_sees(world: ReachWorld, token: Token) -> bool:
    """Introspected by the client it was issued to (which can still authenticate)."""
    return is_active(world, token, frozenset(world.nhis))


def assert_exactly_dead(world: ReachWorld, dead: set[str]) -> None:
    """``dead`` is inactive, on the feed with its exp, and refused as a subject by its
    audience; every other token is active."""
    tokens = world.tokens()
    assert dead <= set(tokens)
    for jti, token in tokens.items():
        assert holder_sees(world, token) is (jti not in dead), (jti, token.claims)
    listed = feed_jtis(world.client, world.nhis["data"])
    assert listed == {jti: tokens[jti].claims["exp"] for jti in dead}
    following = {"agent": "tool", "tool": "data"}
    for jti in dead:
        token = tokens[jti]
        if token.aud in following:
            resp = exchange(
                world.client, world.nhis[token.aud], token.token, audience=following[token.aud]
            )
            assert (resp.status_code, resp.json) == (400, INVALID_SUBJECT), token.claims
