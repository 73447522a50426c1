"""Abuse of the token exchange (DESIGN §5, §6): every trick is refused with the documented error.

Each refusal is asserted whole: the status, the complete JSON error body, one ``token.denied``
audit event carrying the precise internal reason, and no lineage row added. A few positive
checks pin the edges the refusals sit next to (leeway boundaries, ``may_act`` naming the actor,
self-exchange, ``resource``, the ``jwt`` token type).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from sts.core.clock import FrozenClock
from sts.core.settings import Settings
from sts.runtime import Runtime
from sts.services import issuers, nhis, rules
from sts.store.admin import admin_store
from sts.store.models import AuditEvent, DelegationRule, IssuedToken, Nhi
from tests.conftest import ISSUER
from tests.exchange_fixtures import (
    ACCESS_TOKEN,
    EXCHANGE,
    JWT_TYPE,
    PersonIdp,
    client_credentials,
    exchange,
)
from tests.helpers import FORM, basic, claims_of, header_of

LEEWAY = 30
ORDERS = "orders:read orders:write"
DATA_URI = "https://data.example.test/api"
SAML2 = "urn:ietf:params:oauth:token-type:saml2"
REFRESH_TOKEN = "urn:ietf:params:oauth:token-type:refresh_token"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"

SUBJECT_INVALID = {"error": "invalid_request", "error_description": "The subject token is invalid."}
REQUEST_INVALID = {"error": "invalid_request", "error_description": "The request is invalid."}
TARGET_REFUSED = {
    "error": "invalid_target",
    "error_description": "The requested target is unknown or not allowed.",
}
SCOPE_WIDER = {
    "error": "invalid_scope",
    "error_description": "The requested scope exceeds what is allowed.",
}
UNSUPPORTED_TYPE = {"error": "invalid_request", "error_description": "Unsupported token type."}
NOT_TOGETHER = {
    "error": "invalid_request",
    "error_description": "actor_token and actor_token_type must come together.",
}


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def settings(request: pytest.FixtureRequest, engine: Engine, keys_dir: Path) -> Settings:
    """The suite's settings; a test overrides fields with indirect parametrization."""
    overrides: dict[str, Any] = getattr(request, "param", {})
    return Settings(
        issuer=ISSUER,
        database_url=engine.url.render_as_string(hide_password=False),
        keys_dir=keys_dir,
        leeway=LEEWAY,
        **overrides,
    )


@dataclass
class Trail:
    """What the registry held before a request, to prove what the request added."""

    engine: Engine
    last_audit: int = 0
    tokens: int = 0

    def mark(self) -> None:
        with self.engine.connect() as conn:
            self.last_audit = conn.execute(select(func.max(AuditEvent.id))).scalar() or 0
            self.tokens = conn.execute(select(func.count()).select_from(IssuedToken)).scalar_one()

    def denied(self, resp: Any, status: int, body: dict[str, str], reason: str) -> Any:
        """The request was refused with exactly this answer, one denial event, no token."""
        assert resp.status_code == status and resp.json == body, resp.json
        assert resp.headers["Cache-Control"] == "no-store"
        with self.engine.connect() as conn:
            events = conn.execute(
                select(AuditEvent).where(AuditEvent.id > self.last_audit).order_by(AuditEvent.id)
            ).all()
            tokens = conn.execute(select(func.count()).select_from(IssuedToken)).scalar_one()
        assert len(events) == 1, [e.event for e in events]
        (event,) = events
        assert event.event == "token.denied"
        assert event.decision == "denied"
        assert event.reason == reason
        assert event.detail["error"] == body["error"]
        assert event.request_id == resp.headers["X-Request-Id"]
        assert event.jti is None
        assert tokens == self.tokens, "a refused request left a lineage row"
        return event


@dataclass
class World:
    client: FlaskClient
    runtime: Runtime
    clock: FrozenClock
    idp: PersonIdp
    nhis: dict[str, Any]
    rule_ids: dict[str, str] = field(default_factory=dict)

    def person(self, scope: str = ORDERS, aud: str | list[str] = "web", **claims: Any) -> str:
        return self.idp.token("alice", aud, self.clock.now(), scope=scope, **claims)

    def send(self, actor: str, token: str, **params: Any) -> Any:
        return exchange(self.client, self.nhis[actor], token, **params)

    def hop(self, actor: str, token: str, **params: Any) -> str:
        resp = self.send(actor, token, **params)
        assert resp.status_code == 200, resp.json
        access_token: str = resp.json["access_token"]
        return access_token

    def own(self, name: str, **params: Any) -> str:
        resp = client_credentials(self.client, self.nhis[name], **params)
        assert resp.status_code == 200, resp.json
        access_token: str = resp.json["access_token"]
        return access_token

    def rule(self, actor: str, targets: list[str], scope: str = ORDERS, **kwargs: Any) -> str:
        with admin_store(self.runtime.engine) as store:
            rule = rules.create_rule(
                store,
                actor=actor,
                targets=targets,
                scope=scope,
                now=self.clock.now(),
                admin="t",
                **kwargs,
            )
        rule_id: str = rule["id"]
        return rule_id

    def agent_token(self) -> str:
        """Alice's token after web → agent: ``aud`` agent, ``act`` web."""
        return self.hop("web", self.person(), audience="agent")

    def tool_token(self) -> str:
        """Alice's token after web → agent → tool: ``aud`` tool, ``act`` agent, web."""
        return self.hop("agent", self.agent_token(), audience="tool", scope=ORDERS)


