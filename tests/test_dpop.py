"""DPoP at the token endpoint (RFC 9449, DESIGN §12): bound tokens for every grant, each proof
check with its whole error body, replay across replicas, nonces, rules that require a bound
request, introspection's ``cnf``, and housekeeping of remembered proofs. Both backends."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import jwt
import pytest
from sqlalchemy import func, select

from sts.core.clock import FrozenClock
from sts.core.domain import ASYMMETRIC_JWS_ALGORITHMS
from sts.runtime import build_runtime
from sts.services import gc, rules
from sts.store.admin import admin_store
from sts.store.models import AuditEvent, DpopProofJti
from sts.web import create_app
from tests.conftest import ISSUER
from tests.dpop_fixtures import (
    INVALID_PROOF,
    PROOF_REQUIRED,
    TOKEN_URL,
    USE_NONCE,
    Prover,
)
from tests.exchange_fixtures import ACCESS_TOKEN, EXCHANGE
from tests.helpers import FORM, basic, claims_of

CC = {"grant_type": "client_credentials"}
NOT_ADDRESSED = {"error": "invalid_request",
                 "error_description": "The subject token is not addressed to this client."}


def token(client: Any, who: Any, data: dict[str, str], proof: str | list[str] | None) -> Any:
    headers: list[tuple[str, str]] = list(basic(who.client_id, who.secret).items())
    for value in [proof] if isinstance(proof, str) else proof or []:
        headers.append(("DPoP", value))
    return client.post("/token", data=data, headers=headers, content_type=FORM)


def exchange_form(subject_token: str, audience: str | None = None) -> dict[str, str]:
    form = {"grant_type": EXCHANGE, "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN}
    if audience:
        form["audience"] = audience
    return form


def assert_refused(resp: Any, body: dict[str, str]) -> None:
    assert resp.status_code == 400
    assert resp.json == body
    assert resp.headers["Cache-Control"] == "no-store"


def last_denial_reason(runtime: Any) -> str:
    with runtime.engine.connect() as conn:
        row = conn.execute(
            select(AuditEvent.reason).where(AuditEvent.event == "token.denied")
            .order_by(AuditEvent.id.desc())
        ).first()
    assert row is not None
    return str(row[0])


@pytest.fixture
def web(make_nhi: Any) -> Any:
    return make_nhi("web", scope="orders:read")


# -- bound tokens ---------------------------------------------------------------------------
def test_client_credentials_when_valid_proof_then_dpop_token_bound_to_its_key(
    client, web, clock
):
    key = Prover()
    resp = token(client, web, CC, key.proof(clock.now()))
    assert resp.status_code == 200, resp.json
    assert resp.json["token_type"] == "DPoP"
    assert claims_of(resp.json["access_token"])["cnf"] == {"jkt": key.jkt}
    assert "DPoP-Nonce" not in resp.headers


def test_client_credentials_when_no_proof_then_bearer_without_cnf(client, web):
    resp = token(client, web, CC, None)
    assert resp.json["token_type"] == "Bearer"
    assert "cnf" not in claims_of(resp.json["access_token"])


def test_metadata_when_read_then_dpop_algorithms_advertised(client):
    metadata = client.get("/.well-known/oauth-authorization-server").json
    assert metadata["dpop_signing_alg_values_supported"] == list(ASYMMETRIC_JWS_ALGORITHMS)


def test_proof_when_htu_differs_only_by_query_case_and_default_port_then_accepted(
    client, web, clock
):
    htu = "HTTPS://STS.Example.Test:443/token?x=1#frag"
    resp = token(client, web, CC, Prover().proof(clock.now(), htu))
    assert resp.status_code == 200, resp.json


# -- each check of RFC 9449 §4.3 --------------------------------------------------------------
def _hs256_proof(now: int) -> str:
    secret = b"k" * 32
    jwk = {"kty": "oct", "k": base64.urlsafe_b64encode(secret).rstrip(b"=").decode()}
    claims = {"jti": "j1", "htm": "POST", "htu": TOKEN_URL, "iat": now}
    return jwt.encode(claims, secret, algorithm="HS256", headers={"typ": "dpop+jwt", "jwk": jwk})


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("wrong htu", "dpop: htu does not match"),
        ("other path", "dpop: htu does not match"),
        ("wrong htm", "dpop: htm does not match"),
        ("old iat", "dpop: iat outside the window"),
        ("future iat", "dpop: iat outside the window"),
        ("private key in jwk", "dpop: jwk holds private key members"),
        ("symmetric alg", "dpop: alg not an allowed asymmetric algorithm"),
        ("alg none", "dpop: alg not an allowed asymmetric algorithm"),
        ("wrong typ", "dpop: typ is not dpop+jwt"),
        ("no jwk", "dpop: jwk header missing"),
        ("signed by another key", "dpop: signature or claims invalid"),
        ("no jti", "dpop: signature or claims invalid"),
        ("not a jwt", "dpop: not a JWS"),
    ],
)
def test_proof_when_a_check_fails_then_invalid_dpop_proof_and_nothing_issued(
    client, runtime, web, clock, case, reason
):
    key, now = Prover(), clock.now()
    proofs = {
        "wrong htu": lambda: key.proof(now, "https://evil.example.test/token"),
        "other path": lambda: key.proof(now, ISSUER + "/introspect"),
        "wrong htm": lambda: key.proof(now, htm="GET"),
        "old iat": lambda: key.proof(now - 60 - 30 - 1),
        "future iat": lambda: key.proof(now + 31),
        "private key in jwk": lambda: key.proof(now, headers={"jwk": key.private_jwk()}),
        "symmetric alg": lambda: _hs256_proof(now),
        "alg none": lambda: jwt.encode(
            {"jti": "j", "htm": "POST", "htu": TOKEN_URL, "iat": now}, None, algorithm="none",
            headers={"typ": "dpop+jwt", "jwk": key.jwk}),
        "wrong typ": lambda: key.proof(now, headers={"typ": "jwt"}),
        "no jwk": lambda: key.proof(now, headers={"jwk": None}),
        "signed by another key": lambda: key.proof(now, headers={"jwk": Prover().jwk}),
        "no jti": lambda: key.proof(now, jti=None),
        "not a jwt": lambda: "not-a-jwt",
    }
    resp = token(client, web, CC, proofs[case]())
    assert_refused(resp, INVALID_PROOF)
    assert last_denial_reason(runtime) == reason


def test_proof_when_iat_at_the_edge_of_the_window_then_accepted(client, web, clock):
    resp = token(client, web, CC, Prover().proof(clock.now() - 60 - 30))
    assert resp.status_code == 200, resp.json


def test_proof_when_jti_replayed_then_second_request_refused(client, runtime, web, clock):
    proof = Prover().proof(clock.now())
    assert token(client, web, CC, proof).status_code == 200
    assert_refused(token(client, web, CC, proof), INVALID_PROOF)
    assert last_denial_reason(runtime) == "dpop: jti replayed"


def test_proof_when_replayed_at_another_replica_then_refused(
    client, settings, clock, engine, web
):
    """Replicas share the database: a proof one accepted, another refuses."""
    other = create_app(settings, rt=build_runtime(settings, clock, engine=engine)).test_client()
    proof = Prover().proof(clock.now())
    assert token(client, web, CC, proof).status_code == 200
    assert_refused(token(other, web, CC, proof), INVALID_PROOF)


def test_proof_when_two_dpop_headers_then_refused(client, runtime, web, clock):
    key = Prover()
    resp = token(client, web, CC, [key.proof(clock.now()), key.proof(clock.now())])
    assert_refused(resp, INVALID_PROOF)
    assert last_denial_reason(runtime) == "several DPoP headers"


def test_gc_when_proof_window_passed_then_remembered_jtis_removed(
    client, runtime, web, clock
):
    assert token(client, web, CC, Prover().proof(clock.now())).status_code == 200
    result = gc.collect(lambda: admin_store(runtime.engine), now=clock.now() + 60 + 30 + 2,
                        retention_seconds=86400)
    assert result["dpop_proof_jtis"] == 1
    with runtime.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(DpopProofJti)).scalar_one() == 0


# -- nonces (RFC 9449 §8) ---------------------------------------------------------------------
@pytest.fixture
def nonce_client(settings, clock, engine) -> Any:
    strict = replace(settings, dpop_require_nonce=True)
    return create_app(strict, rt=build_runtime(strict, clock, engine=engine)).test_client()


def test_nonce_when_required_and_missing_then_use_dpop_nonce_and_retry_succeeds(
    nonce_client, web, clock
):
    key = Prover()
    first = token(nonce_client, web, CC, key.proof(clock.now()))
    assert_refused(first, USE_NONCE)
    nonce = first.headers["DPoP-Nonce"]
    second = token(nonce_client, web, CC, key.proof(clock.now(), nonce=nonce))
    assert second.status_code == 200, second.json
    assert second.json["token_type"] == "DPoP"
    assert second.headers["DPoP-Nonce"]


def test_nonce_when_stale_or_forged_then_use_dpop_nonce(nonce_client, web, clock):
    key, now = Prover(), clock.now()
    nonce = token(nonce_client, web, CC, key.proof(now)).headers["DPoP-Nonce"]
    clock.advance(301)
    stale = token(nonce_client, web, CC, key.proof(clock.now(), nonce=nonce))
    assert_refused(stale, USE_NONCE)
    stamp = str(clock.now())
    forged = token(nonce_client, web, CC, key.proof(clock.now(), nonce=stamp + ".AAAA"))
    assert_refused(forged, USE_NONCE)


def test_nonce_when_issued_by_another_replica_then_accepted(
    nonce_client, settings, clock, engine, web
):
    """Even from a replica whose clock runs a little ahead (within the leeway)."""
    strict = replace(settings, dpop_require_nonce=True)
    ahead = FrozenClock(clock.now() + 20)
    other = create_app(strict, rt=build_runtime(strict, ahead, engine=engine)).test_client()
    key = Prover()
    nonce = token(other, web, CC, key.proof(clock.now())).headers["DPoP-Nonce"]
    resp = token(nonce_client, web, CC, key.proof(clock.now(), nonce=nonce))
    assert resp.status_code == 200, resp.json


# -- the exchange: per-hop binding -------------------------------------------------------------
@pytest.fixture
def hop(make_nhi, runtime, clock) -> Any:
    """web → agent, web's own token addressed to agent."""
    agent = make_nhi("agent", kind="agent")
    make_nhi("tool", kind="workload")

    def allow(actor: str, target: str, require_dpop: bool = False) -> None:
        with admin_store(runtime.engine) as store:
            rules.create_rule(store, actor=actor, targets=[target], scope="orders:read",
                              now=clock.now(), admin="t", require_dpop=require_dpop)

    return agent, allow


