"""A small registry for the SSF tests, a receiver written only against the specifications
(RFC 8417, RFC 8935, SSF 1.0 and CAEP 1.0, with PyJWT and werkzeug: no Chain STS code), and
helpers to call the transmitter's endpoints."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

import jwt
from werkzeug.wrappers import Request, Response

from sts.services import rules
from sts.store.admin import admin_store
from tests.admin_api_helpers import token_for
from tests.conftest import ISSUER, Registered
from tests.exchange_fixtures import client_credentials, exchange
from tests.helpers import claims_of

SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
VERIFICATION = "https://schemas.openid.net/secevent/ssf/event-type/verification"
PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"


def verify_set(set_jwt: str, jwks: dict[str, Any], audience: str) -> dict[str, Any]:
    """RFC 8417 §2.3 and §4: ``typ: secevent+jwt``, signed by a key of the transmitter's
    JWKS, ``iss`` the transmitter, ``aud`` this receiver, and the SET claims present."""
    header = jwt.get_unverified_header(set_jwt)
    assert header["typ"] == "secevent+jwt"
    assert header["alg"] in ("ES256", "EdDSA", "RS256")
    key = next(k for k in jwt.PyJWKSet.from_dict(jwks).keys if k.key_id == header["kid"])
    claims: dict[str, Any] = jwt.decode(
        set_jwt,
        key.key,
        algorithms=[header["alg"]],
        audience=audience,
        issuer=ISSUER,
        leeway=600,  # the tests' frozen clocks run ahead of the receiver's
        options={"require": ["iss", "iat", "jti", "aud", "events"]},
    )
    assert "exp" not in claims  # RFC 8417 §2.2: a SET does not expire like an access token
    return claims


def revoked_jtis(claims: dict[str, Any]) -> list[str]:
    """CAEP ``session-revoked``: the tokens its subject names (a ``jwt_id`` subject, SSF 1.0
    §3, or each ``jwt_id`` of an ``aliases`` subject, RFC 9493 §3.2.9)."""
    if SESSION_REVOKED not in claims["events"]:
        return []
    sub_id = claims["sub_id"]
    subjects = sub_id["identifiers"] if sub_id["format"] == "aliases" else [sub_id]
    assert all(s["format"] == "jwt_id" and s["iss"] == ISSUER for s in subjects)
    return [s["jti"] for s in subjects]


class SpecReceiver:
    """An RFC 8935 push endpoint: 202 for a SET with the agreed Authorization header, 503
    while ``down``. Keeps every SET body in arrival order."""

    def __init__(self, secret: str = "receiver-secret") -> None:  # noqa: S107
        self.secret = secret
        self.down = False
        #: Answer every SET with RFC 8935 §2.4 ``invalid_key`` (a SET it can never use).
        self.refuse = False
        self.received: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        if request.method == "HEAD":
            return Response(status=200)(environ, start_response)
        if self.down:
            return Response("down", status=503)(environ, start_response)
        if request.headers.get("Authorization") != f"Bearer {self.secret}":
            body = json.dumps({"err": "authentication_failed", "description": "who are you"})
            return Response(body, 401, mimetype="application/json")(environ, start_response)
        if self.refuse:
            body = json.dumps({"err": "invalid_key", "description": "unknown key"})
            return Response(body, 400, mimetype="application/json")(environ, start_response)
        if request.mimetype != "application/secevent+jwt":
            body = json.dumps({"err": "invalid_request", "description": "not a SET"})
            return Response(body, 400, mimetype="application/json")(environ, start_response)
        with self.lock:
            self.received.append(request.get_data(as_text=True))
        return Response(status=202)(environ, start_response)


@dataclass
class SsfWorld:
    client: Any
    runtime: Any
    clock: Any
    nhis: dict[str, Registered]
    tokens: dict[str, str] = field(default_factory=dict)

    def bearer(self, who: str, scope: str = "ssf:manage") -> dict[str, str]:
        return {"Authorization": f"Bearer {token_for(self.client, self.nhis[who], scope)}"}

    def call(self, who: str, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        headers = {**self.bearer(who), **kwargs.pop("headers", {})}
        if body is not None:
            kwargs["json"] = body
        return self.client.open(path, method=method, headers=headers, **kwargs)

    def create(self, who: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = self.call(who, "POST", "/ssf/stream", body)
        assert resp.status_code == 201, resp.get_json()
        config: dict[str, Any] = resp.get_json()
        return config

    def chain(self) -> list[str]:
        """web's own token (aud: the STS) -> web acting toward agent -> agent toward data;
        the jtis, root first."""
        resp = client_credentials(self.client, self.nhis["web"], scope="orders:read")
        assert resp.status_code == 200, resp.get_json()
        t0 = resp.get_json()["access_token"]
        t1 = exchange(self.client, self.nhis["web"], t0, audience="agent")
        assert t1.status_code == 200, t1.get_json()
        t2 = exchange(
            self.client, self.nhis["agent"], t1.get_json()["access_token"], audience="data"
        )
        assert t2.status_code == 200, t2.get_json()
        tokens = [t0, t1.get_json()["access_token"], t2.get_json()["access_token"]]
        jtis = [claims_of(t)["jti"] for t in tokens]
        self.tokens.update(zip(jtis, tokens, strict=True))
        return jtis

    def jwks(self) -> dict[str, Any]:
        keys: dict[str, Any] = self.client.get("/jwks.json").get_json()
        return keys


def build_ssf_world(client: Any, runtime: Any, make_nhi: Any, clock: Any) -> SsfWorld:
    nhis = {
        "web": make_nhi("web", scope="orders:read"),
        "agent": make_nhi("agent", "agent", owner="ops"),
        "data": make_nhi("data", scope="ssf:manage orders:read"),
        "ops": make_nhi("ops", scope="ssf:manage"),
        "outsider": make_nhi("outsider", scope="ssf:manage"),
    }
    with admin_store(runtime.engine) as store:
        now = clock.now()
        rules.create_rule(
            store, actor="web", targets=["agent"], scope="orders:read", now=now, admin="t"
        )
        rules.create_rule(
            store, actor="agent", targets=["data"], scope="orders:read", now=now, admin="t"
        )
    return SsfWorld(client, runtime, clock, nhis)
