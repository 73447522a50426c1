"""Errors the SDK raises: one hierarchy, one class per wire code.

Two families:

* :class:`OAuthError` — the STS refused a request (RFC 6749 §5.2, RFC 8693 §2.2.2). One
  subclass per ``error`` code; ``body`` is the error document exactly as the STS sent it.
* :class:`TokenRejected` — a resource server refused an incoming token (RFC 6750 §3.1):
  ``invalid_token`` (401) or ``insufficient_scope`` (403). ``description`` is fixed public
  text; ``reason`` names the failed check for logs and never contains the token.

:class:`StsUnavailable` is neither: the STS could not be reached or gave no OAuth answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from chain_sts_client.algorithms import ASYMMETRIC_JWS_ALGORITHMS

__all__ = [
    "InsufficientScope",
    "InvalidClient",
    "InvalidDpopProof",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "InvalidTarget",
    "InvalidToken",
    "OAuthError",
    "ServerError",
    "StsClientError",
    "StsUnavailable",
    "TemporarilyUnavailable",
    "TokenRejected",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "UseDpopNonce",
    "VerificationUnavailable",
    "oauth_error",
]


class StsClientError(Exception):
    """Base of every error the SDK raises."""


class StsUnavailable(StsClientError):
    """The STS (or its metadata, JWKS or feed) could not be reached or answered nonsense."""


class OAuthError(StsClientError):
    """An OAuth error response from the STS (RFC 6749 §5.2)."""

    error: ClassVar[str] = ""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        self.status = status
        self.body = dict(body)
        self.code = str(body.get("error", self.error))
        self.description = str(body.get("error_description", ""))
        super().__init__(f"{self.code}: {self.description}" if self.description else self.code)


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    error = "invalid_client"


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class InvalidTarget(OAuthError):
    """RFC 8693 §2.2.2: the target is unknown or not allowed (the STS says the same for both)."""

    error = "invalid_target"


class TemporarilyUnavailable(OAuthError):
    error = "temporarily_unavailable"

    def __init__(
        self, status: int, body: Mapping[str, Any], retry_after: int | None = None
    ) -> None:
        super().__init__(status, body)
        #: Seconds the STS asked us to wait (``Retry-After``), when it said.
        self.retry_after = retry_after


class ServerError(OAuthError):
    error = "server_error"


class DpopProofRefused(OAuthError):
    """RFC 9449 §5: the STS refused the request's DPoP proof (``invalid_dpop_proof``)."""

    error = "invalid_dpop_proof"


class UseDpopNonce(OAuthError):
    """RFC 9449 §8: the STS asks for its nonce (``DPoP-Nonce``) in the proof."""

    error = "use_dpop_nonce"

    def __init__(self, status: int, body: Mapping[str, Any], nonce: str | None = None) -> None:
        super().__init__(status, body)
        #: The nonce the STS sent, to put in the next proof.
        self.nonce = nonce


_BY_CODE: dict[str, type[OAuthError]] = {
    cls.error: cls
    for cls in (
        InvalidRequest,
        InvalidClient,
        InvalidGrant,
        UnauthorizedClient,
        UnsupportedGrantType,
        InvalidScope,
        InvalidTarget,
        ServerError,
        DpopProofRefused,
    )
}


def oauth_error(
    status: int,
    body: Mapping[str, Any],
    retry_after: str | None = None,
    dpop_nonce: str | None = None,
) -> OAuthError:
    """The typed exception for an error document (an unknown code gives :class:`OAuthError`)."""
    code = body.get("error")
    if code == UseDpopNonce.error:
        return UseDpopNonce(status, body, dpop_nonce)
    if code == TemporarilyUnavailable.error:
        seconds = int(retry_after) if retry_after and retry_after.isdigit() else None
        return TemporarilyUnavailable(status, body, seconds)
    cls = _BY_CODE.get(code, OAuthError) if isinstance(code, str) else OAuthError
    return cls(status, body)


class TokenRejected(StsClientError):
    """An incoming token is not acceptable here (RFC 6750 §3.1)."""

    error: ClassVar[str] = "invalid_token"
    status: ClassVar[int] = 401
    description: ClassVar[str] = "The access token is invalid."

    def __init__(self, reason: str) -> None:
        #: Which check failed, for logs. Fixed text chosen by the SDK, never the token.
        self.reason = reason
        super().__init__(f"{self.error}: {reason}")

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}

    def www_authenticate(self) -> str:
        """The ``WWW-Authenticate`` challenge (RFC 6750 §3)."""
        return f'Bearer error="{self.error}", error_description="{self.description}"'


class InvalidToken(TokenRejected):
    """Malformed, forged, expired, not yet valid, for another audience, or revoked."""


class InsufficientScope(TokenRejected):
    """The token is valid but lacks a scope this endpoint requires (RFC 6750 §3.1: 403)."""

    error = "insufficient_scope"
    status = 403
    description = "The access token lacks a required scope."

    def __init__(self, required: frozenset[str]) -> None:
        self.required = required
        super().__init__("missing scope " + " ".join(sorted(required)))

    def www_authenticate(self) -> str:
        return super().www_authenticate() + f', scope="{" ".join(sorted(self.required))}"'


class InvalidDpopProof(TokenRejected):
    """A DPoP-bound token without a valid proof of its key, or presented as a bearer token
    (RFC 9449 §7.1): 401 with a ``DPoP`` challenge."""

    error = "invalid_dpop_proof"
    description = "The DPoP proof is invalid."

    def www_authenticate(self) -> str:
        return (
            f'DPoP error="{self.error}", error_description="{self.description}", '
            f'algs="{" ".join(ASYMMETRIC_JWS_ALGORITHMS)}"'
        )


class VerificationUnavailable(TokenRejected):
    """The keys or the revocation feed could not be fetched (recently enough) to vouch for
    any token: fail closed with 503 rather than accept a token that may be forged or revoked."""

    error = "temporarily_unavailable"
    status = 503
    description = "Token verification is temporarily unavailable."