def test_exchange_when_proof_then_new_token_bound_to_the_requesters_key(
    client, web, clock, hop
):
    agent, allow = hop
    allow("agent", "tool")
    web_key, agent_key = Prover(), Prover()
    first = token(client, web, {**CC, "audience": "agent"}, web_key.proof(clock.now()))
    subject = first.json["access_token"]
    resp = token(client, agent, exchange_form(subject, "tool"), agent_key.proof(clock.now()))
    assert resp.status_code == 200, resp.json
    assert resp.json["token_type"] == "DPoP"
    assert claims_of(resp.json["access_token"])["cnf"] == {"jkt": agent_key.jkt}


def test_exchange_when_rule_requires_dpop_and_no_proof_then_refused(
    client, runtime, web, clock, hop
):
    agent, allow = hop
    allow("agent", "tool", require_dpop=True)
    subject = token(client, web, {**CC, "audience": "agent"}, None).json["access_token"]
    assert_refused(token(client, agent, exchange_form(subject, "tool"), None), PROOF_REQUIRED)
    assert last_denial_reason(runtime) == "rule requires a DPoP-bound request"
    bound = token(client, agent, exchange_form(subject, "tool"), Prover().proof(clock.now()))
    assert bound.status_code == 200, bound.json
    assert bound.json["token_type"] == "DPoP"


