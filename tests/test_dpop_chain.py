"""Sender-constrained hops end to end (DESIGN §12): services built with the SDK, each with a
DPoP key of its own, pass a request along four hops; every hop's token is bound to the key of
the hop that presents it. A token stolen from hop 2 (say, from its logs) is worth nothing at
the service it was meant for, nor at the next one, nor at the STS. And the resource server's
checks of a proof (``ath``, key, ``htu``, ``iat``, replay), each with its whole answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from chain_sts_client import InvalidRequest, StaticJwks, TokenVerifier
from chain_sts_client.dpop import DpopKey, Presentation, ProofChecker
from chain_sts_client.errors import TokenRejected
from chain_sts_client.flask import (
    ChainSts,
    current_caller,
    downstream_auth,
    incoming_token,
    require_token,
)
from flask import Flask

from sts.services import rules
from sts.store.admin import admin_store
from tests.helpers import claims_of
from tests.sdk_fixtures import (  # noqa: F401 - fixtures
    LoopbackServer,
    RecordingTransport,
    chain_fixture,
    live_sts_fixture,
    person_token,
    serve,
    settings_fixture,
    sts_http_fixture,
)

INVALID_PROOF = {"error": "invalid_dpop_proof", "error_description": "The DPoP proof is invalid."}
INVALID_TOKEN = {"error": "invalid_token", "error_description": "The access token is invalid."}
DPOP_CHALLENGE = 'DPoP error="invalid_dpop_proof", error_description="The DPoP proof is invalid."'


class Hops:
    """agent → tool → data → ledger, each a served Flask app with its own DPoP key."""

    def __init__(self, chain: Any) -> None:
        self.chain = chain
        self.keys: dict[str, DpopKey] = {}
        self.received: dict[str, str] = {}  # what each service was handed: its "logs"
        self.urls: dict[str, str] = {}
        self.apps: dict[str, Flask] = {}
        self._servers: list[LoopbackServer] = []
        self._extensions: list[ChainSts] = []

    def service(self, name: str, downstream: str | None) -> Flask:
        app = Flask(name)
        key = self.keys[name] = DpopKey()
        client = self.chain.client(name, transport=RecordingTransport(), dpop=key)
        ext = ChainSts(app, client=client, poll_interval=60)
        self._extensions.append(ext)

        @app.post("/")
        @require_token(scope="orders:read")
        def handle() -> dict[str, Any]:
            self.received[name] = incoming_token()
            answer: dict[str, Any] = {"aud": current_caller().audience[0],
                                      "actors": list(current_caller().actors),
                                      "cnf": current_caller().claims.get("cnf")}
            if downstream is not None:
                reply = requests.post(self.urls[downstream],
                                      auth=downstream_auth(downstream, scope="orders:read"),
                                      timeout=10)
                answer["downstream"] = reply.json()
            return answer

        self.apps[name] = app
        if name != "agent":
            server = serve(app)
            self._servers.append(server)
            self.urls[name] = server.url + "/"
        return app

    def close(self) -> None:
        for ext in self._extensions:
            ext.close()
        for server in self._servers:
            server.close()


@pytest.fixture
def hops(chain, runtime, make_nhi, clock) -> Iterator[Hops]:
    chain.secrets["ledger"] = make_nhi("ledger", kind="service").secret
    with admin_store(runtime.engine) as store:
        rules.create_rule(store, actor="data", targets=["ledger"], scope="orders:read",
                          upstream="tool", now=clock.now(), admin="t")
    built = Hops(chain)
    built.service("ledger", None)
    built.service("data", "ledger")
    built.service("tool", "data")
    built.service("agent", "tool")
    yield built
    built.close()


def dpop_headers(key: DpopKey, token: str, url: str, method: str = "POST") -> dict[str, str]:
    return {"Authorization": f"DPoP {token}", "DPoP": key.proof(method, url, access_token=token)}


def test_chain_when_four_hops_then_each_token_is_bound_to_the_key_of_its_presenter(
    chain, clock, hops
):
    web_key = hops.keys["web"] = DpopKey()
    web = chain.client("web", dpop=web_key)
    first = web.exchange(person_token(chain, clock), audience="agent")
    assert first.token_type == "DPoP"

    answer = hops.apps["agent"].test_client().post(
        "/", headers=dpop_headers(web_key, first.access_token, "http://localhost/"))

    assert answer.status_code == 200, answer.json
    seen, level = [], answer.json
    while level is not None:
        seen.append((level["aud"], level["actors"], level["cnf"]))
        level = level.get("downstream")
    keys = hops.keys
    assert seen == [
        ("agent", ["web"], {"jkt": keys["web"].jkt}),
        ("tool", ["web", "agent"], {"jkt": keys["agent"].jkt}),
        ("data", ["web", "agent", "tool"], {"jkt": keys["tool"].jkt}),
        ("ledger", ["web", "agent", "tool", "data"], {"jkt": keys["data"].jkt}),
    ]
    assert len({k.jkt for k in keys.values()}) == 5


def test_chain_when_hop_2_token_is_stolen_then_refused_at_the_services_and_at_the_sts(
    chain, clock, hops
):
    web_key = DpopKey()
    first = chain.client("web", dpop=web_key).exchange(person_token(chain, clock),
                                                       audience="agent")
    ok = hops.apps["agent"].test_client().post(
        "/", headers=dpop_headers(web_key, first.access_token, "http://localhost/"))
    assert ok.status_code == 200, ok.json
    stolen = hops.received["tool"]  # hop 2: agent → tool, bound to agent's key
    assert claims_of(stolen)["cnf"] == {"jkt": hops.keys["agent"].jkt}
    thief = DpopKey()

    def at(service: str, headers: dict[str, str]) -> requests.Response:
        return requests.post(hops.urls[service], headers=headers, timeout=10)

    # At the service it was addressed to: the thief's own key is not the token's.
    refused = at("tool", dpop_headers(thief, stolen, hops.urls["tool"]))
    assert (refused.status_code, refused.json()) == (401, INVALID_PROOF)
    assert refused.headers["WWW-Authenticate"].startswith(DPOP_CHALLENGE)
    # ... nor downgraded to a bearer token.
    bearer = at("tool", {"Authorization": f"Bearer {stolen}"})
    assert (bearer.status_code, bearer.json()) == (401, INVALID_PROOF)
    # At hop 3's service (data): not its audience either.
    onward = at("data", dpop_headers(thief, stolen, hops.urls["data"]))
    assert (onward.status_code, onward.json()) == (401, INVALID_TOKEN)
    # At the STS: only its audience may exchange it, and the thief is not tool.
    for who in ("data", "ledger"):
        with pytest.raises(InvalidRequest) as exc:
            chain.client(who, dpop=thief).exchange(stolen, audience="ledger")
        assert exc.value.body == {"error": "invalid_request", "error_description":
                                  "The subject token is not addressed to this client."}


# -- the resource server's checks of a proof (RFC 9449 §4.3, §7.1) -----------------------------
class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def bound(chain, clock) -> tuple[str, DpopKey, TokenVerifier]:
    """A token addressed to tool, bound to a key (whose clock the test may turn back), and
    tool's verifier."""
    key = DpopKey(clock=Clock())
    token = chain.client("agent", dpop=key).client_credentials(audience="tool").access_token
    jwks = requests.get(chain.issuer + "/jwks.json", timeout=10).json()
    verifier = TokenVerifier(chain.issuer, "tool", StaticJwks(jwks),
                             proofs=ProofChecker(window=60, leeway=5))
    return token, key, verifier


