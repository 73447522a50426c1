"""The SDK's caller says which issuer its subject came from (RFC 9493 ``sub_id``, DESIGN §3):
``caller.sub_id`` as the token carries it and ``caller.subject_issuer``, in the verifier and in
``chain_sts_client.flask.current_caller()``; a malformed ``sub_id`` is an invalid token."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from chain_sts_client import InvalidToken, StaticJwks, TokenVerifier
from chain_sts_client.flask import ChainSts, current_caller, require_token
from flask import Flask

from tests.helpers import KeyPair
from tests.sdk_fixtures import (  # noqa: F401 - fixtures
    RecordingTransport,
    chain_fixture,
    live_sts_fixture,
    settings_fixture,
    sts_http_fixture,
    token_for,
)

ISS = "https://sts.example.test"


def verifier_for(chain: Any, audience: str) -> TokenVerifier:
    return TokenVerifier.for_sts(chain.client(audience), follow_feed=False)


def test_verify_when_subject_from_trusted_issuer_then_caller_names_that_issuer(chain, clock):
    caller = verifier_for(chain, "tool").verify(token_for(chain, clock, "tool"))
    assert caller.sub == "alice"
    assert caller.sub_id == {"format": "iss_sub", "iss": chain.idp.issuer, "sub": "alice"}
    assert caller.subject_issuer == chain.idp.issuer
    assert caller.summary()["subject_issuer"] == chain.idp.issuer


def test_verify_when_subject_is_an_nhi_then_no_sub_id_and_the_sts_is_its_issuer(chain):
    own = chain.client("web", dpop=False).client_credentials(audience="tool").access_token
    caller = verifier_for(chain, "tool").verify(own)
    assert (caller.sub, caller.sub_id, caller.subject_issuer) == ("web", None, chain.issuer)


def test_current_caller_when_flask_view_then_subject_issuer_and_sub_id(chain, clock):
    app = Flask("tool")
    ext = ChainSts(app, client=chain.client("tool", transport=RecordingTransport()),
                   poll_interval=60)  # fmt: skip

    @app.get("/")
    @require_token()
    def whoami() -> dict[str, Any]:
        caller = current_caller()
        return {"issuer": caller.subject_issuer, "sub_id": caller.sub_id}

    try:
        token = token_for(chain, clock, "tool")
        answer = app.test_client().get("/", headers={"Authorization": f"Bearer {token}"})
    finally:
        ext.close()
    assert answer.status_code == 200, answer.json
    assert answer.json == {
        "issuer": chain.idp.issuer,
        "sub_id": {"format": "iss_sub", "iss": chain.idp.issuer, "sub": "alice"},
    }


# -- sub_id as the verifier reads it, on tokens signed by a key of its own ---------------------
KEY = KeyPair("k1")


def signed(**claims: Any) -> str:
    body = {"iss": ISS, "sub": "alice", "aud": "tool", "iat": 1, "exp": 2**40, **claims}
    return jwt.encode(body, KEY.private, algorithm="ES256",
                      headers={"kid": KEY.kid, "typ": "at+jwt"})  # fmt: skip


def verify(token: str) -> Any:
    return TokenVerifier(ISS, "tool", StaticJwks(KEY.jwks)).verify(token)


@pytest.mark.parametrize(
    "sub_id",
    [
        "alice",
        {"iss": "https://idp.example.test", "sub": "alice"},
        {"format": "iss_sub", "sub": "alice"},
        {"format": "iss_sub", "iss": "https://idp.example.test", "sub": "mallory"},
        {"format": 7},
    ],
)
def test_verify_when_sub_id_malformed_then_invalid_token(sub_id):
    with pytest.raises(InvalidToken) as caught:
        verify(signed(sub_id=sub_id))
    assert caught.value.reason == "malformed sub_id claim"


def test_verify_when_sub_id_of_another_format_then_kept_and_token_issuer_is_subject_issuer():
    caller = verify(signed(sub_id={"format": "opaque", "id": "x-1"}))
    assert caller.sub_id == {"format": "opaque", "id": "x-1"}
    assert caller.subject_issuer == ISS
