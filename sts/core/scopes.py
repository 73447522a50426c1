"""Scopes (RFC 6749 §3.3): a space-delimited, order-free set of scope tokens.

The reading is the service SDK's (:mod:`chain_sts_client.scopes`), so the STS and the services
that check the scopes it granted agree; the STS adds the refusal of a malformed request.
"""

from __future__ import annotations

from chain_sts_client.scopes import MAX_SCOPE_LENGTH, scope_set, scope_str, well_formed_scope

from sts.core.errors import InvalidScope

__all__ = ["MAX_SCOPE_LENGTH", "parse_scope", "scope_set", "scope_str"]


def parse_scope(value: str | None) -> frozenset[str] | None:
    """The requested scope set, ``None`` when not requested; malformed is ``invalid_scope``."""
    if value is None:
        return None
    if not well_formed_scope(value):
        raise InvalidScope("malformed scope parameter", "The scope parameter is malformed.")
    return scope_set(value)
