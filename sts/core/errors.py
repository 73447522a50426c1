"""OAuth error hierarchy (RFC 6749 §5.2, RFC 8693 §2.2.2, DESIGN §6).

One class per wire code. Each carries a short, fixed, public ``error_description`` and a
separate internal ``reason`` that goes to the audit trail and logs only. Neither may contain a
token, a secret or a database message: descriptions are literals chosen by the caller, reasons
name the failed check.
"""

from __future__ import annotations

from typing import Any, ClassVar

from authlib.oauth2.rfc6749 import errors as rfc6749

__all__ = [
    "InvalidClient",
    "InvalidDpopProof",
    "InvalidRequest",
    "InvalidScope",
    "InvalidTarget",
    "ServerError",
    "StsError",
    "TemporarilyUnavailable",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "UseDpopNonce",
]

Headers = list[tuple[str, str]]


class StsError(rfc6749.OAuth2Error):  # type: ignore[misc]
    """Base of every error Chain STS answers with."""

    default_description: ClassVar[str] = "The request is invalid."

    def __init__(self, reason: str, description: str | None = None, **kwargs: Any) -> None:
        super().__init__(description=description or self.default_description, **kwargs)
        #: Precise internal reason, for the audit trail and logs only.
        self.reason = reason

    def response(self) -> tuple[int, dict[str, str], Headers]:
        status, body, headers = self()
        return int(status), dict(body), list(headers)


class InvalidRequest(StsError, rfc6749.InvalidRequestError):  # type: ignore[misc]
    default_description = "The request is invalid."


class InvalidClient(StsError, rfc6749.InvalidClientError):  # type: ignore[misc]
    """Client authentication failed. Always 401 with ``WWW-Authenticate`` (RFC 6749 §5.2)."""

    default_description = "Client authentication failed."

    def __init__(self, reason: str, description: str | None = None) -> None:
        super().__init__(reason, description, status_code=401)


class UnauthorizedClient(StsError, rfc6749.UnauthorizedClientError):  # type: ignore[misc]
    default_description = "The client may not use this grant type."


class UnsupportedGrantType(StsError):
    error = "unsupported_grant_type"
    default_description = "The grant type is not supported."


class InvalidScope(StsError, rfc6749.InvalidScopeError):  # type: ignore[misc]
    default_description = "The requested scope exceeds what is allowed."


class InvalidTarget(StsError):
    """RFC 8693 §2.2.2 / RFC 8707 §2: unknown or refused target (the same for both)."""

    error = "invalid_target"
    default_description = "The requested target is unknown or not allowed."


class InvalidDpopProof(StsError):
    """RFC 9449 §5, §7.1: the DPoP proof is missing where required, malformed or fails a check."""

    error = "invalid_dpop_proof"
    default_description = "The DPoP proof is invalid."


class UseDpopNonce(StsError):
    """RFC 9449 §8: the proof must carry the server's nonce, sent in ``DPoP-Nonce``."""

    error = "use_dpop_nonce"
    default_description = "A DPoP nonce is required."

    def __init__(self, reason: str, nonce: str) -> None:
        super().__init__(reason)
        self.nonce = nonce

    def get_headers(self) -> Headers:
        headers: Headers = super().get_headers()
        headers.append(("DPoP-Nonce", self.nonce))
        return headers


class TemporarilyUnavailable(StsError):
    error = "temporarily_unavailable"
    status_code = 503
    default_description = "The service is temporarily unavailable."

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.retry_after = retry_after

    def get_headers(self) -> Headers:
        headers: Headers = super().get_headers()
        headers.append(("Retry-After", str(self.retry_after)))
        return headers


class ServerError(StsError):
    error = "server_error"
    status_code = 500
    default_description = "The server encountered an unexpected error."