@pytest.fixture
def world(client, runtime, make_nhi, clock) -> World:
    idp = PersonIdp()
    nhis = {
        "web": make_nhi("web", "service", scope=ORDERS),
        "agent": make_nhi("agent", "agent", scope=ORDERS),
        "tool": make_nhi("tool", "workload", scope=ORDERS),
        "data": make_nhi("data", "service", resources=[DATA_URI], scope=ORDERS),
        "other": make_nhi("other", "service", scope=ORDERS),
    }
    with admin_store(runtime.engine) as store:
        issuers.add_issuer(
            store,
            issuer=idp.issuer,
            jwks=idp.keys.jwks,
            audiences=["web"],
            algorithms=["ES256"],
            scope_mode="cap",
            now=clock.now(),
            admin="t",
        )
    w = World(client, runtime, clock, idp, nhis)
    person = f"issuer:{idp.issuer}"
    w.rule_ids["web"] = w.rule("web", ["agent", "web", "data"], subject=person)
    w.rule_ids["agent"] = w.rule("agent", ["tool"], upstream="web")
    w.rule_ids["tool"] = w.rule("tool", ["data"], scope="orders:read", upstream="agent")
    return w


@pytest.fixture
def trail(runtime) -> Trail:
    return Trail(runtime.engine)


@pytest.fixture
def relay(world, make_nhi) -> list[str]:
    """NHIs d1 … d6 relaying a chain rooted at ``root``'s own token: d_i may reach d_(i+1)."""
    names = [f"d{i}" for i in range(1, 7)]
    for name in ["root", *names]:
        world.nhis[name] = make_nhi(name, "agent", scope=ORDERS)
    for here, there in zip(names, [*names[1:], "root"], strict=True):
        world.rule_ids[here] = world.rule(here, [there], scope=ORDERS)
    return names


def relay_chain(world: World, names: list[str], hops: int) -> str:
    """``root``'s token after ``hops`` relays: ``act`` holds d_hops … d1."""
    token = world.own("root", audience=names[0])
    for i in range(hops):
        token = world.hop(names[i], token, audience=names[i + 1])
    return token


# -- crafting tokens -----------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict[str, Any]) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def sts_jwk(client: FlaskClient) -> dict[str, Any]:
    jwk: dict[str, Any] = client.get("/jwks.json").json["keys"][0]
    return jwk


def forged_claims(world: World) -> dict[str, Any]:
    """Claims a forger would like: alice's token for agent, as if web had exchanged it."""
    now = world.clock.now()
    return {
        "iss": ISSUER,
        "sub": "alice",
        "aud": "agent",
        "client_id": "web",
        "scope": ORDERS + " admin",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(18),
        "txn": secrets.token_urlsafe(18),
        "act": {"sub": "web"},
    }


def sign_other_key(claims: dict[str, Any], kid: str | None) -> str:
    """An ES256 ``at+jwt`` signed by a key the STS never had."""
    key = ec.generate_private_key(ec.SECP256R1())
    headers: dict[str, Any] = {"typ": "at+jwt"}
    if kid is not None:
        headers["kid"] = kid
    token = jwt.encode(claims, key, algorithm="ES256", headers=headers)
    if kid is None:  # PyJWT adds no kid unless told; make sure none is there
        assert "kid" not in header_of(token)
    return token


# -- forged and foreign subject tokens -----------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_subject_token_when_alg_none_then_invalid_request(world, trail, alg):
    header = {"alg": alg, "typ": "at+jwt", "kid": sts_jwk(world.client)["kid"]}
    token = f"{segment(header)}.{segment(forged_claims(world))}."
    trail.mark()
    resp = world.send("agent", token, audience="tool")
    event = trail.denied(
        resp, 400, SUBJECT_INVALID, f"subject token: algorithm {alg!r} not allowed"
    )
    assert event.client_id == "agent" and event.subject is None


@pytest.mark.parametrize("secret_form", ["pem", "jwk"])
@pytest.mark.parametrize("alg", ["HS256", "HS512"])
def test_subject_token_when_hmac_keyed_with_published_public_key_then_invalid_request(
    world, trail, secret_form, alg
):
    jwk = sts_jwk(world.client)
    public = jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(jwk))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    if secret_form == "pem":
        secret = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        secret = json.dumps(jwk).encode()
    header = {"alg": alg, "typ": "at+jwt", "kid": jwk["kid"]}
    signing_input = f"{segment(header)}.{segment(forged_claims(world))}"
    digest = hashlib.sha256 if alg == "HS256" else hashlib.sha512
    mac = hmac.new(secret, signing_input.encode(), digest).digest()
    trail.mark()
    resp = world.send("agent", f"{signing_input}.{b64(mac)}", audience="tool")
    trail.denied(resp, 400, SUBJECT_INVALID, f"subject token: algorithm {alg!r} not allowed")


@pytest.mark.parametrize("kid", ["20200101T000000Z-ES256-deadbeef", None])
def test_subject_token_when_kid_unknown_or_missing_then_invalid_request(world, trail, kid):
    token = sign_other_key(forged_claims(world), kid)
    trail.mark()
    resp = world.send("agent", token, audience="tool")
    trail.denied(
        resp, 400, SUBJECT_INVALID, "subject token: kid does not resolve to a published key"
    )


