"""The exchange request's syntax (RFC 8693 §2.1), checked before any token is opened.

Required and paired parameters, known token types, bounded sizes: everything that can be
judged from the form alone. Meaning (signatures, chains, rules) comes after.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sts.core.errors import InvalidRequest
from sts.core.scopes import parse_scope
from sts.core.token_types import ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE, JWT_TOKEN_TYPE

if TYPE_CHECKING:
    from sts.oauth.rfc6749.request import OAuthRequest

SUBJECT_TOKEN_TYPES = frozenset({ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, ID_TOKEN_TYPE})
ACTOR_TOKEN_TYPES = frozenset({ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE})
#: Both yield the same JWT access token (DESIGN §5).
REQUESTED_TOKEN_TYPES = frozenset({ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE})


@dataclass(frozen=True)
class ExchangeParams:
    subject_token: str
    subject_token_type: str
    actor_token: str | None
    actor_token_type: str | None
    requested_token_type: str
    scope: frozenset[str] | None
    audiences: list[str]
    resources: list[str]


def _bounded(request: OAuthRequest, name: str, max_bytes: int) -> str | None:
    value = request.param(name)
    if value is not None and len(value) > max_bytes:
        raise InvalidRequest(f"{name} too large", "Parameter too large.")
    return value


def parse_exchange_params(request: OAuthRequest, max_token_bytes: int) -> ExchangeParams:
    subject_token = _bounded(request, "subject_token", max_token_bytes)
    subject_type = _bounded(request, "subject_token_type", 256)
    actor_token = _bounded(request, "actor_token", max_token_bytes)
    actor_type = _bounded(request, "actor_token_type", 256)
    requested = _bounded(request, "requested_token_type", 256)
    if not subject_token or not subject_type:
        raise InvalidRequest(
            "missing subject_token or subject_token_type",
            "Missing subject_token or subject_token_type.",
        )
    if subject_type not in SUBJECT_TOKEN_TYPES:
        raise InvalidRequest("unsupported subject_token_type", "Unsupported token type.")
    # RFC 8693 §2.1: actor_token_type is REQUIRED when actor_token is present, and MUST NOT
    # be included otherwise.
    if (actor_token is None) != (actor_type is None):
        raise InvalidRequest(
            "actor_token and actor_token_type must come together",
            "actor_token and actor_token_type must come together.",
        )
    if actor_token is not None and not actor_token:
        raise InvalidRequest("empty actor_token", "Missing actor_token.")
    if actor_type is not None and actor_type not in ACTOR_TOKEN_TYPES:
        raise InvalidRequest("unsupported actor_token_type", "Unsupported token type.")
    if requested is not None and requested not in REQUESTED_TOKEN_TYPES:
        raise InvalidRequest("unsupported requested_token_type", "Unsupported token type.")
    return ExchangeParams(
        subject_token=subject_token,
        subject_token_type=subject_type,
        actor_token=actor_token,
        actor_token_type=actor_type,
        requested_token_type=requested or ACCESS_TOKEN_TYPE,
        scope=parse_scope(request.param("scope")),
        audiences=request.params("audience"),
        resources=request.params("resource"),
    )
