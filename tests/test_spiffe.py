"""SPIFFE workload identity (DESIGN §12): a trust domain trusted with its JWT bundle (inline
from the bundle file, or its bundle endpoint), a workload authenticating with its JWT-SVID as
a client assertion, and a JWT-SVID as a subject token; SVIDs without ``exp``, with several
audiences or for another audience refused. Whole error bodies, both backends."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy import select

from sts.services import issuers, rules
from sts.services.errors import Invalid
from sts.store.admin import admin_store
from sts.store.models import AuditEvent
from tests.conftest import ISSUER
from tests.exchange_fixtures import ACCESS_TOKEN, EXCHANGE
from tests.helpers import FORM, basic, claims_of
from tests.sdk_fixtures import LoopbackServer

TRUST_DOMAIN = "spiffe://example.org"
BILLING = "spiffe://example.org/ns/prod/sa/billing"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
INVALID_CLIENT = {"error": "invalid_client", "error_description": "Client authentication failed."}
INVALID_SUBJECT = {"error": "invalid_request", "error_description": "The subject token is invalid."}


class TrustDomain:
    """A SPIFFE trust domain's JWT-SVID signing key, and its bundle (SPIFFE Trust Domain and
    Bundle §4): a JWKS whose keys name their use; the X.509 one never verifies a JWT."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.kid = secrets.token_hex(4)
        self.x509 = ec.generate_private_key(ec.SECP256R1())

    def jwk(self, key: Any, use: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(key.public_key()))
        return {**found, "kid": self.kid if use == "jwt-svid" else "x509-" + self.kid,
                "use": use}

    @property
    def bundle(self) -> dict[str, Any]:
        return {"spiffe_sequence": 1, "spiffe_refresh_hint": 300,
                "keys": [self.jwk(self.private, "jwt-svid"), self.jwk(self.x509, "x509-svid")]}

    def svid(self, now: int, sub: str = BILLING, aud: Any = ISSUER + "/token",
             key: Any = None, kid: str | None = None, **claims: Any) -> str:
        body: dict[str, Any] = {"sub": sub, "aud": aud, "iat": now, "exp": now + 300}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key or self.private, algorithm="ES256",
                          headers={"kid": kid or self.kid, "typ": "JWT"})


def trust(runtime: Any, clock: Any, **keys: Any) -> None:
    with admin_store(runtime.engine) as store:
        issuers.add_issuer(store, issuer=TRUST_DOMAIN, algorithms=["ES256"], now=clock.now(),
                           admin="t", **keys)


@pytest.fixture
def domain(runtime, clock, make_nhi) -> TrustDomain:
    td = TrustDomain()
    trust(runtime, clock, jwks=td.bundle)
    make_nhi("billing", kind="workload", sub=BILLING, scope="orders:read")
    return td


def svid_login(client: Any, svid: str, **extra: str) -> Any:
    data = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": svid, **extra}
    return client.post("/token", data=data, content_type=FORM)


def assert_invalid_client(resp: Any) -> None:
    assert resp.status_code == 401
    assert resp.json == INVALID_CLIENT


def denial(runtime: Any) -> str:
    with runtime.engine.connect() as conn:
        return str(conn.execute(select(AuditEvent.reason).where(
            AuditEvent.event == "token.denied").order_by(AuditEvent.id.desc())).first()[0])


# -- the JWT-SVID as a client assertion -------------------------------------------------------
def test_svid_login_when_spiffe_id_is_an_nhis_sub_then_token_for_that_nhi(
    client, domain, clock
):
    resp = svid_login(client, domain.svid(clock.now()))
    assert resp.status_code == 200, resp.json
    claims = claims_of(resp.json["access_token"])
    assert (claims["sub"], claims["client_id"]) == (BILLING, "billing")


