"""Immutable values the protocol core works with. No Flask, no SQLAlchemy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chain_sts_client.algorithms import ASYMMETRIC_JWS_ALGORITHMS as SDK_ALGORITHMS

from sts.core.token_types import CLIENT_CREDENTIALS, TOKEN_EXCHANGE

KINDS = ("service", "agent", "workload")
GRANT_TYPES = (CLIENT_CREDENTIALS, TOKEN_EXCHANGE)
#: Most tokens one lineage (a token and its ancestors) may hold: a subject token whose lineage
#: is this long can no longer be exchanged, so every walk up or down a chain is bounded by it.
MAX_LINEAGE = 64
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
#: Asymmetric JWS algorithms accepted from clients and trusted issuers (RFC 8725 §3.1: never
#: ``none``, never HMAC where a public key is published): the service SDK's list, so the STS
#: and the services that verify its tokens agree.
ASYMMETRIC_JWS_ALGORITHMS = SDK_ALGORITHMS


@dataclass(frozen=True)
class CredentialView:
    id: str
    type: str  # secret | jwks | jwks_uri
    secret_hash: str | None = None
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None


@dataclass(frozen=True)
class Client:
    """An NHI as the token endpoint sees it, with its live credentials.

    The grant types and authentication methods it may use are asked here, in the words of
    Authlib's ``ClientMixin``.
    """

    id: int
    client_id: str
    kind: str
    sub: str
    owner: str
    status: str
    scopes: frozenset[str]
    grants: frozenset[str]
    credentials: tuple[CredentialView, ...] = field(default=())
    #: Failed authentications recorded since ``failures_since`` (brute-force throttling).
    failures: int = 0
    failures_since: int = 0

    @property
    def active(self) -> bool:
        return self.status == "active"

    def throttled(self, now: int, limit: int, window: int) -> bool:
        """Too many failed authentications in the current window."""
        return self.failures >= limit and now < self.failures_since + window

    def secrets(self) -> list[CredentialView]:
        return [c for c in self.credentials if c.type == "secret"]

    def key_credentials(self) -> list[CredentialView]:
        return [c for c in self.credentials if c.type in ("jwks", "jwks_uri")]

    # -- what the token endpoint asks of a client --------------------------------------
    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grants

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if method == "private_key_jwt":
            return bool(self.key_credentials())
        if method in ("client_secret_basic", "client_secret_post"):
            return bool(self.secrets())
        return False


@dataclass(frozen=True)
class Target:
    """A registered NHI named as the audience of a token."""

    id: int
    client_id: str
    sub: str
    status: str
    kind: str