def test_subject_token_when_good_kid_but_other_keys_signature_then_invalid_request(world, trail):
    token = sign_other_key(forged_claims(world), sts_jwk(world.client)["kid"])
    trail.mark()
    resp = world.send("agent", token, audience="tool")
    trail.denied(resp, 400, SUBJECT_INVALID, "subject token: signature verification failed")


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda act: None, id="act-removed"),
        pytest.param(lambda act: {"sub": "agent"}, id="web-dropped"),
        pytest.param(lambda act: {"sub": "agent", "act": {"sub": "other"}}, id="web-renamed"),
        pytest.param(lambda act: {**act, "may_act": {"sub": "data"}}, id="member-added"),
    ],
)
def test_subject_token_when_own_act_claim_edited_then_invalid_request(world, trail, edit):
    real = world.tool_token()
    header, _, signature = real.split(".")
    claims = claims_of(real)
    assert claims["act"] == {"sub": "agent", "act": {"sub": "web"}}
    act = edit(claims.pop("act"))
    if act is not None:
        claims["act"] = act
    trail.mark()
    resp = world.send("tool", f"{header}.{segment(claims)}.{signature}", audience="data")
    trail.denied(resp, 400, SUBJECT_INVALID, "subject token: signature verification failed")


def test_subject_token_when_untrusted_issuer_carries_act_and_may_act_then_invalid_request(
    world, trail
):
    rogue = PersonIdp("https://rogue.example.test")
    token = rogue.token(
        "alice",
        "web",
        world.clock.now(),
        scope=ORDERS,
        act={"sub": "agent"},
        may_act={"sub": "web"},
    )
    trail.mark()
    resp = world.send("web", token, audience="agent")
    trail.denied(resp, 400, SUBJECT_INVALID, "subject token: issuer not trusted")


def test_subject_token_when_trusted_issuer_token_carries_act_then_invalid_request(world, trail):
    token = world.person(act={"sub": "agent"})
    trail.mark()
    resp = world.send("web", token, audience="agent")
    trail.denied(resp, 400, SUBJECT_INVALID, "subject token: external token carries act")


# -- time claims and leeway (frozen clock) -------------------------------------------------


def test_subject_token_when_now_is_exp_plus_leeway_then_invalid_request(world, trail):
    token = world.person()
    world.clock.advance(claims_of(token)["exp"] - world.clock.now() + LEEWAY)
    trail.mark()
    resp = world.send("web", token, audience="agent")
    trail.denied(resp, 400, SUBJECT_INVALID, "subject token: expired")


def test_subject_token_when_one_second_inside_exp_leeway_then_accepted_but_nothing_to_mint(
    world, trail
):
    """The token passes validation (the refusal is policy's, not ``expired``); the new token
    may not outlive the subject token (§5.8), whose ``exp`` has passed: nothing to mint."""
    token = world.person()
    world.clock.advance(claims_of(token)["exp"] - world.clock.now() + LEEWAY - 1)
    trail.mark()
    resp = world.send("web", token, audience="agent")
    event = trail.denied(resp, 400, REQUEST_INVALID, "no lifetime left for the new token")
    assert event.subject == "alice" and event.rule_id is None


def test_subject_token_when_one_second_before_exp_then_token_lives_one_second(world):
    token = world.person(exp=world.clock.now() + 1)
    resp = world.send("web", token, audience="agent")
    assert resp.status_code == 200, resp.json
    assert resp.json["expires_in"] == 1
    assert claims_of(resp.json["access_token"])["exp"] == world.clock.now() + 1


def test_subject_token_when_nbf_is_now_plus_leeway_then_accepted(world):
    token = world.person(nbf=world.clock.now() + LEEWAY)
    resp = world.send("web", token, audience="agent")
    assert resp.status_code == 200, resp.json
    assert claims_of(resp.json["access_token"])["nbf"] == world.clock.now()


def test_subject_token_when_nbf_is_one_second_beyond_leeway_then_invalid_request(world, trail):
    token = world.person(nbf=world.clock.now() + LEEWAY + 1)
    trail.mark()
    resp = world.send("web", token, audience="agent")
    trail.denied(resp, 400, SUBJECT_INVALID, "subject token: not yet valid (nbf)")


# -- audience binding, actor tokens ---------------------------------------------------------


def test_subject_token_when_addressed_to_another_client_then_invalid_request(world, trail):
    for_agent = world.agent_token()
    trail.mark()
    resp = world.send("tool", for_agent, audience="data")
    event = trail.denied(
        resp,
        400,
        {
            "error": "invalid_request",
            "error_description": "The subject token is not addressed to this client.",
        },
        "subject token is not addressed to this client",
    )
    assert event.client_id == "tool" and event.subject == "alice"
    assert event.chain == ["web"]


def test_person_token_when_presented_by_other_than_its_audience_then_invalid_request(world, trail):
    trail.mark()
    resp = world.send("agent", world.person(), audience="tool")
    trail.denied(
        resp,
        400,
        {
            "error": "invalid_request",
            "error_description": "The subject token is not addressed to this client.",
        },
        "subject token is not addressed to this client",
    )


ACTOR_NOT_CLIENT = {
    "error": "invalid_request",
    "error_description": "The actor token does not identify this client.",
}