URL = "https://tool.example.test/orders"


def presented(key: DpopKey, token: str | None, url: str = URL, method: str = "POST",
              scheme: str = "dpop") -> Presentation:
    proof = key.proof(method, url, access_token=token)
    return Presentation(scheme, proof, method, url)


def refused(verifier: TokenVerifier, token: str, shown: Presentation) -> tuple[Any, ...]:
    with pytest.raises(TokenRejected) as exc:
        verifier.verify(token, presentation=shown)
    err = exc.value
    return type(err).__name__, err.status, err.body(), err.reason


def test_resource_when_proof_is_right_then_accepted_and_replay_refused(bound):
    token, key, verifier = bound
    shown = presented(key, token, URL + "?page=2")
    assert verifier.verify(token, presentation=shown).claims["cnf"] == {"jkt": key.jkt}
    assert refused(verifier, token, shown) == (
        "InvalidDpopProof", 401, INVALID_PROOF, "proof replayed")


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("missing ath", "proof without ath"),
        ("ath of another token", "ath does not match the token"),
        ("key mismatch", "proof key does not match the token's cnf"),
        ("wrong htu", "htu does not match"),
        ("wrong htm", "htm does not match"),
        ("old iat", "proof too old"),
        ("no proof", "bound token without a DPoP proof"),
        ("bearer scheme", "bound token presented as a bearer token"),
    ],
)
def test_resource_when_a_proof_check_fails_then_invalid_dpop_proof(bound, case, reason):
    token, key, verifier = bound

    def old() -> Presentation:
        key.clock.now -= 60 + 5 + 1  # type: ignore[attr-defined]
        return Presentation("dpop", key.proof("POST", URL, access_token=token), "POST", URL)

    shown = {
        "missing ath": lambda: presented(key, None),
        "ath of another token": lambda: presented(key, token + "x"),
        "key mismatch": lambda: presented(DpopKey(), token),
        "wrong htu": lambda: Presentation("dpop", key.proof("POST", URL, access_token=token),
                                          "POST", "https://tool.example.test/admin"),
        "wrong htm": lambda: Presentation("dpop", key.proof("GET", URL, access_token=token),
                                          "POST", URL),
        "old iat": old,
        "no proof": lambda: Presentation("dpop", None, "POST", URL),
        "bearer scheme": lambda: presented(key, token, scheme="bearer"),
    }[case]()
    assert refused(verifier, token, shown) == ("InvalidDpopProof", 401, INVALID_PROOF, reason)


def test_resource_when_unbound_token_with_dpop_scheme_then_refused(chain, bound):
    _, key, verifier = bound
    plain = chain.client("agent", dpop=False).client_credentials(audience="tool").access_token
    assert verifier.verify(plain).sub == "agent"
    assert refused(verifier, plain, presented(key, plain)) == (
        "InvalidDpopProof", 401, INVALID_PROOF, "DPoP scheme with an unbound token")
