"""Chain invariants over the live token endpoint, for random registries and random chains.

Each example registers a fresh handful of NHIs (unique names: the database outlives examples
within one test), random delegation rules, a chain root (a person's token from a trusted issuer,
or an NHI's own client_credentials token), then runs random steps: exchanges by a random actor
of a random earlier token toward a random target with a random scope, clock advances, and
rules or NHIs disabled mid-chain. A small model written from DESIGN §5 predicts every answer;
on top of it, every issued token is checked against the invariants that must hold on any chain
(sub fixed, one audience, scope only narrows, life only shortens, one txn, act = the actors so
far, depth within limits) and every answer against the registry (one lineage row and one
"allowed" audit event per issued token; none and one "denied" event per refusal).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from sts.services import issuers, nhis, rules
from sts.store.admin import admin_store
from sts.store.models import AuditEvent, IssuedToken
from tests.conftest import ISSUER
from tests.exchange_fixtures import PersonIdp, client_credentials, exchange
from tests.helpers import claims_of

EXAMPLES = hypothesis_settings(
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NAMES = itertools.count()
UNIVERSE = ("a", "b", "c", "d")
KINDS = ("service", "agent", "workload")
UNKNOWN = "no-such-target"
TTLS = (None, 1, 20, 60, 250, 1000)
ADVANCES = (3, 10, 40, 400)


@dataclass
class Rule:
    id: str
    actor: str
    targets: frozenset[str] | None  # None: '*'
    scopes: frozenset[str]
    subject: str
    subject_issuer: str | None  # a sub subject's trusted issuer; None: an NHI
    upstream: str | None
    max_depth: int | None
    max_ttl: int | None
    enabled: bool = True


@dataclass(frozen=True)
class Tok:
    """What the model knows about a token a hop may present as its subject token."""

    raw: str
    sub: str
    aud: str
    exp: int
    chain: tuple[str, ...]  # actor subs, outermost first
    own: bool
    cap: frozenset[str] | None  # scopes that cap the next hop; None: only the rule does
    jti: str | None = None
    txn: str | None = None
    rules: frozenset[str] = frozenset()  # rules that minted it and its ancestors
    clients: frozenset[str] = frozenset()  # NHIs that minted it and its ancestors


@dataclass
class World:
    names: list[str]
    kinds: dict[str, str]
    rules: list[Rule]
    root_sub: str
    root_issuer: str  # the chain subject's issuer: a person's IdP, or this STS
    root_nhi_kind: str | None
    secrets: dict[str, Any]
    disabled: set[str] = field(default_factory=set)
    path: list[str] = field(default_factory=list)
    tokens: list[Tok] = field(default_factory=list)


@dataclass(frozen=True)
class Denied:
    error: str


@dataclass(frozen=True)
class Allowed:
    target: str
    chain: tuple[str, ...]
    #: (rule, granted scopes, exp): any one of these is a correct answer.
    choices: tuple[tuple[Rule, frozenset[str], int], ...]


# -- the model: DESIGN §5, written independently of sts.core.policy --------------------------------
def _subject_covered(rule: Rule, world: World) -> bool:
    kind, _, value = rule.subject.partition(":")
    # §3: a sub rule names (issuer, sub); without an issuer, an NHI of this STS.
    sub_issuer = rule.subject_issuer or (ISSUER if world.root_nhi_kind else None)
    return (
        rule.subject == "any"
        or (kind == "sub" and value == world.root_sub and sub_issuer == world.root_issuer)
        or (kind == "issuer" and value == world.root_issuer)
        or (kind == "kind" and value == world.root_nhi_kind)
    )


def expect(
    world: World, tok: Tok, actor: str, target: str | None, requested: Any, now: int, cfg: Any
) -> Denied | Allowed:
    if actor in world.disabled:
        return Denied("invalid_client")
    # §5.2: the subject token: unexpired (with leeway), every rule and NHI behind it in force.
    if now >= tok.exp + cfg.leeway:
        return Denied("invalid_request")
    disabled_rules = {r.id for r in world.rules if not r.enabled}
    if tok.own and (tok.rules & disabled_rules or tok.clients & world.disabled):
        return Denied("invalid_request")
    # §5.3: only its audience may exchange it; one addressed to the STS itself, anyone if a
    # trusted issuer minted it, only the client it was issued to if this STS did (an own
    # token addressed to the STS is a client_credentials root: issued to its sub).
    if tok.aud not in {actor, ISSUER, cfg.token_endpoint}:
        return Denied("invalid_request")
    if tok.aud != actor and tok.own and tok.sub != actor:
        return Denied("invalid_request")
    # §5.6: one registered, active target; omitted: the actor itself.
    if target is not None and (target not in world.names or target in world.disabled):
        return Denied("invalid_target")
    goal = target or actor
    # §5.5: default deny; no rule reaching the target is invalid_target before any judgement
    # of the chain, so a target without a rule answers like an unknown one.
    reaching = [
        r
        for r in world.rules
        if r.enabled and r.actor == actor and (r.targets is None or goal in r.targets)
    ]
    if not reaching:
        return Denied("invalid_target")
    # §5.9: newest outermost; no level for self; a repeated actor is a cycle.
    if (not tok.chain and actor == tok.sub) or (tok.chain and tok.chain[0] == actor):
        chain = tok.chain
    elif actor in tok.chain or actor == tok.sub:
        return Denied("invalid_request")
    else:
        chain = (actor, *tok.chain)
    if len(chain) > cfg.max_chain_depth:
        return Denied("invalid_request")
    upstream = tok.chain[0] if tok.chain else (tok.sub if world.root_nhi_kind else None)
    covering = [
        r
        for r in reaching
        if _subject_covered(r, world)
        and (r.upstream is None or r.upstream == upstream)
        and (r.max_depth is None or len(chain) <= r.max_depth)
    ]
    if not covering:
        return Denied("invalid_request")

    def allowed(r: Rule) -> frozenset[str]:
        return r.scopes if tok.cap is None else r.scopes & tok.cap

    if requested is None:
        best = max(len(allowed(r)) for r in covering)
        grants = [(r, allowed(r)) for r in covering if len(allowed(r)) == best]
    else:
        grants = [(r, requested) for r in covering if requested <= allowed(r)]
        if not grants:
            return Denied("invalid_scope")
    if not grants[0][1]:
        return Denied("invalid_scope")  # §5.7: a token with no scope is never minted
    # §5.8: the earliest of every bound.
    if tok.exp <= now:
        return Denied("invalid_request")
    choices = []
    for r, scopes in grants:
        bounds = [now + cfg.token_ttl, now + cfg.max_token_ttl, tok.exp]
        bounds += [now + r.max_ttl] if r.max_ttl is not None else []
        choices.append((r, scopes, min(bounds)))
    return Allowed(goal, chain, tuple(choices))


# -- setting up one example ---------------------------------------------------------------------
def _subset(data: Any, pool: tuple[str, ...] | list[str], min_size: int = 0) -> frozenset[str]:
    return data.draw(st.frozensets(st.sampled_from(pool), min_size=min_size))


def depths(hop: int) -> list[int | None]:
    near = [d for d in (hop - 1, hop, hop, hop + 1) if d >= 1] if hop else [1, 2, 3]
    return [None, None, None, *near]


def build_world(
    data: Any, client: Any, runtime: Any, make_nhi: Any, clock: Any, size: int, focused: bool
) -> World:
    """``size`` NHIs, rules along a path through them (all of it when ``focused``) and, unless
    ``focused``, a few random rules; then the chain's root token."""
    n = next(NAMES)
    names = [f"p{n}-{i}" for i in range(size)]
    kinds = {name: data.draw(st.sampled_from(KINDS)) for name in names}
    nhis = {
        name: make_nhi(name, kinds[name], scope=" ".join(sorted(_subset(data, UNIVERSE))))
        for name in names
    }
    now = clock.now()
    person = data.draw(st.booleans(), label="person root")
    if person:
        idp = PersonIdp(f"https://idp{n}.example.test")
        world = World(names, kinds, [], "alice", idp.issuer, None, nhis)
    else:
        who = data.draw(st.sampled_from(names), label="root nhi")
        world = World(names, kinds, [], who, ISSUER, kinds[who], nhis)
    # Rules are mostly "loose" (their subject and upstream fit this chain), so that chains get
    # long enough to meet the limits; the rest pick any subject and upstream.
    # Subjects with the issuer of a sub subject (None: an NHI).
    root = (f"sub:{world.root_sub}", None if world.root_nhi_kind else world.root_issuer)
    fitting = [("any", None), root, (f"issuer:{world.root_issuer}", None)]
    fitting += [(f"kind:{world.root_nhi_kind}", None)] if world.root_nhi_kind else []
    subjects = [*fitting, (f"sub:{names[0]}", None), (f"issuer:{ISSUER}", None)]
    subjects += [(f"kind:{k}", None) for k in KINDS]
    # The root's sub from the other kind of issuer: an NHI for a person, a person for an NHI.
    subjects += [(root[0], None if world.root_nhi_kind is None else "https://idp.example.test")]
    subjects += [(root[0], "https://elsewhere.example.test")]
    # Some along a path through every NHI, so that long chains exist.
    path = data.draw(st.permutations(names), label="path")
    world.path = path
    hops = size - 1 if focused else data.draw(st.sampled_from(range(1, size)), label="path")
    first = world.root_sub if world.root_nhi_kind else None
    planned: list[tuple[str | None, frozenset[str] | None, list[str | None]]] = [
        (path[i], frozenset({path[i + 1]}), [None, None, path[i - 1] if i else first])
        for i in range(hops)
    ]
    if not focused:
        more = data.draw(st.sampled_from(range(5)), label="more rules")
        planned += [(None, None, [None, None])] * more
    for hop, (actor, targets, upstreams) in enumerate(planned, start=1):
        if actor is None:
            targets = data.draw(st.frozensets(st.sampled_from(names), min_size=1) | st.none())
        loose = focused or data.draw(st.sampled_from([True, True, True, False]), label="loose")
        subject, subject_issuer = data.draw(st.sampled_from(fitting if loose else subjects))
        created = Rule(
            id="",
            actor=actor or data.draw(st.sampled_from(names)),
            targets=targets,
            scopes=_subset(data, UNIVERSE, min_size=2 if focused else 0),
            subject=subject,
            subject_issuer=subject_issuer,
            upstream=data.draw(st.sampled_from(upstreams if loose else [None, *names])),
            # Along the path, hop n mints depth n: limits just below, at and above it.
            max_depth=data.draw(st.sampled_from(depths(hop if actor else 0))),
            max_ttl=data.draw(st.sampled_from(TTLS)),
        )
        with admin_store(runtime.engine) as store:
            view = rules.create_rule(
                store, actor=created.actor,
                targets=["*"] if targets is None else sorted(targets),
                scope=" ".join(sorted(created.scopes)), subject=created.subject,
                subject_issuer=created.subject_issuer,
                upstream=created.upstream, max_depth=created.max_depth,
                max_ttl=created.max_ttl, now=now, admin="t",
            )  # fmt: skip
        world.rules.append(replace(created, id=view["id"]))
    if person:
        mode = data.draw(st.sampled_from(["cap", "rule"]), label="issuer scope mode")
        with admin_store(runtime.engine) as store:
            issuers.add_issuer(
                store,
                issuer=idp.issuer,
                jwks=idp.keys.jwks,
                audiences=names,
                algorithms=["ES256"],
                scope_mode=mode,
                now=now,
                admin="t",
            )
        scope = _subset(data, (*UNIVERSE, "profile"))
        auds = [path[0]] if focused else [path[0], path[0], path[0], *names]
        aud = data.draw(st.sampled_from(auds), label="person aud")
        life = data.draw(st.integers(30, 900), label="person token life")
        raw = idp.token("alice", aud, now, scope=" ".join(sorted(scope)) or None, exp=now + life)
        root = Tok(raw, "alice", aud, now + life, (), False, scope if mode == "cap" else None)
    else:
        resp = client_credentials(client, nhis[world.root_sub])
        assert resp.status_code == 200, resp.json
        claims = claims_of(resp.json["access_token"])
        root = Tok(resp.json["access_token"], world.root_sub, ISSUER, claims["exp"], (), True,
                   frozenset(claims.get("scope", "").split()), claims["jti"], claims["txn"],
                   frozenset(), frozenset({world.root_sub}))  # fmt: skip
    world.tokens.append(root)
    return world