def test_exchange_when_self_addressed_bound_token_without_its_key_then_refused(
    client, runtime, web, clock, hop
):
    """A bound token addressed to the STS is received by the STS: its key must be proven."""
    _, allow = hop
    allow("web", "agent")
    key = Prover()
    own = token(client, web, CC, key.proof(clock.now())).json["access_token"]
    assert_refused(token(client, web, exchange_form(own, "agent"), None), INVALID_PROOF)
    assert last_denial_reason(runtime) == "subject token bound to another key"
    other = token(client, web, exchange_form(own, "agent"), Prover().proof(clock.now()))
    assert_refused(other, INVALID_PROOF)
    same = token(client, web, exchange_form(own, "agent"), key.proof(clock.now()))
    assert same.status_code == 200, same.json


def test_exchange_when_stolen_bound_token_presented_by_another_client_then_refused(
    client, make_nhi, web, clock, hop
):
    """The audience binding still decides who may exchange: a thief's own proof is no key."""
    _, allow = hop
    allow("agent", "tool")
    thief = make_nhi("thief", kind="agent")
    stolen = token(client, web, {**CC, "audience": "agent"}, Prover().proof(clock.now()))
    resp = token(client, thief, exchange_form(stolen.json["access_token"], "tool"),
                 Prover().proof(clock.now()))
    assert_refused(resp, NOT_ADDRESSED)


# -- introspection (RFC 9449 §6.2) ------------------------------------------------------------
def test_introspection_when_bound_token_then_cnf_and_dpop_type(client, web, clock):
    key = Prover()
    bound = token(client, web, CC, key.proof(clock.now())).json["access_token"]
    resp = client.post("/introspect", data={"token": bound},
                       headers=basic(web.client_id, web.secret), content_type=FORM)
    assert resp.json["active"] is True
    assert (resp.json["token_type"], resp.json["cnf"]) == ("DPoP", {"jkt": key.jkt})


def test_audit_when_bound_token_issued_then_event_names_the_key_thumbprint(
    client, runtime, web, clock
):
    key = Prover()
    assert token(client, web, CC, key.proof(clock.now())).status_code == 200
    with runtime.engine.connect() as conn:
        detail = conn.execute(
            select(AuditEvent.detail).where(AuditEvent.event == "token.issued")
        ).scalar_one()
    assert json.loads(json.dumps(detail))["cnf_jkt"] == key.jkt
