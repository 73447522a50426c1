"""Chain STS service SDK: exchange tokens per hop, verify incoming tokens.

The core imports neither Flask nor SQLAlchemy (nor ``requests``): a service needs only PyJWT.

* :class:`ExchangeClient` — token exchange (RFC 8693) and client credentials, with caching;
* :class:`TokenVerifier` — verify an incoming token: keys, audience, scope, revocation feed;
  :class:`Caller` is who called, on whose behalf, within which transaction;
* :mod:`sts.client.flask` — ``@require_token`` and ``downstream_auth`` for Flask apps;
* :mod:`sts.client.http_auth` — :class:`~sts.client.http_auth.ExchangeAuth` for ``requests``.
"""

from sts.client.credentials import ClientCredential, ClientSecret, PrivateKeyJwt
from sts.client.discovery import ServerMetadata, discover
from sts.client.errors import (
    InsufficientScope,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    InvalidToken,
    OAuthError,
    ServerError,
    StsClientError,
    StsUnavailable,
    TemporarilyUnavailable,
    TokenRejected,
    UnauthorizedClient,
    UnsupportedGrantType,
    VerificationUnavailable,
)
from sts.client.exchange import ExchangeClient, IssuedToken
from sts.client.jwks import JwksCache, StaticJwks
from sts.client.revocation_feed import RevocationFeed
from sts.client.transport import HttpResponse, Transport, UrllibTransport
from sts.client.verifier import Caller, TokenVerifier

__all__ = [
    "Caller",
    "ClientCredential",
    "ClientSecret",
    "ExchangeClient",
    "HttpResponse",
    "InsufficientScope",
    "InvalidClient",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "InvalidTarget",
    "InvalidToken",
    "IssuedToken",
    "JwksCache",
    "OAuthError",
    "PrivateKeyJwt",
    "RevocationFeed",
    "ServerError",
    "ServerMetadata",
    "StaticJwks",
    "StsClientError",
    "StsUnavailable",
    "TemporarilyUnavailable",
    "TokenRejected",
    "TokenVerifier",
    "Transport",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "UrllibTransport",
    "VerificationUnavailable",
    "discover",
]
