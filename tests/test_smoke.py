from __future__ import annotations

from tests.conftest import ISSUER
from tests.helpers import FORM, basic, claims_of, header_of


def test_client_credentials_when_secret_basic_then_rfc9068_token(client, make_nhi, clock):
    web = make_nhi("web", scope="orders:read orders:write")
    resp = client.post("/token", data={"grant_type": "client_credentials", "scope": "orders:read"},
                       headers=basic(web.client_id, web.secret), content_type=FORM)
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert body["scope"] == "orders:read"
    assert resp.headers["Cache-Control"] == "no-store"
    claims = claims_of(body["access_token"])
    assert claims == {"iss": ISSUER, "sub": "web", "aud": ISSUER, "client_id": "web",
                      "scope": "orders:read", "iat": clock.now(), "nbf": clock.now(),
                      "exp": clock.now() + 300, "jti": claims["jti"], "txn": claims["jti"]}
    assert header_of(body["access_token"])["typ"] == "at+jwt"