def draw_request(data: Any, world: World, focused: bool) -> tuple[Tok, str, str | None, Any]:
    """A subject token, an actor, a target and a scope: mostly a hop some rule is about
    (always, when ``focused``: the latest token's holder toward where its rules lead)."""
    names = world.names
    aimed = focused or data.draw(st.sampled_from([True, True, True, False]), label="aimed")
    latest = focused or data.draw(st.sampled_from([True, True, False]), label="latest token")
    tok = world.tokens[-1] if latest else data.draw(st.sampled_from(world.tokens), label="token")
    acting = sorted({r.actor for r in world.rules if r.enabled}) if aimed else []
    acting = world.path[:1] if focused else acting
    holder = tok.aud if tok.aud in names else data.draw(st.sampled_from(acting or names))
    actor = holder if aimed else data.draw(st.sampled_from(names), label="actor")
    own = [r for r in world.rules if r.actor == actor and r.enabled]
    ruled = sorted({t for r in own for t in (r.targets or names)})
    if aimed and ruled:
        target = data.draw(st.sampled_from(ruled), label="target")
    else:
        target = data.draw(st.none() | st.sampled_from(names) | st.just(UNKNOWN), label="target")
    pool = sorted(
        {s for r in own for s in r.scopes} & (frozenset(UNIVERSE) if tok.cap is None else tok.cap)
    )
    if aimed and pool:
        scopes = st.none() | st.frozensets(st.sampled_from(pool), min_size=1)
    else:
        scopes = st.none() | st.frozensets(st.sampled_from((*UNIVERSE, "z")), min_size=1)
    return tok, actor, target, data.draw(scopes, label="scope")


