"""Fixtures for the service SDK tests: the STS served on a loopback port, a chain registry,
and a transport that records what the SDK asked the STS (never printing a token)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from chain_sts_client import ClientSecret, ExchangeClient, HttpResponse, UrllibTransport
from werkzeug.serving import BaseWSGIServer, make_server

from sts.core.settings import Settings
from sts.services import issuers, rules
from sts.store.admin import admin_store
from tests.exchange_fixtures import PersonIdp


class LoopbackServer:
    """A WSGI app served on 127.0.0.1 in a thread; the app can be mounted after the port is
    known (the STS's issuer URL must name the port)."""

    def __init__(self) -> None:
        self.app: Any = None
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, self._dispatch, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _dispatch(self, environ: Any, start_response: Any) -> Any:
        return self.app(environ, start_response)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def serve(app: Any) -> LoopbackServer:
    server = LoopbackServer()
    server.app = app
    return server


@dataclass
class Call:
    method: str
    path: str
    form: dict[str, str]
    headers: dict[str, str]


@dataclass
class RecordingTransport:
    """The real urllib transport, recording each call (tests compare, never print)."""

    inner: Any = field(default_factory=UrllibTransport)
    calls: list[Call] = field(default_factory=list)

    def __call__(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None
    ) -> HttpResponse:
        form = dict(parse_qsl(body.decode())) if body else {}
        self.calls.append(Call(method, urlsplit(url).path, form, dict(headers)))
        result: HttpResponse = self.inner(method, url, headers=headers, body=body)
        return result

    def count(self, path: str, **form: str) -> int:
        return sum(
            1
            for c in self.calls
            if c.path == path and all(c.form.get(k) == v for k, v in form.items())
        )

    def exchanges(self) -> list[Call]:
        return [c for c in self.calls if c.form.get("grant_type", "").endswith("token-exchange")]


@pytest.fixture(name="sts_http")
def sts_http_fixture() -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    yield server
    server.close()


@pytest.fixture(name="settings")
def settings_fixture(engine: Any, keys_dir: Any, sts_http: LoopbackServer) -> Settings:
    """The suite's settings, with the issuer where the STS is really served."""
    return Settings(
        issuer=sts_http.url,
        database_url=engine.url.render_as_string(hide_password=False),
        keys_dir=keys_dir,
        leeway=30,
    )


@pytest.fixture(name="live_sts")
def live_sts_fixture(app: Any, sts_http: LoopbackServer) -> str:
    sts_http.app = app
    return sts_http.url


@dataclass
class Chain:
    idp: PersonIdp
    secrets: dict[str, str]
    issuer: str

    def client(self, name: str, **kwargs: Any) -> ExchangeClient:
        return ExchangeClient(self.issuer, ClientSecret(name, self.secrets[name]), **kwargs)


@pytest.fixture(name="chain")
def chain_fixture(live_sts: str, runtime: Any, make_nhi: Any, clock: Any) -> Chain:
    """web → agent → tool and data, for a person of the trusted IdP (as in the e2e test)."""
    idp = PersonIdp()
    made = {
        name: make_nhi(name, kind)
        for name, kind in [
            ("web", "service"),
            ("agent", "agent"),
            ("tool", "workload"),
            ("data", "service"),
        ]
    }
    with admin_store(runtime.engine) as store:
        issuers.add_issuer(store, issuer=idp.issuer, jwks=idp.keys.jwks, audiences=["web"],
                            algorithms=["ES256"], scope_mode="cap", now=clock.now(), admin="t")
        rules.create_rule(store, actor="web", targets=["agent"], scope="orders:read orders:write",
                          subject=f"issuer:{idp.issuer}", now=clock.now(), admin="t")
        rules.create_rule(store, actor="agent", targets=["tool", "data"],
                          scope="orders:read orders:write", upstream="web", now=clock.now(),
                          admin="t")
        rules.create_rule(store, actor="tool", targets=["data"], scope="orders:read",
                          upstream="agent", now=clock.now(), admin="t")
    return Chain(idp, {n: r.secret for n, r in made.items()}, live_sts)


def person_token(chain: Chain, clock: Any, scope: str = "orders:read orders:write") -> str:
    return chain.idp.token("alice", "web", clock.now(), scope=scope)


def token_for(chain: Chain, clock: Any, audience: str, scope: str | None = None) -> str:
    """Walk the chain from the person up to a bearer token addressed to ``audience`` (tests
    present it as ``Authorization: Bearer``)."""
    web = chain.client("web", dpop=False)
    token = web.exchange(person_token(chain, clock), audience="agent")
    if audience == "agent":
        return token.access_token
    agent = chain.client("agent", dpop=False)
    token = agent.exchange(token.access_token, audience=audience, scope=scope)
    return token.access_token
