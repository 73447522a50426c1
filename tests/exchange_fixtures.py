"""Building blocks for token-exchange tests: a person's identity provider and exchange calls."""

from __future__ import annotations

import secrets
from typing import Any

import jwt

from tests.helpers import FORM, KeyPair, basic

IDP = "https://idp.example.test"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


class PersonIdp:
    """A trusted human identity provider issuing signed JWTs for people."""

    def __init__(self, issuer: str = IDP) -> None:
        self.issuer = issuer
        self.keys = KeyPair("idp-1")

    def token(self, sub: str, aud: str | list[str], now: int, **claims: Any) -> str:
        body: dict[str, Any] = {"iss": self.issuer, "sub": sub, "aud": aud, "iat": now,
                                "exp": now + 600, "jti": secrets.token_hex(8)}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, self.keys.private, algorithm="ES256",
                          headers={"kid": self.keys.kid})


def exchange(client: Any, who: Any, subject_token: str, *, subject_type: str = ACCESS_TOKEN,
             **params: Any) -> Any:
    """POST a token exchange as ``who`` (a Registered NHI with a secret)."""
    data: dict[str, Any] = {"grant_type": EXCHANGE, "subject_token": subject_token,
                            "subject_token_type": subject_type}
    data.update({k: v for k, v in params.items() if v is not None})
    return client.post("/token", data=data, headers=basic(who.client_id, who.secret),
                       content_type=FORM)


def client_credentials(client: Any, who: Any, **params: Any) -> Any:
    data = {"grant_type": "client_credentials", **params}
    return client.post("/token", data=data, headers=basic(who.client_id, who.secret),
                       content_type=FORM)