def test_actor_token_when_of_another_client_then_invalid_request(world, trail):
    agents_own = world.own("agent")
    trail.mark()
    resp = world.send(
        "web",
        world.person(),
        audience="agent",
        actor_token=agents_own,
        actor_token_type=ACCESS_TOKEN,
    )
    trail.denied(resp, 400, ACTOR_NOT_CLIENT, "actor token sub is not the authenticated client")


def test_exchange_when_subject_and_actor_tokens_swapped_then_invalid_request(world, trail):
    delegated, agents_own = world.agent_token(), world.own("agent")
    trail.mark()
    resp = world.send(
        "agent",
        agents_own,
        audience="tool",
        actor_token=delegated,
        actor_token_type=ACCESS_TOKEN,
    )
    event = trail.denied(
        resp, 400, ACTOR_NOT_CLIENT, "actor token sub is not the authenticated client"
    )
    assert event.subject == "agent"


def test_actor_token_when_it_carries_its_own_act_chain_then_invalid_request(world, trail):
    # A chain rooted at agent itself: web acts for agent toward agent.
    world.rule("web", ["agent"], scope=ORDERS, subject="sub:agent")
    agent_by_web = world.hop("web", world.own("agent", audience="web"), audience="agent")
    assert claims_of(agent_by_web)["act"] == {"sub": "web"}
    delegated = world.agent_token()
    trail.mark()
    resp = world.send(
        "agent",
        delegated,
        audience="tool",
        actor_token=agent_by_web,
        actor_token_type=ACCESS_TOKEN,
    )
    trail.denied(
        resp,
        400,
        {"error": "invalid_request", "error_description": "The actor token must not carry act."},
        "actor token carries a delegation chain",
    )


# -- the chain: depth and cycles -----------------------------------------------------------


def test_chain_when_depth_reaches_global_default_then_allowed_and_one_more_refused(
    world, trail, relay
):
    assert world.runtime.settings.max_chain_depth == 5
    five = relay_chain(world, relay, 5)
    assert claims_of(five)["act"]["sub"] == "d5"
    trail.mark()
    resp = world.send("d6", five, audience="root")
    event = trail.denied(resp, 400, REQUEST_INVALID, "chain depth 6 exceeds global 5")
    assert event.chain == ["d6", "d5", "d4", "d3", "d2", "d1"]


@pytest.mark.parametrize("settings", [{"max_chain_depth": 2}], indirect=True)
def test_chain_when_depth_exceeds_configured_global_limit_then_invalid_request(world, trail, relay):
    two = relay_chain(world, relay, 2)
    trail.mark()
    resp = world.send("d3", two, audience="d4")
    trail.denied(resp, 400, REQUEST_INVALID, "chain depth 3 exceeds global 2")


def test_chain_when_depth_exceeds_rule_max_depth_then_invalid_request(world, trail, relay):
    with admin_store(world.runtime.engine) as store:
        for name in ("d2", "d3"):
            rules.disable_rule(store, world.rule_ids[name], now=world.clock.now(), admin="t")
    world.rule("d2", ["d3"], scope=ORDERS, max_depth=2)
    shallow = world.rule("d3", ["d4"], scope=ORDERS, max_depth=2)
    two = relay_chain(world, relay, 2)  # d2's hop mints depth 2: equal to the limit
    assert len(claims_of(two)["act"]) == 2
    trail.mark()
    resp = world.send("d3", two, audience="d4")
    event = trail.denied(resp, 400, REQUEST_INVALID, f"rule {shallow}: chain depth 3 exceeds 2")
    assert event.target == "d4"


def test_chain_when_actor_already_in_it_then_invalid_request(world, trail):
    world.rule("agent", ["web"])
    back_to_web = world.hop("agent", world.agent_token(), audience="web")
    assert claims_of(back_to_web)["act"] == {"sub": "agent", "act": {"sub": "web"}}
    trail.mark()
    resp = world.send("web", back_to_web, audience="agent")
    event = trail.denied(resp, 400, REQUEST_INVALID, "cycle: actor already in the chain")
    assert event.chain == ["agent", "web"]


def test_chain_when_cycle_toward_a_target_without_rule_then_same_invalid_target(world, trail):
    # The cycle is not judged before the rules: a registered target no rule reaches answers
    # exactly like an unknown one, whatever the chain.
    world.rule("agent", ["web"])
    back_to_web = world.hop("agent", world.agent_token(), audience="web")
    trail.mark()
    resp = world.send("web", back_to_web, audience="other")
    trail.denied(resp, 400, TARGET_REFUSED, "no rule lets this actor reach this target")
    unknown = world.send("web", back_to_web, audience="nobody")
    assert unknown.status_code == resp.status_code and unknown.data == resp.data


def test_chain_when_subject_nhi_would_act_for_itself_downstream_then_invalid_request(
    world, trail, relay
):
    # root's own token, relayed by d1 to d2 and handed back to root by d2.
    one = world.hop("d1", world.own("root", audience="d1"), audience="d2")
    back = world.hop("d2", one, audience="d3")
    world.rule("d3", ["root"], scope=ORDERS)
    back = world.hop("d3", back, audience="root")
    world.rule("root", ["d1"], scope=ORDERS)
    trail.mark()
    resp = world.send("root", back, audience="d1")
    trail.denied(resp, 400, REQUEST_INVALID, "cycle: actor already in the chain")


