"""Scopes (RFC 6749 §3.3): a space-delimited, order-free set of scope tokens."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sts.core.errors import InvalidScope

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


def parse_scope(value: str | None) -> frozenset[str] | None:
    """The requested scope set, ``None`` when not requested; malformed is ``invalid_scope``."""
    if value is None:
        return None
    if len(value) > MAX_SCOPE_LENGTH or not _SCOPE.match(value):
        raise InvalidScope("malformed scope parameter", "The scope parameter is malformed.")
    return scope_set(value)
