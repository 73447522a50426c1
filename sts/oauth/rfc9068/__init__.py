"""RFC 9068: JWT profile for OAuth 2.0 access tokens, minted with PyJWT.

Header ``typ: at+jwt`` (§2.1) and ``kid``; claims ``iss``, ``sub``, ``aud``, ``client_id``,
``scope``, ``iat``, ``nbf``, ``exp``, ``jti`` (§2.2), plus Chain STS's ``txn``, RFC 8693's
``act``, for a subject from a trusted issuer RFC 9493's ``sub_id``, and for a DPoP-bound
token RFC 9449's ``cnf``. The claims are built
from one immutable value so every grant mints the same shape.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import jwt

from sts.core.keys import SigningKey

ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105


def new_jti() -> str:
    return secrets.token_urlsafe(18)


@dataclass(frozen=True)
class AccessToken:
    iss: str
    sub: str
    aud: str
    client_id: str
    scope: str
    iat: int
    exp: int
    jti: str
    txn: str
    act: dict[str, Any] | None = None
    #: The trusted issuer the subject came from (``None``: an NHI of this STS): minted as
    #: ``sub_id`` (RFC 9493 §3.2.1, format ``iss_sub``), so that a subject is never taken
    #: for an NHI, or another issuer's subject, of the same ``sub`` (DESIGN §3).
    subject_issuer: str | None = None
    #: The RFC 7638 thumbprint of the key the token is bound to (RFC 9449 §6.1: ``cnf.jkt``);
    #: ``None``: a bearer token.
    jkt: str | None = None

    def claims(self) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "iss": self.iss,
            "sub": self.sub,
            "aud": self.aud,
            "client_id": self.client_id,
            "iat": self.iat,
            "nbf": self.iat,
            "exp": self.exp,
            "jti": self.jti,
            "txn": self.txn,
        }
        if self.scope:
            claims["scope"] = self.scope
        if self.act is not None:
            claims["act"] = self.act
        if self.subject_issuer is not None:
            claims["sub_id"] = {"format": "iss_sub", "iss": self.subject_issuer, "sub": self.sub}
        if self.jkt is not None:
            claims["cnf"] = {"jkt": self.jkt}
        return claims

    def sign(self, key: SigningKey) -> str:
        return jwt.encode(
            self.claims(),
            key.private_key,
            algorithm=key.alg,
            headers={"typ": ACCESS_TOKEN_TYP, "kid": key.kid},
        )