# -- scope, targets, rules -----------------------------------------------------------------


def test_scope_when_wider_than_subject_tokens_then_invalid_scope(world, trail):
    trail.mark()
    resp = world.send("web", world.person(scope="orders:read"), audience="agent", scope=ORDERS)
    event = trail.denied(
        resp, 400, SCOPE_WIDER, "requested scope exceeds the rule's and the subject's scope"
    )
    assert event.target == "agent"


def test_scope_when_wider_than_rules_then_invalid_scope(world, trail):
    tool_token = world.tool_token()
    trail.mark()
    resp = world.send("tool", tool_token, audience="data", scope=ORDERS)
    trail.denied(
        resp, 400, SCOPE_WIDER, "requested scope exceeds the rule's and the subject's scope"
    )


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        pytest.param({"audience": "nobody"}, "unknown audience", id="unknown-audience"),
        pytest.param(
            {"resource": "https://nowhere.example.test/"}, "unknown resource", id="unknown-resource"
        ),
        pytest.param(
            {"audience": "other"}, "no rule lets this actor reach this target", id="forbidden"
        ),
        pytest.param(
            {"audience": "tool"}, "no rule lets this actor reach this target", id="forbidden-2"
        ),
    ],
)
def test_target_when_unknown_or_forbidden_then_same_invalid_target(world, trail, target, reason):
    trail.mark()
    resp = world.send("web", world.person(), **target)
    trail.denied(resp, 400, TARGET_REFUSED, reason)


def test_target_when_rules_exist_but_subject_not_covered_then_invalid_request(world, trail):
    # web's rule toward agent covers people from the IdP, not web's own identity.
    webs_own = world.own("web")
    trail.mark()
    resp = world.send("web", webs_own, audience="agent")
    event = trail.denied(
        resp, 400, REQUEST_INVALID, f"rule {world.rule_ids['web']}: subject not covered"
    )
    assert event.subject == "web" and event.target == "agent"


def test_target_when_rules_exist_but_upstream_differs_then_invalid_request(world, trail):
    # tool may reach data only right after agent; here web hands alice's token to tool.
    world.rule("web", ["tool"])
    for_tool = world.hop("web", world.person(), audience="tool")
    trail.mark()
    resp = world.send("tool", for_tool, audience="data", scope="orders:read")
    trail.denied(
        resp, 400, REQUEST_INVALID, f"rule {world.rule_ids['tool']}: upstream actor not allowed"
    )


# -- request syntax ------------------------------------------------------------------------


def test_subject_token_when_larger_than_max_token_bytes_then_refused_before_authentication(
    world, trail
):
    limit = world.runtime.settings.max_token_bytes
    huge = "e" * (limit + 1)
    trail.mark()
    resp = exchange(world.client, world.nhis["web"], huge, audience="agent")
    event = trail.denied(
        resp,
        400,
        {"error": "invalid_request", "error_description": "Parameter too large."},
        "subject_token too large",
    )
    # Judged from the form alone: no client lookup or secret hashing happened.
    assert event.client_id is None and event.credential_id is None
    # At the limit itself the size check passes and the token is judged (and refused) as a JWT.
    trail.mark()
    resp = exchange(world.client, world.nhis["web"], "e" * limit, audience="agent")
    trail.denied(resp, 400, SUBJECT_INVALID, "subject token: not a JWT")


def _raw_exchange(world: World, pairs: list[tuple[str, str]], who: str = "web") -> Any:
    nhi = world.nhis[who]
    return world.client.post(
        "/token",
        data=urlencode([("grant_type", EXCHANGE), *pairs]),
        headers=basic(nhi.client_id, nhi.secret),
        content_type=FORM,
    )


@pytest.mark.parametrize(
    "name", ["subject_token", "subject_token_type", "scope", "requested_token_type", "grant_type"]
)
def test_parameter_when_duplicated_then_invalid_request(world, trail, name):
    form = {
        "grant_type": EXCHANGE,
        "subject_token": world.person(),
        "subject_token_type": ACCESS_TOKEN,
        "scope": "orders:read",
        "requested_token_type": ACCESS_TOKEN,
    }
    pairs = [(k, v) for k, v in form.items() if k != "grant_type"]
    pairs.append((name, form[name]))
    trail.mark()
    resp = _raw_exchange(world, [*pairs, ("audience", "agent")])
    trail.denied(
        resp,
        400,
        {"error": "invalid_request", "error_description": "Repeated parameter."},
        f"parameter {name!r} repeated",
    )


@pytest.mark.parametrize("present", ["actor_token", "actor_token_type"])
def test_actor_token_when_its_pair_is_missing_then_invalid_request(world, trail, present):
    extra = {"actor_token": world.own("web")} if present == "actor_token" else {}
    if present == "actor_token_type":
        extra["actor_token_type"] = ACCESS_TOKEN
    trail.mark()
    resp = world.send("web", world.person(), audience="agent", **extra)
    trail.denied(resp, 400, NOT_TOGETHER, "actor_token and actor_token_type must come together")