def test_svid_login_when_trust_domain_bundle_served_at_an_endpoint_then_accepted(
    client, runtime, clock, make_nhi
):
    td = TrustDomain()
    endpoint = LoopbackServer()
    body = json.dumps(td.bundle).encode()

    def bundle_endpoint(environ: Any, start: Any) -> list[bytes]:
        start("200 OK", [("Content-Type", "application/json")])
        return [body]

    endpoint.app = bundle_endpoint
    try:
        trust(runtime, clock, jwks_uri=endpoint.url + "/bundle")
        make_nhi("billing", kind="workload", sub=BILLING, scope="orders:read")
        resp = svid_login(client, td.svid(clock.now()))
    finally:
        endpoint.close()
    assert resp.status_code == 200, resp.json


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("no exp", "client assertion: JWT-SVID without exp"),
        ("several audiences", "client assertion: JWT-SVID must name exactly one audience"),
        ("another audience", "client assertion: JWT-SVID for another audience"),
        ("expired", "client assertion: The SVID is expired."),
        ("x509-svid key", "client assertion: SVID kid not in the trust domain bundle"),
        ("forged", "client assertion: SVID signature verification failed"),
        ("untrusted domain", "client assertion: SVID from a trust domain that is not trusted"),
        ("no such workload", "no NHI has this SPIFFE ID"),
    ],
)
def test_svid_login_when_a_check_fails_then_invalid_client(
    client, runtime, domain, clock, case, reason
):
    now = clock.now()
    svid = {
        "no exp": lambda: domain.svid(now, exp=None),
        "several audiences": lambda: domain.svid(now, aud=[ISSUER + "/token", "other"]),
        "another audience": lambda: domain.svid(now, aud="https://elsewhere.example.test"),
        "expired": lambda: domain.svid(now - 400),
        "x509-svid key": lambda: domain.svid(now, key=domain.x509, kid="x509-" + domain.kid),
        "forged": lambda: domain.svid(now, key=ec.generate_private_key(ec.SECP256R1())),
        "untrusted domain": lambda: domain.svid(now, sub="spiffe://other.org/ns/prod/sa/x"),
        "no such workload": lambda: domain.svid(now, sub="spiffe://example.org/ns/x"),
    }[case]()
    assert_invalid_client(svid_login(client, svid))
    assert denial(runtime) == reason


def test_svid_login_when_svid_carries_a_jti_then_a_replay_is_refused(client, domain, clock):
    svid = domain.svid(clock.now(), jti="svid-1")
    assert svid_login(client, svid).status_code == 200
    assert_invalid_client(svid_login(client, svid))


def test_issuer_when_spiffe_id_with_a_path_then_refused_as_a_trust_domain(runtime, clock):
    with admin_store(runtime.engine) as store, pytest.raises(Invalid) as exc:
        issuers.add_issuer(store, issuer=BILLING, jwks=TrustDomain().bundle, now=clock.now(),
                           admin="t")
    assert str(exc.value) == "a SPIFFE trust domain is spiffe://<trust-domain>, without a path"


# -- the JWT-SVID as a subject token -----------------------------------------------------------
@pytest.fixture
def agent(make_nhi, runtime, clock, domain) -> Iterator[Any]:
    made = make_nhi("agent", kind="agent")
    make_nhi("tool", kind="workload")
    with admin_store(runtime.engine) as store:
        rules.create_rule(store, actor="agent", targets=["tool"], scope="orders:read",
                          subject=f"issuer:{TRUST_DOMAIN}", now=clock.now(), admin="t")
    yield made


def exchange(client: Any, who: Any, subject: str) -> Any:
    data = {"grant_type": EXCHANGE, "subject_token": subject, "subject_token_type": ACCESS_TOKEN,
            "audience": "tool", "scope": "orders:read"}
    return client.post("/token", data=data, headers=basic(who.client_id, who.secret),
                       content_type=FORM)


def test_svid_subject_when_addressed_to_the_client_then_exchanged_with_its_trust_domain(
    client, domain, agent, clock
):
    resp = exchange(client, agent, domain.svid(clock.now(), aud="agent"))
    assert resp.status_code == 200, resp.json
    claims = claims_of(resp.json["access_token"])
    assert claims["sub"] == BILLING
    assert claims["sub_id"] == {"format": "iss_sub", "iss": TRUST_DOMAIN, "sub": BILLING}
    assert claims["act"] == {"sub": "agent"}


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("no exp", "subject token: JWT-SVID without exp"),
        ("several audiences", "subject token: JWT-SVID must name exactly one audience"),
        ("another audience", "subject token is not addressed to this client"),
        ("x509-svid key", "subject token: kid does not resolve to an issuer key"),
    ],
)
def test_svid_subject_when_a_check_fails_then_invalid_request(
    client, runtime, domain, agent, clock, case, reason
):
    now = clock.now()
    svid = {
        "no exp": lambda: domain.svid(now, aud="agent", exp=None),
        "several audiences": lambda: domain.svid(now, aud=["agent", "tool"]),
        "another audience": lambda: domain.svid(now, aud="tool"),
        "x509-svid key": lambda: domain.svid(now, aud="agent", key=domain.x509,
                                             kid="x509-" + domain.kid),
    }[case]()
    resp = exchange(client, agent, svid)
    assert resp.status_code == 400
    expected = INVALID_SUBJECT if case != "another audience" else {
        "error": "invalid_request",
        "error_description": "The subject token is not addressed to this client."}
    assert resp.json == expected
    assert denial(runtime) == reason
