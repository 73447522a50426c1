"""RFC 8414: discovering the STS from its issuer identifier.

A service is configured with one URL, the STS's issuer; everything else (token endpoint,
JWKS, revocation feed) comes from the metadata document, whose ``issuer`` must be exactly the
configured one (§3.3) so that a compromised or misrouted document cannot redirect tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from chain_sts_client.errors import StsUnavailable
from chain_sts_client.transport import Transport, UrllibTransport, check_url, get_json

WELL_KNOWN = "/.well-known/oauth-authorization-server"


def metadata_url(issuer: str) -> str:
    """RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path."""
    parts = urlsplit(check_url(issuer))
    if parts.query or parts.fragment:
        raise ValueError("an issuer identifier has no query or fragment (RFC 8414 §2)")
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN + path, "", ""))


@dataclass(frozen=True)
class ServerMetadata:
    """The parts of the STS metadata the SDK uses."""

    issuer: str
    token_endpoint: str
    jwks_uri: str
    introspection_endpoint: str | None = None
    revocation_endpoint: str | None = None
    revocation_feed_endpoint: str | None = None
    access_report_endpoint: str | None = None
    token_endpoint_auth_methods_supported: tuple[str, ...] = ()

    @classmethod
    def from_document(cls, data: Mapping[str, Any], expected_issuer: str) -> ServerMetadata:
        if data.get("issuer") != expected_issuer:
            raise StsUnavailable("metadata issuer differs from the configured issuer")

        def url(name: str, required: bool = False) -> str | None:
            value = data.get(name)
            if value is None and not required:
                return None
            try:
                return check_url(value) if isinstance(value, str) else check_url("")
            except ValueError:
                raise StsUnavailable(f"metadata {name} is missing or not a URL") from None

        methods = data.get("token_endpoint_auth_methods_supported") or []
        return cls(
            issuer=expected_issuer,
            token_endpoint=url("token_endpoint", True) or "",
            jwks_uri=url("jwks_uri", True) or "",
            introspection_endpoint=url("introspection_endpoint"),
            revocation_endpoint=url("revocation_endpoint"),
            revocation_feed_endpoint=url("revocation_feed_endpoint"),
            access_report_endpoint=url("access_report_endpoint"),
            token_endpoint_auth_methods_supported=tuple(str(m) for m in methods),
        )


def discover(issuer: str, transport: Transport | None = None) -> ServerMetadata:
    """Fetch and check the metadata of the STS whose issuer identifier is ``issuer``."""
    document = get_json(transport or UrllibTransport(), metadata_url(issuer))
    return ServerMetadata.from_document(document, issuer)