# -- observing the registry ---------------------------------------------------------------------
def _marks(runtime: Any) -> tuple[int, int]:
    with runtime.engine.connect() as conn:
        issued = conn.execute(select(func.count()).select_from(IssuedToken)).scalar_one()
        last_event = conn.execute(select(func.max(AuditEvent.id))).scalar_one() or 0
    return int(issued), int(last_event)


def _since(runtime: Any, marks: tuple[int, int]) -> tuple[int, list[Any]]:
    with runtime.engine.connect() as conn:
        issued = conn.execute(select(func.count()).select_from(IssuedToken)).scalar_one()
        events = conn.execute(select(AuditEvent).where(AuditEvent.id > marks[1])).all()
    return int(issued) - marks[0], list(events)


def _actors(claims: dict[str, Any]) -> list[str]:
    out, level = [], claims.get("act")
    while level is not None:
        assert set(level) <= {"sub", "act"}, level  # identity members only
        out.append(level["sub"])
        level = level.get("act")
    return out


# -- the checks on one answer -------------------------------------------------------------------
def check_denied(resp: Any, expected: Denied, runtime: Any, marks: tuple[int, int]) -> None:
    assert resp.status_code == (401 if expected.error == "invalid_client" else 400), resp.json
    body = resp.json
    assert set(body) == {"error", "error_description"}, body
    assert body["error"] == expected.error, body
    assert body["error_description"].isascii()
    new_tokens, events = _since(runtime, marks)
    assert new_tokens == 0
    assert [e.decision for e in events] == ["denied"]
    assert events[0].detail.get("error") == expected.error
    assert events[0].reason


