"""Trusted issuers whose keys come from a jwks_uri: fetched, cached, refreshed on an unknown
kid at most once per interval, and a failing fetch is a refusal, never a 500 (DESIGN §5.2)."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sts.services import issuers, rules
from sts.store.admin import admin_store
from tests.exchange_fixtures import PersonIdp, exchange
from tests.helpers import KeyPair, claims_of


class JwksServer:
    """A loopback HTTP server publishing a JWKS and counting fetches."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.fetches = 0
        self.fail = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                if outer.fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                body = json.dumps(outer.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks_server():
    server = JwksServer()
    yield server
    server.close()


@pytest.fixture
def remote_idp(runtime, make_nhi, clock, jwks_server):
    idp = PersonIdp("https://remote-idp.example.test")
    jwks_server.jwks = idp.keys.jwks
    web = make_nhi("web")
    make_nhi("agent", "agent")
    with admin_store(runtime.engine) as store:
        issuers.add_issuer(
            store,
            issuer=idp.issuer,
            jwks_uri=jwks_server.url,
            audiences=["web"],
            algorithms=["ES256"],
            now=clock.now(),
            admin="t",
        )
        rules.create_rule(
            store,
            actor="web",
            targets=["agent"],
            scope="read",
            subject=f"issuer:{idp.issuer}",
            now=clock.now(),
            admin="t",
        )
    return idp, web


def test_jwks_uri_when_fetched_then_cached_across_exchanges(client, remote_idp, clock, jwks_server):
    idp, web = remote_idp
    for _ in range(3):
        resp = exchange(client, web, idp.token("alice", "web", clock.now()), audience="agent")
        assert resp.status_code == 200, resp.json
        assert claims_of(resp.json["access_token"])["sub"] == "alice"
    assert jwks_server.fetches == 1


def test_jwks_uri_when_issuer_rotates_key_then_refetched_once(
    client, remote_idp, clock, jwks_server, runtime
):
    idp, web = remote_idp
    assert (
        exchange(client, web, idp.token("alice", "web", clock.now()), audience="agent").status_code
        == 200
    )
    runtime.server.validator.jwks_cache.min_refresh = 0
    idp.keys = KeyPair("idp-2")
    jwks_server.jwks = idp.keys.jwks
    resp = exchange(client, web, idp.token("alice", "web", clock.now()), audience="agent")
    assert resp.status_code == 200, resp.json
    assert jwks_server.fetches == 2


def test_jwks_uri_when_unknown_kid_repeats_then_refetch_rate_limited(
    client, remote_idp, clock, jwks_server
):
    idp, web = remote_idp
    assert (
        exchange(client, web, idp.token("alice", "web", clock.now()), audience="agent").status_code
        == 200
    )
    forger = PersonIdp(idp.issuer)
    forger.keys = KeyPair("forged")
    for _ in range(5):
        resp = exchange(client, web, forger.token("alice", "web", clock.now()), audience="agent")
        assert resp.status_code == 400
        assert resp.json == {
            "error": "invalid_request",
            "error_description": "The subject token is invalid.",
        }
    # The cache is fresh, so an unknown kid may trigger no refetch before min_refresh passes.
    assert jwks_server.fetches == 1


def test_jwks_uri_when_unreachable_then_invalid_request_not_500(
    client, remote_idp, clock, jwks_server
):
    idp, web = remote_idp
    jwks_server.fail = True
    resp = exchange(client, web, idp.token("alice", "web", clock.now()), audience="agent")
    assert resp.status_code == 400
    assert resp.json == {
        "error": "invalid_request",
        "error_description": "The subject token is invalid.",
    }


def test_issuer_when_audience_not_configured_then_refused(client, remote_idp, clock):
    idp, web = remote_idp
    resp = exchange(
        client, web, idp.token("alice", ["someone-else", "web-2"], clock.now()), audience="agent"
    )
    assert resp.status_code == 400
    assert resp.json == {
        "error": "invalid_request",
        "error_description": "The subject token is invalid.",
    }


@pytest.mark.parametrize("alg", ["RS256", "EdDSA", "PS256"])
def test_issuer_token_when_header_alg_does_not_fit_the_key_then_invalid_request_not_500(
    client, runtime, make_nhi, clock, alg
):
    """An attacker names the issuer's EC key under another allowed algorithm: PyJWT cannot
    use that key for it, and the answer is a refusal, never a server error."""
    idp = PersonIdp("https://mixed-idp.example.test")
    web = make_nhi("web")
    make_nhi("agent", "agent")
    with admin_store(runtime.engine) as store:
        issuers.add_issuer(
            store,
            issuer=idp.issuer,
            jwks=idp.keys.jwks,
            audiences=["web"],
            algorithms=["ES256", "RS256", "EdDSA", "PS256"],
            now=clock.now(),
            admin="t",
        )
    good = idp.token("alice", "web", clock.now())
    _header, payload, signature = good.split(".")
    forged_header = (
        base64.urlsafe_b64encode(
            json.dumps({"alg": alg, "kid": idp.keys.kid, "typ": "JWT"}).encode()
        )
        .decode()
        .rstrip("=")
    )
    resp = exchange(client, web, f"{forged_header}.{payload}.{signature}", audience="agent")
    assert resp.status_code == 400
    assert resp.json == {
        "error": "invalid_request",
        "error_description": "The subject token is invalid.",
    }


def test_jwks_uri_when_unreachable_then_one_fetch_per_interval_not_per_request(
    client, remote_idp, clock, jwks_server
):
    idp, web = remote_idp
    jwks_server.fail = True
    for _ in range(4):
        resp = exchange(client, web, idp.token("alice", "web", clock.now()), audience="agent")
        assert resp.status_code == 400
    assert jwks_server.fetches == 1


def test_jwks_uri_when_issuer_goes_down_after_a_fetch_then_last_good_keys_serve(
    client, remote_idp, clock, jwks_server, runtime
):
    idp, web = remote_idp
    assert (
        exchange(client, web, idp.token("alice", "web", clock.now()), audience="agent").status_code
        == 200
    )
    cache = runtime.server.validator.jwks_cache
    cache.ttl = 0  # every lookup now wants a fresh copy
    jwks_server.fail = True
    for _ in range(3):
        resp = exchange(client, web, idp.token("alice", "web", clock.now()), audience="agent")
        assert resp.status_code == 200, resp.json
    assert jwks_server.fetches == 2
