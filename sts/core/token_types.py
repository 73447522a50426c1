"""Token type identifiers (RFC 8693 §3) and grant type names the STS speaks: the service
SDK's own, so the STS and the services that call it spell them alike."""

from __future__ import annotations

from chain_sts_client.token_types import (
    ACCESS_TOKEN_TYPE,
    CLIENT_CREDENTIALS,
    ID_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    TOKEN_EXCHANGE,
)

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "CLIENT_CREDENTIALS",
    "ID_TOKEN_TYPE",
    "JWT_TOKEN_TYPE",
    "TOKEN_EXCHANGE",
]
