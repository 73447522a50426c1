"""The Flask extension: ``@require_token`` refusals (RFC 6750 §3) and the exchange, per
downstream call, of the incoming token for the named next hop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests
from chain_sts_client import StaticJwks, TokenVerifier
from chain_sts_client.flask import ChainSts, current_caller, downstream_auth, require_token
from flask import Flask, Response, request

from sts.store import revocation
from tests.helpers import KeyPair, claims_of
from tests.sdk_fixtures import (  # noqa: F401 - fixtures
    LoopbackServer,
    RecordingTransport,
    chain_fixture,
    live_sts_fixture,
    person_token,
    serve,
    settings_fixture,
    sts_http_fixture,
    token_for,
)


class Services:
    """Services built with the SDK, served on loopback ports; stopped after the test."""

    def __init__(self, chain: Any) -> None:
        self.chain = chain
        self.servers: list[LoopbackServer] = []
        self.extensions: list[ChainSts] = []
        self.transports: dict[str, RecordingTransport] = {}

    def app(self, name: str, downstream: list[tuple[str, str]] = (),
            extra_verifiers: list[TokenVerifier] = ()) -> Flask:
        app = Flask(name)
        transport = self.transports[name] = RecordingTransport()
        ext = ChainSts(app, client=self.chain.client(name, transport=transport),
                       extra_verifiers=extra_verifiers, poll_interval=60)
        self.extensions.append(ext)

        @app.post("/")
        @require_token(scope="orders:read")
        def handle() -> dict[str, Any]:
            answers = []
            for audience, url in downstream:
                reply = requests.post(url, auth=downstream_auth(audience, scope="orders:read"),
                                      timeout=10)
                answers.append(reply.json())
            return {"saw": current_caller().summary(), "downstream": answers}

        return app

    def serve(self, app: Flask) -> str:
        server = serve(app)
        self.servers.append(server)
        return server.url

    def close(self) -> None:
        for ext in self.extensions:
            ext.close()
        for server in self.servers:
            server.close()


@pytest.fixture
def services(chain) -> Iterator[Services]:
    built = Services(chain)
    yield built
    built.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_downstream_auth_when_a_view_calls_two_hops_then_each_call_gets_its_own_exchange(
    chain, clock, services
):
    tool_url = services.serve(services.app("tool"))
    data_url = services.serve(services.app("data"))
    agent = services.app("agent", [("tool", tool_url), ("data", data_url), ("tool", tool_url)])
    incoming = token_for(chain, clock, "agent")

    answer = agent.test_client().post("/", headers=bearer(incoming))

    assert answer.status_code == 200, answer.json
    body = answer.json
    assert body["saw"]["aud"] == "agent" and body["saw"]["actors"] == ["web"]
    seen = [(d["saw"]["aud"], d["saw"]["actors"], d["saw"]["sub"]) for d in body["downstream"]]
    assert seen == [("tool", ["web", "agent"], "alice"), ("data", ["web", "agent"], "alice"),
                    ("tool", ["web", "agent"], "alice")]
    exchanges = services.transports["agent"].exchanges()
    # One exchange per distinct downstream target (the second call to tool is cached), each
    # of the incoming token; the incoming token itself went to no downstream service.
    assert [c.form["audience"] for c in exchanges] == ["tool", "data"]
    assert all(c.form["subject_token"] == incoming for c in exchanges)
    assert all(c.form["scope"] == "orders:read" for c in exchanges)


def test_downstream_auth_when_the_same_token_comes_again_then_the_exchange_is_cached(
    chain, clock, services
):
    tool_url = services.serve(services.app("tool"))
    agent = services.app("agent", [("tool", tool_url)]).test_client()
    incoming = token_for(chain, clock, "agent")
    for _ in range(3):
        assert agent.post("/", headers=bearer(incoming)).status_code == 200
    assert len(services.transports["agent"].exchanges()) == 1
    other = token_for(chain, clock, "agent")
    assert agent.post("/", headers=bearer(other)).status_code == 200
    assert len(services.transports["agent"].exchanges()) == 2


def test_downstream_auth_when_the_next_hop_rejects_the_token_then_it_exchanges_again_once(
    chain, clock, services
):
    tool = services.app("tool")
    seen: list[str] = []

    @tool.before_request
    def reject_first() -> Response | None:
        seen.append(claims_of(tool_request_token())["jti"])
        if len(seen) == 1:
            return Response(json.dumps({"error": "invalid_token"}), 401, headers={
                "WWW-Authenticate": 'Bearer error="invalid_token"'})
        return None

    tool_url = services.serve(tool)
    agent = services.app("agent", [("tool", tool_url)]).test_client()
    answer = agent.post("/", headers=bearer(token_for(chain, clock, "agent")))
    assert answer.status_code == 200
    assert answer.json["downstream"][0]["saw"]["aud"] == "tool"
    assert len(seen) == 2 and seen[0] != seen[1]
    assert len(services.transports["agent"].exchanges()) == 2


def tool_request_token() -> str:
    return request.headers["Authorization"].split(" ", 1)[1]


def test_require_token_when_no_token_then_401_with_a_bare_challenge(chain, services):
    answer = services.app("tool").test_client().post("/")
    assert (answer.status_code, answer.json) == (401, {
        "error": "invalid_token", "error_description": "The request has no access token."})
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert answer.headers["Cache-Control"] == "no-store"


def test_require_token_when_token_is_for_another_service_then_401_invalid_token(
    chain, clock, services
):
    answer = services.app("data").test_client().post(
        "/", headers=bearer(token_for(chain, clock, "tool")))
    assert (answer.status_code, answer.json) == (401, {
        "error": "invalid_token", "error_description": "The access token is invalid."})
    assert answer.headers["WWW-Authenticate"] == (
        'Bearer error="invalid_token", error_description="The access token is invalid."')


def test_require_token_when_a_scope_is_missing_then_403_insufficient_scope(
    chain, clock, services
):
    token = token_for(chain, clock, "tool", scope="orders:write")
    answer = services.app("tool").test_client().post("/", headers=bearer(token))
    assert (answer.status_code, answer.json) == (403, {
        "error": "insufficient_scope",
        "error_description": "The access token lacks a required scope."})
    assert answer.headers["WWW-Authenticate"] == (
        'Bearer error="insufficient_scope", error_description="The access token lacks a '
        'required scope.", scope="orders:read"')


def test_require_token_when_the_token_was_revoked_then_401_invalid_token(
    chain, clock, services, runtime
):
    tool = services.app("tool")
    token = token_for(chain, clock, "tool")
    assert tool.test_client().post("/", headers=bearer(token)).status_code == 200
    with runtime.engine.begin() as conn:
        revocation.revoke(conn, "nhi", "agent", now=clock.now(), admin="t")
    services.extensions[-1].sts_verifier.feed.poll()
    answer = tool.test_client().post("/", headers=bearer(token))
    assert (answer.status_code, answer.json) == (401, {
        "error": "invalid_token", "error_description": "The access token is invalid."})


def test_require_token_when_the_first_hop_gets_a_person_token_then_the_person_is_the_caller(
    chain, clock, services
):
    idp = TokenVerifier(chain.idp.issuer, "web", StaticJwks(chain.idp.keys.jwks),
                        token_type=None)
    web = services.app("web", extra_verifiers=[idp]).test_client()
    answer = web.post("/", headers=bearer(person_token(chain, clock, scope="orders:read")))
    assert answer.status_code == 200
    assert answer.json["saw"] | {"exp": 0} == {
        "sub": "alice", "aud": "web", "scope": "orders:read", "act": None, "actors": [],
        "exp": 0, "txn": None, "client_id": None, "subject_issuer": chain.idp.issuer}


def test_require_token_when_the_issuer_is_not_trusted_here_then_401_invalid_token(
    chain, clock, services
):
    web = services.app("web").test_client()
    answer = web.post("/", headers=bearer(person_token(chain, clock)))
    assert (answer.status_code, answer.json) == (401, {
        "error": "invalid_token", "error_description": "The access token is invalid."})


def test_downstream_auth_when_used_outside_a_protected_view_then_runtime_error(
    chain, services
):
    app = services.app("agent")
    with app.test_request_context("/"), pytest.raises(RuntimeError) as caught:
        requests.get(services.chain.issuer + "/healthz", auth=downstream_auth("tool"),
                     timeout=5)
    assert str(caught.value) == "no verified incoming token: use inside a @require_token view"


def test_chain_sts_when_configured_as_in_the_readme_then_it_verifies_with_its_own_client(
    chain, clock
):
    app = Flask("tool")
    ext = ChainSts(app, issuer=chain.issuer, client_id="tool",
                   client_secret=chain.secrets["tool"])

    @app.post("/run")
    @require_token(scope="orders:read")
    def run() -> dict[str, Any]:
        caller = current_caller()
        return {"for": caller.sub, "via": list(caller.actors)}

    try:
        answer = app.test_client().post("/run", headers=bearer(token_for(chain, clock, "tool")))
        assert (answer.status_code, answer.json) == (200, {"for": "alice",
                                                           "via": ["web", "agent"]})
        assert ext.sts_verifier.feed is not None and ext.sts_verifier.audience == "tool"
    finally:
        ext.close()


def test_require_token_when_the_sts_cannot_be_reached_then_503_and_no_challenge():
    app = Flask("tool")
    ChainSts(app, issuer="http://127.0.0.1:9", client_id="tool", client_secret="x")

    @app.post("/run")
    @require_token
    def run() -> dict[str, Any]:
        return {}

    token = jwt.encode({"iss": "http://127.0.0.1:9", "sub": "x"}, KeyPair().private,
                       algorithm="ES256")
    answer = app.test_client().post("/run", headers=bearer(token))
    assert (answer.status_code, answer.json) == (503, {
        "error": "temporarily_unavailable",
        "error_description": "Token verification is temporarily unavailable."})
    assert answer.headers["Retry-After"] == "5"
    assert "WWW-Authenticate" not in answer.headers

