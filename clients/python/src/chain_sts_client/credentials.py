"""How a service proves who it is to the STS (RFC 6749 §2.3, RFC 7523 §2.2).

A credential adds its proof to an outgoing request: :class:`ClientSecret` as HTTP Basic
(``client_secret_basic``), :class:`PrivateKeyJwt` as a fresh signed client assertion per
request (``private_key_jwt``). Neither ever shows its secret in ``repr``.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import jwt

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class ClientCredential(Protocol):
    @property
    def client_id(self) -> str: ...

    def apply(
        self, headers: MutableMapping[str, str], form: MutableMapping[str, str], audience: str
    ) -> None:
        """Add the proof of identity to a request bound for ``audience`` (an STS endpoint)."""
        ...


@dataclass(frozen=True)
class ClientSecret:
    """``client_secret_basic``: the client id and secret, form-encoded, then Base64 (§2.3.1)."""

    client_id: str
    secret: str = field(repr=False)

    def basic_authorization(self) -> str:
        raw = f"{quote(self.client_id, safe='')}:{quote(self.secret, safe='')}"
        return "Basic " + base64.b64encode(raw.encode()).decode("ascii")

    def apply(
        self, headers: MutableMapping[str, str], form: MutableMapping[str, str], audience: str
    ) -> None:
        headers["Authorization"] = self.basic_authorization()


@dataclass(frozen=True)
class PrivateKeyJwt:
    """``private_key_jwt`` (RFC 7523 §2.2): a short-lived assertion signed with the client's
    private key, ``iss`` = ``sub`` = client id, ``aud`` = the endpoint, a unique ``jti``
    (the STS refuses a replayed one)."""

    client_id: str
    private_key: Any = field(repr=False)
    kid: str | None = None
    algorithm: str = "ES256"
    lifetime: int = 60
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    def assertion(self, audience: str) -> str:
        now = int(self.clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "iat": now,
            "exp": now + self.lifetime,
            "jti": secrets.token_urlsafe(18),
        }
        headers = {"kid": self.kid} if self.kid else None
        return jwt.encode(claims, self.private_key, algorithm=self.algorithm, headers=headers)

    def apply(
        self, headers: MutableMapping[str, str], form: MutableMapping[str, str], audience: str
    ) -> None:
        form["client_assertion_type"] = CLIENT_ASSERTION_TYPE
        form["client_assertion"] = self.assertion(audience)
