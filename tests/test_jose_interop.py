"""Tokens verified by an independent JOSE implementation (jwcrypto), not the PyJWT that signed
them: what a resource server in another stack would do with the published JWKS (RFC 7517,
RFC 9068 §4, RFC 8414)."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from jwcrypto import jwk, jws
from jwcrypto import jwt as jose_jwt

from sts.runtime import build_runtime
from sts.services import nhis
from sts.store.admin import admin_store
from sts.web import create_app
from tests.conftest import ISSUER
from tests.helpers import FORM, basic

CLAIMS = {"iss", "sub", "aud", "client_id", "scope", "iat", "nbf", "exp", "jti", "txn"}


def jose_verify(token: str, jwks_json: str, alg: str, issuer: str) -> tuple[dict[str, Any], Any]:
    """Verify signature, algorithm and the standard claims with jwcrypto only."""
    keyset = jwk.JWKSet.from_json(jwks_json)
    verified = jose_jwt.JWT(
        jwt=token,
        key=keyset,
        algs=[alg],
        check_claims={"iss": issuer, "aud": issuer, "exp": None, "nbf": None},
        expected_type="JWS",
    )
    return json.loads(verified.header), json.loads(verified.claims)


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_client_credentials_token_when_verified_with_jwcrypto_then_rfc9068_header_and_claims(
    tmp_path, settings, engine, clock, alg
):
    configured = dataclasses.replace(settings, signing_alg=alg, keys_dir=tmp_path / "keys")
    rt = build_runtime(configured, clock, engine=engine)
    client = create_app(configured, rt=rt).test_client()
    with admin_store(engine) as store:
        _, secret = nhis.create_nhi(
            store,
            rt.hasher,
            name="web",
            kind="service",
            scope="orders:read",
            now=clock.now(),
            admin="test",
        )
    resp = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic("web", secret),
        content_type=FORM,
    )
    assert resp.status_code == 200, resp.json
    token = resp.json["access_token"]

    header, claims = jose_verify(
        token, client.get("/jwks.json").get_data(as_text=True), alg, ISSUER
    )
    kid = rt.keys.ring.signing_key(rt.clock.now()).kid
    assert header == {"alg": alg, "typ": "at+jwt", "kid": kid}
    assert set(claims) == CLAIMS
    assert claims["sub"] == "web" and claims["client_id"] == "web"
    assert claims["scope"] == "orders:read"
    assert claims["iat"] == claims["nbf"] == clock.now()
    assert claims["exp"] == clock.now() + 300
    assert claims["txn"] == claims["jti"]


def test_client_credentials_token_when_tampered_then_jwcrypto_refuses(client, make_nhi):
    web = make_nhi("web", scope="orders:read")
    resp = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic("web", web.secret),
        content_type=FORM,
    )
    head, payload, signature = resp.json["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "orders:read orders:write"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = f"{head}.{forged_payload}.{signature}"
    with pytest.raises((jose_jwt.JWTMissingKey, jws.InvalidJWSSignature)):
        jose_verify(forged, client.get("/jwks.json").get_data(as_text=True), "ES256", ISSUER)


# -- the real development server over HTTP -------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _sts(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run the ``sts`` command; its output (which may hold a secret) is never echoed."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("sts")), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"sts {args[0]} {args[1]} failed: {done.stderr[-2000:]}"
    return done.stdout


def _get(url: str) -> tuple[int, Message, bytes]:
    """Status, headers (looked up without regard to case, as HTTP names them) and body."""
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - local http URL
        return resp.status, resp.headers, resp.read()


def _wait_until_up(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"sts serve exited with {server.returncode}: {log.read_text()[-2000:]}")
        try:
            if _get(base + "/healthz")[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    pytest.fail(f"sts serve did not come up: {log.read_text()[-2000:]}")


def test_dev_server_when_token_fetched_over_http_then_jwcrypto_verifies_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STS_")}
    env.update(
        STS_DATABASE_URL=f"sqlite:///{tmp_path / 'sts.db'}",
        STS_KEYS_DIR=str(tmp_path / "keys"),
        STS_LOG_LEVEL="WARNING",
    )
    _sts(["db", "upgrade"], env, tmp_path)
    created = json.loads(
        _sts(
            ["nhi", "create", "web", "--kind", "service", "--scope", "orders:read", "--json"],
            env,
            tmp_path,
        )
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("sts")), "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(base, server, log)

        status, _, body = _get(base + "/.well-known/oauth-authorization-server")
        meta = json.loads(body)
        assert status == 200
        assert meta["issuer"] == base
        assert meta["token_endpoint"] == base + "/token"
        assert "client_credentials" in meta["grant_types_supported"]

        status, headers, jwks_body = _get(meta["jwks_uri"])
        assert status == 200 and headers["Content-Type"] == "application/json"

        request = urllib.request.Request(  # noqa: S310 - local http URL
            meta["token_endpoint"],
            data=urlencode({"grant_type": "client_credentials", "scope": "orders:read"}).encode(),
            headers={"Content-Type": FORM, **basic(created["client_id"], created["client_secret"])},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310
            assert resp.status == 200
            assert resp.headers["Cache-Control"] == "no-store"
            assert resp.headers["Pragma"] == "no-cache"
            answer = json.loads(resp.read())
        assert answer["token_type"] == "Bearer" and answer["scope"] == "orders:read"

        header, claims = jose_verify(answer["access_token"], jwks_body.decode(), "ES256", base)
        assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
        assert header["kid"] in {k["kid"] for k in json.loads(jwks_body)["keys"]}
        assert claims["sub"] == "web" and claims["client_id"] == "web"
        assert claims["scope"] == "orders:read"
        assert set(claims) == CLAIMS
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
    # Nothing the server wrote contains the secret or the token.
    written = log.read_text()
    assert created["client_secret"] not in written
    assert answer["access_token"] not in written