@pytest.mark.parametrize("token_type", [SAML2, REFRESH_TOKEN, "access_token", ""])
def test_subject_token_type_when_unknown_then_invalid_request(world, trail, token_type):
    trail.mark()
    resp = world.send("web", world.person(), subject_type=token_type, audience="agent")
    if token_type:
        trail.denied(resp, 400, UNSUPPORTED_TYPE, "unsupported subject_token_type")
    else:
        trail.denied(
            resp,
            400,
            {
                "error": "invalid_request",
                "error_description": "Missing subject_token or subject_token_type.",
            },
            "missing subject_token or subject_token_type",
        )


@pytest.mark.parametrize("token_type", [ID_TOKEN, REFRESH_TOKEN, SAML2])
def test_requested_token_type_when_unsupported_then_invalid_request(world, trail, token_type):
    trail.mark()
    resp = world.send("web", world.person(), audience="agent", requested_token_type=token_type)
    trail.denied(resp, 400, UNSUPPORTED_TYPE, "unsupported requested_token_type")


# -- may_act -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "may_act",
    [{"sub": "agent"}, {"sub": "web", "iss": "https://elsewhere.example.test"}],
    ids=["other-actor", "other-issuer"],
)
def test_may_act_when_naming_another_actor_then_invalid_request(world, trail, may_act):
    trail.mark()
    resp = world.send("web", world.person(may_act=may_act), audience="agent")
    trail.denied(
        resp,
        400,
        {"error": "invalid_request", "error_description": "The actor is not allowed by may_act."},
        "actor does not match may_act",
    )


@pytest.mark.parametrize(
    "may_act", [{"sub": "web"}, {"sub": "web", "iss": ISSUER}], ids=["sub", "sub-and-iss"]
)
def test_may_act_when_naming_this_actor_then_allowed_and_not_copied_forward(world, may_act):
    resp = world.send("web", world.person(may_act=may_act), audience="agent")
    assert resp.status_code == 200, resp.json
    claims = claims_of(resp.json["access_token"])
    assert claims["act"] == {"sub": "web"}
    assert "may_act" not in claims


# -- revoked state upstream ----------------------------------------------------------------


def test_chain_when_upstream_actor_disabled_then_next_hop_invalid_request(world, trail):
    tool_token = world.tool_token()
    with admin_store(world.runtime.engine) as store:
        nhis.set_nhi_status(
            store, "web", status="disabled", reason="compromised", now=world.clock.now(), admin="t"
        )
    trail.mark()
    resp = world.send("tool", tool_token, audience="data", scope="orders:read")
    # Disabling is containment (DESIGN §7): the chain through web was revoked with it.
    trail.denied(resp, 400, SUBJECT_INVALID, "subject token: token or an ancestor is revoked")


def test_chain_when_upstream_actor_disabled_without_revocation_then_next_hop_invalid_request(
    world, trail
):
    tool_token = world.tool_token()
    with world.runtime.engine.begin() as conn:  # a registry disabled before containment
        conn.execute(update(Nhi).where(Nhi.client_id == "web").values(status="disabled"))
    trail.mark()
    resp = world.send("tool", tool_token, audience="data", scope="orders:read")
    trail.denied(resp, 400, SUBJECT_INVALID, "subject token: an identity in the chain is disabled")


def test_chain_when_rule_that_minted_an_ancestor_disabled_then_next_hop_invalid_request(
    world, trail
):
    tool_token = world.tool_token()
    with admin_store(world.runtime.engine) as store:
        rules.disable_rule(store, world.rule_ids["web"], now=world.clock.now(), admin="t")
    trail.mark()
    resp = world.send("tool", tool_token, audience="data", scope="orders:read")
    # Disabling is containment (DESIGN §7): what the rule minted was revoked with it.
    trail.denied(resp, 400, SUBJECT_INVALID, "subject token: token or an ancestor is revoked")


def test_chain_when_rule_that_minted_an_ancestor_expired_then_next_hop_invalid_request(
    world, trail
):
    tool_token = world.tool_token()
    with world.runtime.engine.begin() as conn:  # no longer in force, and nothing revoked
        conn.execute(
            update(DelegationRule)
            .where(DelegationRule.id == world.rule_ids["web"])
            .values(expires_at=world.clock.now())
        )
    trail.mark()
    resp = world.send("tool", tool_token, audience="data", scope="orders:read")
    trail.denied(
        resp,
        400,
        SUBJECT_INVALID,
        "subject token: a rule that minted the chain is no longer in force",
    )


# -- the client ----------------------------------------------------------------------------


def test_exchange_when_client_not_allowed_the_grant_then_unauthorized_client(
    world, trail, make_nhi
):
    world.nhis["cc-only"] = make_nhi("cc-only", grants=["client_credentials"])
    trail.mark()
    resp = world.send("cc-only", world.person(), audience="agent")
    event = trail.denied(
        resp,
        400,
        {
            "error": "unauthorized_client",
            "error_description": "The client may not use this grant type.",
        },
        f"grant {EXCHANGE} not allowed for client",
    )
    assert event.client_id == "cc-only"


def test_exchange_when_no_client_authentication_then_invalid_client_401(world, trail):
    data = {
        "grant_type": EXCHANGE,
        "subject_token": world.person(),
        "subject_token_type": ACCESS_TOKEN,
        "audience": "agent",
    }
    trail.mark()
    resp = world.client.post("/token", data=data, content_type=FORM)
    event = trail.denied(
        resp,
        401,
        {"error": "invalid_client", "error_description": "Client authentication failed."},
        "no client authentication",
    )
    assert resp.headers["WWW-Authenticate"].startswith("Basic ")
    assert event.client_id is None


