"""Test helpers: request builders, key pairs, client assertions, token decoding."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

FORM = "application/x-www-form-urlencoded"


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def claims_of(token: str) -> dict[str, Any]:
    """Claims without verification (the tests verify signatures where that is the point)."""
    return jwt.decode(token, options={"verify_signature": False})


def header_of(token: str) -> dict[str, Any]:
    return jwt.get_unverified_header(token)


class KeyPair:
    """An ES256 key pair a client authenticates with (private_key_jwt)."""

    def __init__(self, kid: str | None = None) -> None:
        self.kid = kid or secrets.token_hex(4)
        self.private = ec.generate_private_key(ec.SECP256R1())

    @property
    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        jwk.update({"kid": self.kid, "alg": "ES256", "use": "sig"})
        return {"keys": [jwk]}

    def assertion(self, client_id: str, audience: str, now: int, **overrides: Any) -> str:
        claims: dict[str, Any] = {"iss": client_id, "sub": client_id, "aud": audience,
                                  "iat": now, "exp": now + 60, "jti": secrets.token_hex(12)}
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.private, algorithm="ES256", headers={"kid": self.kid})
