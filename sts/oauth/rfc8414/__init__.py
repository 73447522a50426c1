"""RFC 8414: authorization server metadata."""

from __future__ import annotations

from typing import Any

from sts.core.domain import ASYMMETRIC_JWS_ALGORITHMS, AUTH_METHODS
from sts.core.settings import Settings

METADATA_PATH = "/.well-known/oauth-authorization-server"
JWKS_PATH = "/jwks.json"
TOKEN_PATH = "/token"  # noqa: S105
INTROSPECTION_PATH = "/introspect"
REVOCATION_PATH = "/revoke"
FEED_PATH = "/revocations"
#: Where a token's audience reports what it did under it (DESIGN §10).
ACCESS_REPORT_PATH = "/access-reports"


def metadata(settings: Settings, grant_types: list[str]) -> dict[str, Any]:
    base = settings.issuer.rstrip("/")
    return {
        "issuer": settings.issuer,
        "token_endpoint": base + TOKEN_PATH,
        "jwks_uri": base + JWKS_PATH,
        "introspection_endpoint": base + INTROSPECTION_PATH,
        "introspection_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint": base + REVOCATION_PATH,
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_feed_endpoint": base + FEED_PATH,
        "access_report_endpoint": base + ACCESS_REPORT_PATH,
        "access_report_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "grant_types_supported": grant_types,
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(ASYMMETRIC_JWS_ALGORITHMS),
        # RFC 9449 §5.1: DPoP proofs accepted at the token endpoint.
        "dpop_signing_alg_values_supported": list(ASYMMETRIC_JWS_ALGORITHMS),
        # No authorization endpoint: Chain STS issues tokens only at the token endpoint.
        "response_types_supported": [],
    }
