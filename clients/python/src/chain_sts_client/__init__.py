"""Chain STS service SDK: exchange tokens per hop, verify incoming tokens.

The distribution ``chain-sts-client``. Its core imports neither Flask nor ``requests``: a
service needs only PyJWT and joserfc (``requests`` for :mod:`~chain_sts_client.http_auth`,
Flask for the extra ``flask``). The STS itself takes the protocol values it shares with
services from here.

* :class:`ExchangeClient` — token exchange (RFC 8693) and client credentials, with caching;
* :class:`TokenVerifier` — verify an incoming token: keys, audience, scope, revocation feed;
  :class:`Caller` is who called, on whose behalf, within which transaction;
* :class:`AccessReporter` — report what was done under a token, queued and sent in the
  background (``current_caller().report(...)`` in Flask);
* :mod:`chain_sts_client.dpop` — DPoP (RFC 9449): proofs of the process's key, and the
  checks of a bound token's proof;
* :mod:`chain_sts_client.flask` — ``@require_token`` and ``downstream_auth`` for Flask apps;
* :mod:`chain_sts_client.http_auth` — :class:`~chain_sts_client.http_auth.ExchangeAuth`
  for ``requests``.
"""

from chain_sts_client.credentials import ClientCredential, ClientSecret, PrivateKeyJwt
from chain_sts_client.discovery import ServerMetadata, discover
from chain_sts_client.errors import (
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
from chain_sts_client.exchange import ExchangeClient, IssuedToken
from chain_sts_client.jwks import JwksCache, StaticJwks
from chain_sts_client.reports import AccessReporter
from chain_sts_client.revocation_feed import RevocationFeed
from chain_sts_client.ssf import SsfReceiver
from chain_sts_client.transport import HttpResponse, Transport, UrllibTransport
from chain_sts_client.verifier import Caller, TokenVerifier

__all__ = [
    "AccessReporter",
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
    "SsfReceiver",
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