# -- positive edges ------------------------------------------------------------------------


def test_resource_when_naming_a_registered_resource_uri_then_aud_is_its_nhi(world):
    resp = world.send("web", world.person(), resource=DATA_URI)
    assert resp.status_code == 200, resp.json
    assert claims_of(resp.json["access_token"])["aud"] == "data"


def test_requested_token_type_when_jwt_then_issued_token_type_jwt(world):
    resp = world.send("web", world.person(), audience="agent", requested_token_type=JWT_TYPE)
    assert resp.status_code == 200, resp.json
    assert resp.json["issued_token_type"] == JWT_TYPE
    assert header_of(resp.json["access_token"])["typ"] == "at+jwt"


def test_target_when_omitted_then_aud_is_the_actor_itself(world):
    resp = world.send("web", world.person())
    assert resp.status_code == 200, resp.json
    claims = claims_of(resp.json["access_token"])
    assert claims["aud"] == "web"
    assert claims["act"] == {"sub": "web"}


def test_self_exchange_when_nhis_own_client_credentials_token_then_no_act(world):
    world.rule("web", ["agent"], scope=ORDERS, subject="sub:web")
    resp = world.send("web", world.own("web"), audience="agent")
    assert resp.status_code == 200, resp.json
    claims = claims_of(resp.json["access_token"])
    assert claims["sub"] == "web" and claims["client_id"] == "web"
    assert claims["aud"] == "agent"
    assert "act" not in claims


def test_self_exchange_when_actor_exchanges_its_own_self_addressed_token_then_no_new_level(
    world,
):
    held = world.hop("web", world.person())
    assert claims_of(held)["aud"] == "web"
    resp = world.send("web", held, audience="agent")
    assert resp.status_code == 200, resp.json
    claims = claims_of(resp.json["access_token"])
    assert claims["act"] == {"sub": "web"}
    assert claims["txn"] == claims_of(held)["txn"]


# -- one NHI, two issuers ------------------------------------------------------------------

WORKLOAD = "https://workload.example.test"


@pytest.fixture
def workload(world) -> PersonIdp:
    """A trusted workload-identity issuer vouching for NHIs by their ``sub`` (actor tokens)."""
    issuer = PersonIdp(WORKLOAD)
    with admin_store(world.runtime.engine) as store:
        issuers.add_issuer(
            store,
            issuer=WORKLOAD,
            jwks=issuer.keys.jwks,
            algorithms=["ES256"],
            now=world.clock.now(),
            admin="t",
        )
    return issuer


def test_chain_when_person_sub_equals_an_nhi_sub_then_act_still_added(world):
    """A person whose IdP ``sub`` happens to be ``web`` is not the NHI web: web acting for
    that person is a delegation and must show in ``act``."""
    person_named_web = world.idp.token("web", "web", world.clock.now(), scope=ORDERS)
    resp = world.send("web", person_named_web, audience="agent")
    assert resp.status_code == 200, resp.json
    claims = claims_of(resp.json["access_token"])
    assert claims["sub"] == "web"
    assert claims["act"] == {"sub": "web"}


def test_actor_token_when_from_trusted_issuer_then_act_level_names_that_issuer(world, workload):
    vouched = workload.token("web", ISSUER, world.clock.now())
    resp = world.send(
        "web", world.person(), audience="agent", actor_token=vouched, actor_token_type=JWT_TYPE
    )
    assert resp.status_code == 200, resp.json
    assert claims_of(resp.json["access_token"])["act"] == {"sub": "web", "iss": WORKLOAD}


def test_chain_when_actor_rejoins_with_trusted_issuers_actor_token_then_invalid_request(
    world, trail, workload
):
    world.rule("agent", ["web"])
    back_to_web = world.hop("agent", world.agent_token(), audience="web")
    vouched = workload.token("web", ISSUER, world.clock.now())
    trail.mark()
    resp = world.send(
        "web", back_to_web, audience="agent", actor_token=vouched, actor_token_type=JWT_TYPE
    )
    trail.denied(resp, 400, REQUEST_INVALID, "cycle: actor already in the chain")


def test_chain_when_outermost_actor_presents_trusted_issuers_actor_token_then_no_new_level(
    world, workload
):
    held = world.hop("web", world.person())
    vouched = workload.token("web", ISSUER, world.clock.now())
    resp = world.send("web", held, audience="agent", actor_token=vouched, actor_token_type=JWT_TYPE)
    assert resp.status_code == 200, resp.json
    assert claims_of(resp.json["access_token"])["act"] == {"sub": "web"}


def test_chain_when_nhi_subject_acts_downstream_with_trusted_issuers_actor_token_then_refused(
    world, trail, relay, workload
):
    one = world.hop("d1", world.own("root", audience="d1"), audience="d2")
    world.rule("d2", ["root"], scope=ORDERS)
    back = world.hop("d2", one, audience="root")
    world.rule("root", ["d1"], scope=ORDERS)
    vouched = workload.token("root", ISSUER, world.clock.now())
    trail.mark()
    resp = world.send("root", back, audience="d1", actor_token=vouched, actor_token_type=JWT_TYPE)
    trail.denied(resp, 400, REQUEST_INVALID, "cycle: actor already in the chain")


