"""Interop (RFC 9449): a DPoP client from another ecosystem — ``oauth4webapi`` under Node —
obtains a bound token from a running STS (client_credentials with DPoP, with and without
server nonces) and uses it against a resource protected by the SDK.

``oauth4webapi`` is installed from the npm registry into a temporary directory. Without
``node``/``npm`` or the registry the test is skipped with the reason, except under ``CI=true``,
where that is a failure.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chain_sts_client import ClientSecret, ExchangeClient
from chain_sts_client.dpop import DpopKey
from chain_sts_client.flask import ChainSts, current_caller, require_token
from flask import Flask

from sts.core.settings import Settings
from tests.conftest import IN_CI
from tests.helpers import claims_of
from tests.sdk_fixtures import (  # noqa: F401 - fixtures
    LoopbackServer,
    RecordingTransport,
    chain_fixture,
    live_sts_fixture,
    serve,
    sts_http_fixture,
)

CLIENT_SCRIPT = Path(__file__).parent / "interop" / "dpop_client.mjs"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"oauth4webapi interop is required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def oauth4webapi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the client script with ``oauth4webapi`` installed beside it."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        _unavailable("node and npm are not installed")
    where = tmp_path_factory.mktemp("oauth4webapi")
    (where / "package.json").write_text('{"private": true, "type": "module"}')
    try:
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "oauth4webapi@3"],
            cwd=where, capture_output=True, text=True, timeout=180, check=False,
        )
    except subprocess.TimeoutExpired:
        _unavailable("npm install oauth4webapi timed out (registry unreachable?)")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [""])[-1][:200]
        _unavailable(f"npm install oauth4webapi failed (registry unreachable?): {last}")
    shutil.copy(CLIENT_SCRIPT, where / CLIENT_SCRIPT.name)
    return where


@pytest.fixture(name="settings", params=[False, True], ids=["no-nonce", "nonce"])
def nonce_settings(request: pytest.FixtureRequest, engine: Any, keys_dir: Any,
                   sts_http: LoopbackServer) -> Settings:
    return Settings(issuer=sts_http.url,
                    database_url=engine.url.render_as_string(hide_password=False),
                    keys_dir=keys_dir, leeway=30, dpop_require_nonce=request.param)


@pytest.fixture
def resource(chain: Any) -> Iterator[str]:
    """``tool``, protected by the SDK."""
    app = Flask("tool")
    ext = ChainSts(app, client=chain.client("tool", transport=RecordingTransport()),
                   poll_interval=60)

    @app.get("/orders")
    @require_token(scope="orders:read")
    def orders() -> dict[str, Any]:
        caller = current_caller()
        return {"sub": caller.sub, "cnf": caller.claims.get("cnf")}

    server = serve(app)
    yield server.url + "/orders"
    ext.close()
    server.close()


def test_oauth4webapi_when_client_credentials_with_dpop_then_bound_token_works_at_the_sdk(
    chain, settings, resource, oauth4webapi, make_nhi
):
    node_client = make_nhi("node-client", scope="orders:read")
    done = subprocess.run(
        ["node", CLIENT_SCRIPT.name, chain.issuer, "node-client", node_client.secret, "tool",
         "orders:read", resource],
        cwd=oauth4webapi, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["token_type"].lower() == "dpop"
    assert answer["nonce_retry"] is settings.dpop_require_nonce
    assert answer["status"] == 200, answer
    assert answer["body"]["sub"] == "node-client"
    assert set(answer["body"]["cnf"]) == {"jkt"}


def test_sdk_client_when_the_sts_asks_for_nonces_then_it_retries_once_with_the_nonce(
    chain, settings, make_nhi
):
    """The SDK's own DPoP client, against the same two STS configurations."""
    me = make_nhi("sdk-client", scope="orders:read")
    transport = RecordingTransport()
    client = ExchangeClient(chain.issuer, ClientSecret("sdk-client", me.secret),
                            transport=transport, dpop=DpopKey())
    issued = client.client_credentials(audience="tool", scope="orders:read")
    assert issued.bound
    assert claims_of(issued.access_token)["cnf"] == {"jkt": client.dpop_key.jkt}
    posts = [c for c in transport.calls if c.path == "/token"]
    assert len(posts) == (2 if settings.dpop_require_nonce else 1)
    assert all("DPoP" in c.headers for c in posts)
