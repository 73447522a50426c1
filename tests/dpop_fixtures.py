"""DPoP proofs as a client builds them (RFC 9449 §4.2), with every part overridable so that
each check of §4.3 can be failed on purpose."""

from __future__ import annotations

import json
import secrets
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import thumbprint
from jwt.algorithms import ECAlgorithm

from tests.conftest import ISSUER

TOKEN_URL = ISSUER + "/token"
INVALID_PROOF = {"error": "invalid_dpop_proof", "error_description": "The DPoP proof is invalid."}
USE_NONCE = {"error": "use_dpop_nonce", "error_description": "A DPoP nonce is required."}
PROOF_REQUIRED = {
    "error": "invalid_dpop_proof",
    "error_description": "A DPoP proof is required for this target.",
}
_DROP = object()


class Prover:
    """One client's DPoP key pair (ES256)."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        self.jkt = thumbprint(self.jwk)

    def proof(
        self,
        now: int,
        htu: str = TOKEN_URL,
        htm: str = "POST",
        *,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A proof; ``claims``/``headers`` override (``None`` drops a claim)."""
        body: dict[str, Any] = {"jti": secrets.token_urlsafe(12), "htm": htm, "htu": htu,
                                "iat": now}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        head: dict[str, Any] = {"typ": "dpop+jwt", "jwk": self.jwk}
        head.update(headers or {})
        head = {k: v for k, v in head.items() if v is not None}
        return jwt.encode(body, self.private, algorithm="ES256", headers=head)

    def private_jwk(self) -> dict[str, Any]:
        return json.loads(ECAlgorithm.to_jwk(self.private))
