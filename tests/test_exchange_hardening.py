"""Holes an adversarial review found in the exchange, closed (DESIGN §5.2, §5.3, §5.7, §8).

Each refusal is asserted whole (status, body, the one denial event with its precise reason,
no lineage row), on SQLite and PostgreSQL; each test fails on the code before its fix.
"""

# ruff: noqa: F811 - the abuse suite's fixtures, imported by name, are the tests' arguments
from __future__ import annotations

import secrets

import jwt
from sqlalchemy import select

from sts.store.models import AuditEvent
from tests.exchange_fixtures import JWT_TYPE
from tests.helpers import FORM, KeyPair, basic, claims_of
from tests.test_client_auth import TOKEN_ENDPOINT, assert_invalid_client, jwt_form
from tests.test_exchange_abuse import (  # noqa: F401 - the shared fixtures
    ID_TOKEN,
    SCOPE_WIDER,
    SUBJECT_INVALID,
    TARGET_REFUSED,
    Trail,
    World,
    trail,
    world,
)

NOT_ADDRESSED = {
    "error": "invalid_request",
    "error_description": "The subject token is not addressed to this client.",
}


def idp_token(world: World, typ: str, aud: str = "web") -> str:
    now = world.clock.now()
    claims = {"iss": world.idp.issuer, "sub": "alice", "aud": aud, "iat": now,
              "exp": now + 600, "jti": secrets.token_hex(8), "scope": "orders:read"}  # fmt: skip
    return jwt.encode(claims, world.idp.keys.private, algorithm="ES256",
                      headers={"kid": world.idp.keys.kid, "typ": typ})  # fmt: skip


# -- RFC 8693 §2.1: the token is what its declared type says -------------------------------
def test_subject_type_when_our_access_token_is_declared_id_token_then_invalid_request(
    world: World, trail: Trail
) -> None:
    token = world.agent_token()  # ours, addressed to agent
    trail.mark()
    resp = world.send("agent", token, audience="tool", subject_type=ID_TOKEN)
    trail.denied(resp, 400, SUBJECT_INVALID, "subject token: an access token declared as id_token")


def test_subject_type_when_an_idp_access_token_is_declared_id_token_then_invalid_request(
    world: World, trail: Trail
) -> None:
    trail.mark()
    resp = world.send("web", idp_token(world, "at+jwt"), audience="agent", subject_type=ID_TOKEN)
    trail.denied(resp, 400, SUBJECT_INVALID, "subject token: an access token declared as id_token")


def test_subject_type_when_an_idp_id_token_is_declared_id_token_then_exchanged(
    world: World,
) -> None:
    resp = world.send("web", idp_token(world, "JWT"), audience="agent", subject_type=ID_TOKEN)
    assert resp.status_code == 200, resp.json
    resp = world.send("web", idp_token(world, "at+jwt"), audience="agent", subject_type=JWT_TYPE)
    assert resp.status_code == 200, resp.json


# -- DESIGN §5.3: a token addressed to the STS is bound to the client it was issued to -----
def test_audience_when_another_client_exchanges_our_self_addressed_token_then_refused(
    world: World, trail: Trail
) -> None:
    webs_own = world.own("web")  # aud: this STS, client_id: web
    world.rule("agent", ["tool"], subject="sub:web")
    trail.mark()
    resp = world.send("agent", webs_own, audience="tool")
    trail.denied(resp, 400, NOT_ADDRESSED, "subject token is not addressed to this client")
    # The client it was issued to still exchanges it.
    world.rule("web", ["agent"], subject="sub:web")
    assert world.send("web", webs_own, audience="agent").status_code == 200


# -- DESIGN §5.7: a token with no scope is never minted ------------------------------------
def test_scope_when_rule_and_subject_scopes_do_not_meet_then_invalid_scope(
    world: World, trail: Trail
) -> None:
    world.rule("web", ["agent"], scope="billing:read", subject="sub:web")
    webs_own = world.own("web")  # scope orders:read orders:write
    trail.mark()
    resp = world.send("web", webs_own, audience="agent")
    trail.denied(
        resp, 400, SCOPE_WIDER, "no scope left: the rule's and the subject's scopes do not meet"
    )


# -- DESIGN §8: a refused attempt records the target it aimed at and its transaction -------
def test_audit_when_target_refused_then_the_denial_names_the_requested_target_and_txn(
    world: World, trail: Trail
) -> None:
    token = world.agent_token()
    trail.mark()
    resp = world.send("agent", token, audience="nowhere")
    event = trail.denied(resp, 400, TARGET_REFUSED, "unknown audience")
    assert event.target == "nowhere"
    assert event.txn == claims_of(token)["txn"]
    assert event.client_id == "agent" and event.subject == "alice"


def test_audit_when_client_credentials_target_refused_then_the_denial_names_it(
    world: World, trail: Trail
) -> None:
    trail.mark()
    resp = world.client.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": "https://nowhere.example/x"},
        content_type=FORM,
        headers=basic("web", world.nhis["web"].secret),
    )
    event = trail.denied(resp, 400, TARGET_REFUSED, "unknown resource")
    assert event.target == "https://nowhere.example/x"


# -- RFC 7523 §3: client assertions are short-lived, with sane numbers -----------------------
def assertion_refused(client, runtime, assertion: str, reason: str) -> None:
    assert_invalid_client(client.post("/token", data=jwt_form(assertion), content_type=FORM))
    with runtime.engine.connect() as conn:
        last = conn.execute(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
    assert (last.event, last.reason) == ("token.denied", reason)


def test_assertion_when_exp_is_years_away_then_invalid_client(client, make_nhi, runtime, clock):
    keys = KeyPair("k1")
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    far = keys.assertion("agent", TOKEN_ENDPOINT, clock.now(), exp=clock.now() + 10 * 365 * 86400)
    assertion_refused(client, runtime, far, "client assertion: lifetime longer than 300 s")


def test_assertion_when_exp_is_out_of_range_then_invalid_client_not_500(
    client, make_nhi, runtime, clock
):
    keys = KeyPair("k1")
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    huge = keys.assertion("agent", TOKEN_ENDPOINT, clock.now(), exp=1e19)
    assertion_refused(client, runtime, huge, "client assertion: exp is not a valid NumericDate")


def test_assertion_when_iat_is_missing_then_invalid_client(client, make_nhi, runtime, clock):
    keys = KeyPair("k1")
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    bare = keys.assertion("agent", TOKEN_ENDPOINT, clock.now(), iat=None)
    assertion_refused(client, runtime, bare, "client assertion: Missing iat.")


def test_assertion_when_lifetime_is_within_the_cap_then_token_issued(client, make_nhi, clock):
    keys = KeyPair("k1")
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    ok = keys.assertion("agent", TOKEN_ENDPOINT, clock.now(), exp=clock.now() + 300)
    resp = client.post("/token", data=jwt_form(ok), content_type=FORM)
    assert resp.status_code == 200, resp.json
