"""Scopes (RFC 6749 §3.3): a space-delimited, order-free set of scope tokens.

One reading of a scope string for the STS and the services that check scopes it granted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), space-delimited.
_SCOPE = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$")
MAX_SCOPE_LENGTH = 1024


def scope_set(scope: str | Iterable[str] | None) -> frozenset[str]:
    """The set of scope tokens of a scope string (or of an iterable of tokens)."""
    if not scope:
        return frozenset()
    if isinstance(scope, str):
        return frozenset(scope.split())
    return frozenset(scope)


def scope_str(scopes: Iterable[str]) -> str:
    """The canonical scope string: tokens sorted, one space apart."""
    return " ".join(sorted(scopes))


def well_formed_scope(value: str) -> bool:
    """Whether ``value`` is a scope parameter as RFC 6749 §3.3 writes one: scope tokens of
    the allowed characters, one space apart, at most :data:`MAX_SCOPE_LENGTH` long."""
    return len(value) <= MAX_SCOPE_LENGTH and _SCOPE.match(value) is not None
