"""Client authentication at the token endpoint (RFC 6749 §2.3, RFC 7523, DESIGN §5.1, §6).

Every failure to authenticate answers the same ``invalid_client`` bytes (401, with a Basic
``WWW-Authenticate`` challenge); the precise reason is kept for the audit trail only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm
from sqlalchemy import select

from sts.services import credentials, nhis
from sts.store.admin import admin_store
from sts.store.models import AuditEvent, IssuedToken
from tests.conftest import ISSUER
from tests.helpers import FORM, KeyPair, basic, claims_of

TOKEN_ENDPOINT = ISSUER + "/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CC = {"grant_type": "client_credentials"}
INVALID_CLIENT = {"error": "invalid_client", "error_description": "Client authentication failed."}
CHALLENGE = 'Basic error="invalid_client", error_description="Client authentication failed."'
ONE_METHOD = {
    "error": "invalid_request",
    "error_description": "Use exactly one client authentication method.",
}


def post(client: Any, data: dict[str, str], headers: dict[str, str] | None = None) -> Any:
    return client.post("/token", data=data, headers=headers or {}, content_type=FORM)


def assert_invalid_client(resp: Any) -> None:
    assert resp.status_code == 401
    assert resp.json == INVALID_CLIENT
    assert resp.headers["WWW-Authenticate"] == CHALLENGE
    assert resp.headers["Cache-Control"] == "no-store"


def denial_reasons(runtime: Any) -> list[str]:
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(AuditEvent.reason)
            .where(AuditEvent.event == "token.denied")
            .order_by(AuditEvent.id)
        ).all()
    return [r.reason for r in rows]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: dict[str, Any], claims: dict[str, Any], hmac_key: bytes | None) -> str:
    """A hand-built JWS (for forgeries no JOSE library would produce)."""
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = b""
    if hmac_key is not None:
        signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def assertion_claims(client_id: str, now: int) -> dict[str, Any]:
    return {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_ENDPOINT,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_hex(12),
    }


def jwt_form(assertion: str, **extra: str) -> dict[str, str]:
    return {
        **CC,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        **extra,
    }


# -- successful authentication ----------------------------------------------------------------


def test_client_secret_basic_when_secret_right_then_token_issued(client, make_nhi):
    web = make_nhi("web")
    resp = post(client, CC, basic(web.client_id, web.secret))
    assert resp.status_code == 200, resp.json
    assert claims_of(resp.json["access_token"])["client_id"] == "web"


def test_client_secret_basic_when_credentials_form_encoded_then_token_issued(client, make_nhi):
    # RFC 6749 §2.3.1: client_id and secret are form-urlencoded before Base64.
    web = make_nhi("svc.a-b_c")
    resp = post(client, CC, basic("svc.a-b_c", web.secret.replace("-", "%2D")))
    assert resp.status_code == 200, resp.json


def test_client_secret_post_when_secret_right_then_token_issued(client, make_nhi):
    web = make_nhi("web")
    resp = post(client, {**CC, "client_id": web.client_id, "client_secret": web.secret})
    assert resp.status_code == 200, resp.json
    assert claims_of(resp.json["access_token"])["sub"] == "web"


def test_client_secret_basic_when_body_client_id_matches_then_token_issued(client, make_nhi):
    web = make_nhi("web")
    resp = post(client, {**CC, "client_id": "web"}, basic("web", web.secret))
    assert resp.status_code == 200, resp.json


def test_client_secret_basic_when_body_client_id_differs_then_invalid_request(client, make_nhi):
    web = make_nhi("web")
    make_nhi("other")
    resp = post(client, {**CC, "client_id": "other"}, basic("web", web.secret))
    assert resp.status_code == 400
    assert resp.json == {"error": "invalid_request", "error_description": "The request is invalid."}


def test_private_key_jwt_when_assertion_valid_then_token_issued(client, make_nhi, clock):
    keys = KeyPair()
    agent = make_nhi("agent", kind="agent", jwks=keys.jwks)
    assert agent.secret is None
    resp = post(client, jwt_form(keys.assertion("agent", TOKEN_ENDPOINT, clock.now())))
    assert resp.status_code == 200, resp.json
    claims = claims_of(resp.json["access_token"])
    assert (claims["sub"], claims["client_id"]) == ("agent", "agent")


def test_private_key_jwt_when_audience_is_issuer_then_token_issued(client, make_nhi, clock):
    # RFC 7523 §3 item 3: the token endpoint URL or the issuer identifier.
    keys = KeyPair()
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    resp = post(client, jwt_form(keys.assertion("agent", ISSUER, clock.now())))
    assert resp.status_code == 200, resp.json


def test_private_key_jwt_when_body_client_id_matches_then_token_issued(client, make_nhi, clock):
    keys = KeyPair()
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    form = jwt_form(keys.assertion("agent", TOKEN_ENDPOINT, clock.now()), client_id="agent")
    assert post(client, form).status_code == 200


def test_private_key_jwt_when_body_client_id_differs_then_invalid_request(client, make_nhi, clock):
    keys = KeyPair()
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    form = jwt_form(keys.assertion("agent", TOKEN_ENDPOINT, clock.now()), client_id="web")
    resp = post(client, form)
    assert resp.status_code == 400
    assert resp.json == {"error": "invalid_request", "error_description": "The request is invalid."}


# -- secret failures --------------------------------------------------------------------------


def test_client_secret_basic_when_secret_wrong_then_invalid_client(client, make_nhi, runtime):
    make_nhi("web")
    assert_invalid_client(post(client, CC, basic("web", "sts_wrong")))
    assert denial_reasons(runtime) == ["wrong client secret"]


def test_client_secret_post_when_secret_wrong_then_invalid_client(client, make_nhi):
    make_nhi("web")
    assert_invalid_client(post(client, {**CC, "client_id": "web", "client_secret": "sts_wrong"}))


def test_client_secret_basic_when_client_unknown_then_invalid_client(client, runtime):
    assert_invalid_client(post(client, CC, basic("nobody", "sts_whatever")))
    assert denial_reasons(runtime) == ["unknown client"]


def test_client_auth_when_unknown_client_or_wrong_secret_then_byte_identical_answers(
    client, make_nhi
):
    make_nhi("web")
    for send in (
        lambda cid: post(client, CC, basic(cid, "sts_wrong")),
        lambda cid: post(client, {**CC, "client_id": cid, "client_secret": "sts_wrong"}),
    ):
        wrong_secret, unknown = send("web"), send("nobody")
        assert wrong_secret.status_code == unknown.status_code == 401
        assert wrong_secret.data == unknown.data
        assert wrong_secret.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"]
        assert wrong_secret.headers["Content-Type"] == unknown.headers["Content-Type"]


def test_client_secret_basic_when_client_disabled_then_invalid_client(
    client, make_nhi, runtime, clock
):
    web = make_nhi("web")
    with admin_store(runtime.engine) as store:
        nhis.set_nhi_status(
            store, "web", status="disabled", reason="incident", now=clock.now(), admin="test"
        )
    assert_invalid_client(post(client, CC, basic("web", web.secret)))
    assert denial_reasons(runtime) == ["client disabled"]


def test_client_auth_when_client_reenabled_then_token_issued(client, make_nhi, runtime, clock):
    web = make_nhi("web")
    with admin_store(runtime.engine) as store:
        nhis.set_nhi_status(
            store, "web", status="disabled", reason="incident", now=clock.now(), admin="test"
        )
        nhis.set_nhi_status(
            store, "web", status="active", reason="", now=clock.now(), admin="test"
        )
    assert post(client, CC, basic("web", web.secret)).status_code == 200


def test_client_auth_when_no_credentials_then_invalid_client(client, make_nhi, runtime):
    make_nhi("web")
    assert_invalid_client(post(client, CC))
    assert_invalid_client(post(client, {**CC, "client_id": "web"}))
    assert denial_reasons(runtime) == ["no client authentication"] * 2


def test_client_secret_post_when_secret_empty_then_invalid_client(client, make_nhi):
    make_nhi("web")
    assert_invalid_client(post(client, {**CC, "client_id": "web", "client_secret": ""}))


def test_client_secret_basic_when_header_malformed_then_invalid_client(client, make_nhi):
    web = make_nhi("web")
    no_colon = base64.b64encode(b"web").decode()
    empty_secret = base64.b64encode(b"web:").decode()
    for value in (
        "Basic",
        "Basic ",
        "Basic !!!not-base64!!!",
        f"Basic {no_colon}",
        f"Basic {empty_secret}",
        "Basic " + base64.b64encode(f"web:{web.secret}".encode()).decode()[:-3],
    ):
        assert_invalid_client(post(client, CC, {"Authorization": value}))


def test_client_secret_basic_when_credentials_not_utf8_then_invalid_client(client, make_nhi):
    make_nhi("web")
    value = "Basic " + base64.b64encode(b"\xff\xfeweb:\xc3\x28").decode()
    assert_invalid_client(post(client, CC, {"Authorization": value}))


def test_client_auth_when_authorization_scheme_not_basic_then_invalid_client(
    client, make_nhi, runtime
):
    web = make_nhi("web")
    for value in (f"Bearer {web.secret}", "Digest username=web", "NTLM"):
        assert_invalid_client(post(client, CC, {"Authorization": value}))
    assert denial_reasons(runtime) == ["unsupported Authorization scheme"] * 3


def test_client_auth_when_basic_and_body_secret_then_invalid_request(client, make_nhi, runtime):
    web = make_nhi("web")
    form = {**CC, "client_id": "web", "client_secret": web.secret}
    resp = post(client, form, basic("web", web.secret))
    assert resp.status_code == 400
    assert resp.json == ONE_METHOD
    assert "WWW-Authenticate" not in resp.headers
    assert denial_reasons(runtime) == [
        "more than one client authentication method: client_secret_basic,client_secret_post"
    ]


def test_client_auth_when_basic_and_client_assertion_then_invalid_request(client, make_nhi, clock):
    keys = KeyPair()
    web = make_nhi("web")
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    form = jwt_form(keys.assertion("agent", TOKEN_ENDPOINT, clock.now()))
    resp = post(client, form, basic("web", web.secret))
    assert resp.status_code == 400
    assert resp.json == ONE_METHOD


def test_client_auth_when_body_secret_and_client_assertion_then_invalid_request(
    client, make_nhi, clock
):
    keys = KeyPair()
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    form = jwt_form(
        keys.assertion("agent", TOKEN_ENDPOINT, clock.now()),
        client_id="agent",
        client_secret="sts_x",
    )
    resp = post(client, form)
    assert resp.status_code == 400
    assert resp.json == ONE_METHOD


def test_client_auth_when_grant_not_allowed_then_unauthorized_client(client, make_nhi, runtime):
    web = make_nhi("web", grants=["token-exchange"])
    resp = post(client, CC, basic("web", web.secret))
    assert resp.status_code == 400
    assert resp.json == {
        "error": "unauthorized_client",
        "error_description": "The client may not use this grant type.",
    }
    assert resp.headers["Cache-Control"] == "no-store"
    assert denial_reasons(runtime) == ["grant client_credentials not allowed for client"]


# -- secret rotation --------------------------------------------------------------------------


def test_secret_rotation_when_grace_then_old_and_new_secret_work_until_grace_ends(
    client, make_nhi, runtime, clock
):
    web = make_nhi("web")
    with admin_store(runtime.engine) as store:
        _, new_secret = credentials.rotate_secret(
            store, runtime.hasher, "web", now=clock.now(), admin="test", grace=600
        )
    assert new_secret != web.secret
    assert post(client, CC, basic("web", web.secret)).status_code == 200
    assert post(client, CC, basic("web", new_secret)).status_code == 200
    clock.advance(600)
    assert_invalid_client(post(client, CC, basic("web", web.secret)))
    assert post(client, CC, basic("web", new_secret)).status_code == 200


def test_secret_rotation_when_grace_zero_then_only_new_secret_works(
    client, make_nhi, runtime, clock
):
    web = make_nhi("web")
    with admin_store(runtime.engine) as store:
        _, new_secret = credentials.rotate_secret(
            store, runtime.hasher, "web", now=clock.now(), admin="test", grace=0
        )
    assert_invalid_client(post(client, CC, basic("web", web.secret)))
    assert post(client, CC, basic("web", new_secret)).status_code == 200


# -- private_key_jwt failures -----------------------------------------------------------------


def test_private_key_jwt_when_jti_replayed_then_invalid_client(client, make_nhi, clock, runtime):
    keys = KeyPair()
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    assertion = keys.assertion("agent", TOKEN_ENDPOINT, clock.now())
    assert post(client, jwt_form(assertion)).status_code == 200
    assert_invalid_client(post(client, jwt_form(assertion)))
    # A fresh assertion reusing the jti is a replay too.
    jti = claims_of(assertion)["jti"]
    again = keys.assertion("agent", TOKEN_ENDPOINT, clock.now(), jti=jti, exp=clock.now() + 90)
    assert_invalid_client(post(client, jwt_form(again)))
    assert denial_reasons(runtime) == ["client assertion: JWT ID is used before."] * 2


def test_private_key_jwt_when_replayed_after_exp_within_leeway_then_invalid_client(
    client, make_nhi, clock
):
    # The assertion still passes the exp check for the leeway, so its jti must be kept as long.
    keys = KeyPair()
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    assertion = keys.assertion("agent", TOKEN_ENDPOINT, clock.now(), exp=clock.now() + 60)
    assert post(client, jwt_form(assertion)).status_code == 200
    clock.advance(60 + 20)
    assert_invalid_client(post(client, jwt_form(assertion)))


def test_private_key_jwt_when_exp_has_a_fraction_then_replay_still_refused(client, make_nhi, clock):
    # A NumericDate may be fractional (RFC 7519 §2): clients writing time.time() + 300 send
    # one. Its jti must be kept until then too, not purged at once and replayable.
    keys = KeyPair()
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    assertion = keys.assertion("agent", TOKEN_ENDPOINT, clock.now(), exp=clock.now() + 60.5)
    assert post(client, jwt_form(assertion)).status_code == 200
    clock.advance(1)
    assert_invalid_client(post(client, jwt_form(assertion)))


def test_private_key_jwt_when_same_jti_from_two_clients_then_both_accepted(client, make_nhi, clock):
    # Replay is judged per client (RFC 7523 §3 item 7: jti unique per issuer).
    one, two = KeyPair(), KeyPair()
    make_nhi("one", kind="agent", jwks=one.jwks)
    make_nhi("two", kind="agent", jwks=two.jwks)
    jti = secrets.token_hex(12)
    for name, keys in (("one", one), ("two", two)):
        assertion = keys.assertion(name, TOKEN_ENDPOINT, clock.now(), jti=jti)
        assert post(client, jwt_form(assertion)).status_code == 200


def test_private_key_jwt_when_audience_wrong_then_invalid_client(client, make_nhi, clock):
    keys = KeyPair()
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    for aud in ("https://other.example.test/token", ISSUER + "/", [], ""):
        assertion = keys.assertion("agent", TOKEN_ENDPOINT, clock.now(), aud=aud)
        assert_invalid_client(post(client, jwt_form(assertion)))


def test_private_key_jwt_when_expired_beyond_leeway_then_invalid_client(client, make_nhi, clock):
    keys = KeyPair()
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    now = clock.now()
    expired = keys.assertion("agent", TOKEN_ENDPOINT, now - 600, exp=now - 120)
    assert_invalid_client(post(client, jwt_form(expired)))


def test_private_key_jwt_when_expired_within_leeway_then_token_issued(client, make_nhi, clock):
    keys = KeyPair()
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    now = clock.now()
    assertion = keys.assertion("agent", TOKEN_ENDPOINT, now - 300, exp=now - 29)
    assert post(client, jwt_form(assertion)).status_code == 200


def test_private_key_jwt_when_sts_clock_passes_exp_then_invalid_client(client, make_nhi, clock):
    # Time is the STS clock's, not the wall clock's (frozen here, an hour later).
    keys = KeyPair()
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    assertion = keys.assertion("agent", TOKEN_ENDPOINT, clock.now())
    clock.advance(3600)
    assert_invalid_client(post(client, jwt_form(assertion)))


def test_private_key_jwt_when_issued_in_the_future_then_invalid_client(client, make_nhi, clock):
    keys = KeyPair()
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    now = clock.now()
    for claims in ({"iat": now + 120}, {"nbf": now + 120}):
        assertion = keys.assertion("agent", TOKEN_ENDPOINT, now, exp=now + 600, **claims)
        assert_invalid_client(post(client, jwt_form(assertion)))


def test_private_key_jwt_when_exp_missing_then_invalid_client(client, make_nhi, clock):
    keys = KeyPair()
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    assertion = keys.assertion("agent", TOKEN_ENDPOINT, clock.now(), exp=None)
    assert_invalid_client(post(client, jwt_form(assertion)))


def test_private_key_jwt_when_iss_differs_from_sub_then_invalid_client(client, make_nhi, clock):
    keys = KeyPair()
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    make_nhi("web")
    assertion = keys.assertion("agent", TOKEN_ENDPOINT, clock.now(), iss="web")
    assert_invalid_client(post(client, jwt_form(assertion)))


def test_private_key_jwt_when_signed_by_another_key_then_invalid_client(client, make_nhi, clock):
    registered, other = KeyPair(kid="k1"), KeyPair(kid="k1")
    make_nhi("agent", kind="agent", jwks=registered.jwks)
    assertion = other.assertion("agent", TOKEN_ENDPOINT, clock.now())
    assert_invalid_client(post(client, jwt_form(assertion)))


def test_private_key_jwt_when_signed_with_another_clients_key_then_invalid_client(
    client, make_nhi, clock
):
    mine, theirs = KeyPair(), KeyPair()
    make_nhi("agent", kind="agent", jwks=mine.jwks)
    make_nhi("victim", kind="agent", jwks=theirs.jwks)
    assertion = mine.assertion("victim", TOKEN_ENDPOINT, clock.now())
    assert_invalid_client(post(client, jwt_form(assertion)))


class OtherKey:
    """An Ed25519 or RSA client key, signing with the given algorithm."""

    def __init__(self, alg: str) -> None:
        self.alg, self.kid = alg, secrets.token_hex(4)
        if alg == "EdDSA":
            self.private: Any = ed25519.Ed25519PrivateKey.generate()
            jwk = OKPAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            jwk = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwks = {"keys": [{**jwk, "kid": self.kid, "alg": alg, "use": "sig"}]}

    def assertion(self, client_id: str, now: int) -> str:
        return pyjwt.encode(
            assertion_claims(client_id, now), self.private, self.alg, headers={"kid": self.kid}
        )


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
def test_private_key_jwt_when_advertised_non_default_algorithms_then_token_issued(
    client, make_nhi, clock
):
    advertised = client.get("/.well-known/oauth-authorization-server").json[
        "token_endpoint_auth_signing_alg_values_supported"
    ]
    for alg in ("EdDSA", "PS256", "RS384"):
        assert alg in advertised
        key = OtherKey(alg)
        name = "agent-" + alg.lower()
        make_nhi(name, kind="agent", jwks=key.jwks)
        resp = post(client, jwt_form(key.assertion(name, clock.now())))
        assert resp.status_code == 200, (alg, resp.json)


def test_private_key_jwt_when_alg_none_then_invalid_client(client, make_nhi, clock):
    keys = KeyPair()
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    claims = assertion_claims("agent", clock.now())
    for alg in ("none", "None", "NONE"):
        unsigned = compact({"alg": alg, "kid": keys.kid}, claims, None)
        assert_invalid_client(post(client, jwt_form(unsigned)))


def test_private_key_jwt_when_hs256_forged_with_public_key_then_invalid_client(
    client, make_nhi, clock
):
    keys = KeyPair()
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    public_jwk = keys.jwks["keys"][0]
    candidates = [
        json.dumps(public_jwk).encode(),
        json.dumps(public_jwk, sort_keys=True, separators=(",", ":")).encode(),
        public_jwk["x"].encode(),
    ]
    for alg in ("HS256",):
        for key in candidates:
            claims = assertion_claims("agent", clock.now())
            forged = compact({"alg": alg, "kid": keys.kid, "typ": "JWT"}, claims, key)
            assert_invalid_client(post(client, jwt_form(forged)))


def test_private_key_jwt_when_jti_missing_then_invalid_client(client, make_nhi, clock):
    keys = KeyPair()
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    assertion = keys.assertion("agent", TOKEN_ENDPOINT, clock.now(), jti=None)
    assert_invalid_client(post(client, jwt_form(assertion)))


def test_private_key_jwt_when_assertion_type_wrong_then_invalid_request(client, make_nhi, clock):
    keys = KeyPair()
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    assertion = keys.assertion("agent", TOKEN_ENDPOINT, clock.now())
    for assertion_type in ("urn:ietf:params:oauth:client-assertion-type:saml2-bearer", ""):
        form = jwt_form(assertion, client_assertion_type=assertion_type)
        resp = post(client, form)
        assert resp.status_code == 400
        assert resp.json == {
            "error": "invalid_request",
            "error_description": "The request is invalid.",
        }
    missing = {**CC, "client_assertion": assertion}
    resp = post(client, missing)
    assert resp.status_code == 400
    assert resp.json == {"error": "invalid_request", "error_description": "The request is invalid."}


def test_private_key_jwt_when_assertion_missing_then_invalid_request(client):
    resp = post(client, {**CC, "client_assertion_type": ASSERTION_TYPE})
    assert resp.status_code == 400
    assert resp.json == {"error": "invalid_request", "error_description": "The request is invalid."}


def test_private_key_jwt_when_assertion_garbage_then_invalid_client(client, make_nhi):
    make_nhi("agent", kind="agent", jwks=KeyPair().jwks)
    for garbage in ("not-a-jwt", "a.b.c", "e30.e30.", b64url(b"[]") + "." + b64url(b"1") + ".x"):
        assert_invalid_client(post(client, jwt_form(garbage)))


def test_private_key_jwt_when_client_has_only_a_secret_then_invalid_client(client, make_nhi, clock):
    keys = KeyPair()
    make_nhi("web")
    assertion = keys.assertion("web", TOKEN_ENDPOINT, clock.now())
    assert_invalid_client(post(client, jwt_form(assertion)))


def test_private_key_jwt_when_client_unknown_then_invalid_client(client, clock):
    keys = KeyPair()
    assertion = keys.assertion("nobody", TOKEN_ENDPOINT, clock.now())
    assert_invalid_client(post(client, jwt_form(assertion)))


def test_private_key_jwt_when_client_disabled_then_invalid_client(client, make_nhi, clock, runtime):
    keys = KeyPair()
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    with admin_store(runtime.engine) as store:
        nhis.set_nhi_status(
            store, "agent", status="disabled", reason="incident", now=clock.now(), admin="test"
        )
    assertion = keys.assertion("agent", TOKEN_ENDPOINT, clock.now())
    assert_invalid_client(post(client, jwt_form(assertion)))
    assert denial_reasons(runtime) == ["client disabled"]


def test_client_secret_when_client_has_only_keys_then_invalid_client(client, make_nhi):
    make_nhi("agent", kind="agent", jwks=KeyPair().jwks)
    assert_invalid_client(post(client, CC, basic("agent", "sts_guess")))


def test_private_key_jwt_when_two_key_credentials_then_lineage_names_the_one_that_signed(
    client, make_nhi, clock, runtime
):
    old, new = KeyPair("old-key"), KeyPair("new-key")
    make_nhi("agent", kind="agent", jwks=old.jwks)
    with admin_store(runtime.engine) as store:
        cred, _ = credentials.add_credential(
            store, runtime.hasher, "agent", now=clock.now(), admin="t", jwks=new.jwks
        )
    resp = post(client, jwt_form(new.assertion("agent", TOKEN_ENDPOINT, clock.now())))
    assert resp.status_code == 200, resp.json
    with runtime.engine.connect() as conn:
        recorded = conn.execute(select(IssuedToken.credential_id)).scalar_one()
    assert recorded == cred["id"]


def test_private_key_jwt_when_two_key_credentials_and_no_kid_then_the_key_that_verifies_names_it(
    client, make_nhi, clock, runtime
):
    # Revoking a credential must reach the tokens obtained with it: an assertion that does
    # not name its key is attributed to the one credential whose key verifies its signature.
    old, new = KeyPair("old-key"), KeyPair("new-key")
    make_nhi("agent", kind="agent", jwks=old.jwks)
    with admin_store(runtime.engine) as store:
        cred, _ = credentials.add_credential(
            store, runtime.hasher, "agent", now=clock.now(), admin="t", jwks=new.jwks
        )
    claims = {
        "iss": "agent",
        "sub": "agent",
        "aud": TOKEN_ENDPOINT,
        "iat": clock.now(),
        "exp": clock.now() + 60,
        "jti": "no-kid-1",
    }
    assertion = pyjwt.encode(claims, new.private, algorithm="ES256")
    resp = post(client, jwt_form(assertion))
    assert resp.status_code == 200, resp.json
    with runtime.engine.connect() as conn:
        recorded = conn.execute(select(IssuedToken.credential_id)).scalar_one()
    assert recorded == cred["id"]