def check_allowed(
    resp: Any,
    expected: Allowed,
    tok: Tok,
    actor: str,
    world: World,
    runtime: Any,
    marks: tuple[int, int],
    now: int,
    cfg: Any,
) -> Tok:
    assert resp.status_code == 200, resp.json
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.json
    claims = claims_of(body["access_token"])
    new_tokens, events = _since(runtime, marks)
    assert new_tokens == 1
    assert [e.decision for e in events] == ["allowed"]
    event = events[0]
    with runtime.engine.connect() as conn:
        row = conn.execute(select(IssuedToken).where(IssuedToken.jti == claims["jti"])).one()
    rule = next(r for r in world.rules if r.id == row.rule_id)
    granted = frozenset(claims.get("scope", "").split())

    # The model's prediction.
    assert (rule, granted, claims["exp"]) in expected.choices, (claims, expected)
    # The invariants of every chain, whatever the rules.
    assert claims["iss"] == ISSUER
    assert claims["sub"] == world.root_sub == tok.sub
    assert claims["aud"] == expected.target  # exactly one audience: the target, or the actor
    assert claims["client_id"] == actor
    assert claims["iat"] == claims["nbf"] == now
    assert granted <= rule.scopes
    if tok.cap is not None:
        assert granted <= tok.cap
    assert claims["exp"] <= tok.exp
    assert claims["exp"] <= now + cfg.token_ttl
    if rule.max_ttl is not None:
        assert claims["exp"] <= now + rule.max_ttl
    assert body["expires_in"] == claims["exp"] - now
    assert claims["txn"] == (tok.txn or claims["jti"])
    actors = _actors(claims)
    assert tuple(actors) == expected.chain
    assert len(set(actors)) == len(actors)
    assert world.root_sub not in actors
    assert len(actors) <= cfg.max_chain_depth
    if rule.max_depth is not None:
        assert len(actors) <= rule.max_depth
    assert "may_act" not in claims
    # The lineage row and the audit event say the same.
    assert row.parent_jti == (tok.jti if tok.own else None)
    assert (row.txn, row.client_id, row.target, row.depth) == (
        claims["txn"],
        actor,
        claims["aud"],
        len(actors),
    )
    assert tuple(row.chain) == tuple(actors)
    assert frozenset(row.scope.split()) == granted
    assert (event.jti, event.txn, event.rule_id) == (claims["jti"], claims["txn"], rule.id)
    return Tok(body["access_token"], claims["sub"], claims["aud"], claims["exp"], tuple(actors),
               True, granted, claims["jti"], claims["txn"], tok.rules | {rule.id},
               tok.clients | {actor})  # fmt: skip