def test_self_exchange_when_vouched_by_trusted_issuers_actor_token_then_no_act(world, workload):
    world.rule("web", ["agent"], scope=ORDERS, subject="sub:web")
    webs_own = world.own("web")
    vouched = workload.token("web", ISSUER, world.clock.now())
    resp = world.send(
        "web", webs_own, audience="agent", actor_token=vouched, actor_token_type=JWT_TYPE
    )
    assert resp.status_code == 200, resp.json
    assert "act" not in claims_of(resp.json["access_token"])


# -- more actor-token and target refusals --------------------------------------------------


def test_actor_token_when_alg_none_then_actor_token_invalid(world, trail):
    real = world.own("web")
    header = {"alg": "none", "typ": "at+jwt", "kid": header_of(real)["kid"]}
    unsigned = f"{segment(header)}.{real.split('.')[1]}."
    trail.mark()
    resp = world.send(
        "web", world.person(), audience="agent", actor_token=unsigned, actor_token_type=JWT_TYPE
    )
    trail.denied(
        resp,
        400,
        {"error": "invalid_request", "error_description": "The actor token is invalid."},
        "actor token: algorithm 'none' not allowed",
    )


def test_actor_token_when_addressed_to_another_client_then_invalid_request(world, trail):
    webs_for_agent = world.own("web", audience="agent")
    trail.mark()
    resp = world.send(
        "web",
        world.person(),
        audience="agent",
        actor_token=webs_for_agent,
        actor_token_type=ACCESS_TOKEN,
    )
    trail.denied(
        resp,
        400,
        {
            "error": "invalid_request",
            "error_description": "The actor token is not addressed to this client.",
        },
        "actor token is not addressed to this client",
    )


def test_target_when_two_different_targets_named_then_invalid_target(world, trail):
    token = world.person()
    trail.mark()
    resp = _raw_exchange(
        world,
        [
            ("subject_token", token),
            ("subject_token_type", ACCESS_TOKEN),
            ("audience", "agent"),
            ("resource", DATA_URI),
        ],
    )
    trail.denied(resp, 400, TARGET_REFUSED, "audience/resource name more than one target")


def test_target_when_same_target_named_twice_then_allowed(world):
    resp = _raw_exchange(
        world,
        [
            ("subject_token", world.person()),
            ("subject_token_type", ACCESS_TOKEN),
            ("audience", "data"),
            ("resource", DATA_URI),
        ],
    )
    assert resp.status_code == 200, resp.json
    assert claims_of(resp.json["access_token"])["aud"] == "data"


def test_target_when_disabled_then_same_invalid_target(world, trail):
    with admin_store(world.runtime.engine) as store:
        nhis.set_nhi_status(
            store, "agent", status="disabled", reason="retired", now=world.clock.now(), admin="t"
        )
    trail.mark()
    resp = world.send("web", world.person(), audience="agent")
    trail.denied(resp, 400, TARGET_REFUSED, "target disabled")


# -- defence in depth: what the signature alone would not catch ----------------------------


def sts_signed(world: World, claims: dict[str, Any], typ: str | None = "at+jwt") -> str:
    """Signed with the STS's own current key, as if that key had leaked."""
    key = world.runtime.keys.ring.signing_key(world.clock.now())
    token = jwt.encode(
        claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": typ}
    )
    assert header_of(token).get("typ") == typ
    return token


def test_subject_token_when_validly_signed_but_act_differs_from_lineage_then_invalid_request(
    world, trail
):
    claims = claims_of(world.tool_token())
    claims["act"] = {"sub": "agent"}  # hide web from the chain
    trail.mark()
    resp = world.send("tool", sts_signed(world, claims), audience="data", scope="orders:read")
    trail.denied(resp, 400, SUBJECT_INVALID, "subject token: token does not match its lineage")


def test_subject_token_when_validly_signed_but_never_issued_then_invalid_request(world, trail):
    trail.mark()
    resp = world.send("agent", sts_signed(world, forged_claims(world)), audience="tool")
    trail.denied(resp, 400, SUBJECT_INVALID, "subject token: no lineage for this token")


@pytest.mark.parametrize("typ", [None, "JWT", "id_token+jwt"])
def test_subject_token_when_own_but_not_typed_at_jwt_then_invalid_request(world, trail, typ):
    claims = claims_of(world.agent_token())
    trail.mark()
    resp = world.send("agent", sts_signed(world, claims, typ), audience="tool")
    trail.denied(resp, 400, SUBJECT_INVALID, "subject token: typ is not at+jwt")


def test_subject_token_when_exp_missing_then_invalid_request(world, trail):
    trail.mark()
    resp = world.send("web", world.person(exp=None), audience="agent")
    trail.denied(resp, 400, SUBJECT_INVALID, "subject token: no exp")


def test_subject_token_when_iat_beyond_leeway_then_invalid_request(world, trail):
    trail.mark()
    resp = world.send("web", world.person(iat=world.clock.now() + LEEWAY + 1), audience="agent")
    trail.denied(resp, 400, SUBJECT_INVALID, "subject token: issued in the future (iat)")


def test_subject_token_when_iat_at_leeway_then_accepted(world):
    resp = world.send("web", world.person(iat=world.clock.now() + LEEWAY), audience="agent")
    assert resp.status_code == 200, resp.json
