"""Checks of the input fields the registry services share: URIs, JWK Sets, scopes.

Each refuses with :class:`~sts.services.errors.Invalid` naming the field at fault.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import SplitResult, urlsplit

from jwt import PyJWKSet
from jwt.exceptions import PyJWKSetError

from sts.core.errors import InvalidScope
from sts.core.scopes import parse_scope, scope_str
from sts.services.errors import Invalid

_PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def split_uri(value: str) -> SplitResult | None:
    """The URI's parts, or ``None`` where it cannot be parsed (say, a broken IPv6 host)."""
    try:
        return urlsplit(value)
    except ValueError:
        return None


def check_uri(value: str, what: str, allow_http: bool = True) -> str:
    parts = split_uri(value)
    schemes = {"https", "http"} if allow_http else {"https"}
    if (
        parts is None
        or parts.scheme not in schemes
        or not parts.netloc
        or parts.fragment
        or len(value) > 2048
    ):
        raise Invalid(f"{what} must be an absolute {'/'.join(sorted(schemes))} URL", what)
    return value


def check_resource(value: str) -> str:
    parts = split_uri(value)
    if parts is None or not parts.scheme or parts.fragment or "#" in value or len(value) > 2048:
        raise Invalid(f"resource {value!r} must be an absolute URI without fragment", "resources")
    return value


def check_jwks(jwks: Any, what: str = "JWKS", field: str = "jwks") -> dict[str, Any]:
    """A public JWK Set PyJWT can use; private members are refused (RFC 7517 §5)."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise Invalid(f"{what} must be an object with a non-empty 'keys' array", field)
    for key in jwks["keys"]:
        if not isinstance(key, dict):
            raise Invalid(f"{what}: every key must be an object", field)
        if _PRIVATE_JWK_MEMBERS & set(key):
            raise Invalid(f"{what} must hold public keys only", field)
        if "kid" in key and not isinstance(key["kid"], str):
            raise Invalid(f"{what}: a kid must be a string (RFC 7517 §4.5)", field)
    try:
        PyJWKSet.from_dict(jwks)
    except (PyJWKSetError, ValueError, TypeError, KeyError) as exc:
        raise Invalid(f"{what} is not usable: {exc}", field) from None
    except Exception:  # whatever else a malformed key makes the JOSE library raise
        raise Invalid(f"{what} is not usable", field) from None
    return jwks


def load_jwks_text(text: str, what: str = "JWKS") -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        raise Invalid(f"{what} is not JSON", "jwks") from None
    return check_jwks(data, what)


def check_keys(jwks: dict[str, Any] | None, jwks_uri: str | None) -> None:
    """At most one of a JWK Set and a JWKS URI, each valid if given."""
    if jwks is not None and jwks_uri is not None:
        raise Invalid("give either a JWKS or a JWKS URI, not both", "jwks")
    if jwks is not None:
        check_jwks(jwks)
    if jwks_uri is not None:
        check_uri(jwks_uri, "jwks_uri")


def normal_scope(scope: str) -> str:
    """Space-separated RFC 6749 §3.3 scope tokens, sorted and de-duplicated."""
    try:
        scopes = parse_scope(scope) if scope else frozenset()
    except InvalidScope:
        raise Invalid("scope must be space-separated RFC 6749 §3.3 scope tokens", "scope") from None
    return scope_str(set(scopes or ()))