# -- the properties ------------------------------------------------------------------------------
def play(data: Any, world: World, fx: dict[str, Any], steps: int, focused: bool) -> None:
    """Run ``steps`` random steps against the live app, checking every answer."""
    client, runtime, clock, cfg = fx["client"], fx["runtime"], fx["clock"], fx["settings"]
    moves = ["exchange"] * 32 + ["advance"] * 4 + ([] if focused else ["rule"] * 2 + ["nhi"])
    for _ in range(steps):
        step = data.draw(st.sampled_from(moves), label="step")
        if step == "advance":
            clock.advance(data.draw(st.sampled_from(ADVANCES), label="seconds"))
            continue
        if step == "rule" and any(r.enabled for r in world.rules):
            off = data.draw(st.sampled_from([r for r in world.rules if r.enabled]))
            with admin_store(runtime.engine) as store:
                rules.disable_rule(store, off.id, now=clock.now(), admin="t")
            off.enabled = False
            continue
        if step == "nhi":
            name = data.draw(st.sampled_from(world.names), label="disable nhi")
            with admin_store(runtime.engine) as store:
                nhis.set_nhi_status(store, name, status="disabled", reason="test",
                                        now=clock.now(), admin="t")  # fmt: skip
            world.disabled.add(name)
            continue
        tok, actor, target, requested = draw_request(data, world, focused)
        now = clock.now()
        expected = expect(world, tok, actor, target, requested, now, cfg)
        marks = _marks(runtime)
        scope = " ".join(sorted(requested)) if requested is not None else None
        resp = exchange(client, world.secrets[actor], tok.raw, audience=target, scope=scope)
        if isinstance(expected, Denied):
            event(f"denied: {expected.error}")
            check_denied(resp, expected, runtime, marks)
        else:
            new = check_allowed(resp, expected, tok, actor, world, runtime, marks, now, cfg)
            event(f"allowed at depth {len(new.chain)}")
            world.tokens.append(new)


@pytest.fixture
def fx(client: Any, runtime: Any, make_nhi: Any, clock: Any, settings: Any) -> dict[str, Any]:
    return {"client": client, "runtime": runtime, "make_nhi": make_nhi, "clock": clock,
            "settings": settings}  # fmt: skip


def _world(data: Any, fx: dict[str, Any], size: int, focused: bool) -> World:
    return build_world(data, fx["client"], fx["runtime"], fx["make_nhi"], fx["clock"], size,
                       focused)  # fmt: skip


@EXAMPLES
@given(data=st.data())
def test_exchange_when_random_rules_and_requests_then_every_answer_keeps_the_invariants(
    data: Any, fx: dict[str, Any]
) -> None:
    world = _world(data, fx, size=4, focused=False)
    play(data, world, fx, data.draw(st.sampled_from(range(1, 12)), label="steps"), False)


@EXAMPLES
@given(data=st.data())
def test_exchange_when_chain_follows_a_path_of_rules_then_deep_chains_keep_the_invariants(
    data: Any, fx: dict[str, Any]
) -> None:
    """Every hop aimed along rules through seven NHIs: chains reach the rules' and the global
    depth limits (five), scopes and lifetimes narrow hop after hop."""
    world = _world(data, fx, size=7, focused=True)
    play(data, world, fx, data.draw(st.sampled_from(range(4, 10)), label="steps"), True)


def test_exchange_when_chain_would_pass_global_depth_then_sixth_actor_refused(
    fx: dict[str, Any],
) -> None:
    """Five levels of ``act`` (the global maximum) are allowed; a sixth is ``invalid_request``,
    though every rule on the way is unlimited."""
    runtime, clock, cfg = fx["runtime"], fx["clock"], fx["settings"]
    assert cfg.max_chain_depth == 5
    names = [f"deep{next(NAMES)}-{i}" for i in range(7)]
    nhis = {name: fx["make_nhi"](name, "agent") for name in names}
    idp = PersonIdp(f"https://idp-deep{next(NAMES)}.example.test")
    world = World(names, dict.fromkeys(names, "agent"), [], "alice", idp.issuer, None, nhis)
    with admin_store(runtime.engine) as store:
        issuers.add_issuer(store, issuer=idp.issuer, jwks=idp.keys.jwks, audiences=names[:1],
                            algorithms=["ES256"], now=clock.now(), admin="t")  # fmt: skip
        for actor, target in itertools.pairwise(names):
            view = rules.create_rule(store, actor=actor, targets=[target], scope="a",
                                     now=clock.now(), admin="t")  # fmt: skip
            world.rules.append(Rule(view["id"], actor, frozenset({target}), frozenset({"a"}),
                                    "any", None, None, None, None))  # fmt: skip
    raw = idp.token("alice", names[0], clock.now(), scope="a b")
    tok = Tok(raw, "alice", names[0], clock.now() + 600, (), False, None)
    for depth, (actor, target) in enumerate(itertools.pairwise(names), start=1):
        expected = expect(world, tok, actor, target, None, clock.now(), cfg)
        marks = _marks(runtime)
        resp = exchange(fx["client"], nhis[actor], tok.raw, audience=target)
        if depth <= cfg.max_chain_depth:
            assert isinstance(expected, Allowed)
            tok = check_allowed(resp, expected, tok, actor, world, runtime, marks, clock.now(),
                                cfg)  # fmt: skip
            assert len(tok.chain) == depth
        else:
            assert expected == Denied("invalid_request")
            check_denied(resp, expected, runtime, marks)
