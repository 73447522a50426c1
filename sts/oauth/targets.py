"""Naming the next hop: RFC 8693 ``audience`` and RFC 8707 ``resource`` (DESIGN §5.6).

Every value must name the same registered, active NHI. Unknown, disabled, malformed or
conflicting targets all answer the same ``invalid_target``, so the registry cannot be probed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sts.core.errors import InvalidTarget

if TYPE_CHECKING:
    from sts.core.domain import Target
    from sts.core.ports import TargetStore

MAX_TARGET_VALUES = 10
MAX_TARGET_LENGTH = 2048


def _is_absolute_uri(value: str) -> bool:
    """RFC 8707 §2: an absolute URI (RFC 3986 §4.3) without a fragment."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return bool(parts.scheme) and not parts.fragment and "#" not in value


def named_target(audiences: list[str], resources: list[str]) -> str | None:
    """The next hop as the request names it, unresolved: what the audit trail of a refused
    target records (DESIGN §8: denied attempts are recorded with the target they aimed at)."""
    named = audiences or resources
    return named[0][:MAX_TARGET_LENGTH] if named else None


def resolve_target(store: TargetStore, audiences: list[str], resources: list[str]) -> Target | None:
    """The one target named by the request, or ``None`` if it names none."""
    if not audiences and not resources:
        return None
    if len(audiences) + len(resources) > MAX_TARGET_VALUES:
        raise InvalidTarget("too many audience/resource values")
    found: dict[int, Target] = {}
    for value in audiences + resources:
        if not value or len(value) > MAX_TARGET_LENGTH:
            raise InvalidTarget("empty or oversized target value")
    for value in audiences:
        target = store.target_by_name(value)
        if target is None and _is_absolute_uri(value):
            target = store.target_by_resource(value)
        if target is None:
            raise InvalidTarget("unknown audience")
        found[target.id] = target
    for value in resources:
        if not _is_absolute_uri(value):
            raise InvalidTarget("resource is not an absolute URI without fragment")
        target = store.target_by_resource(value)
        if target is None:
            raise InvalidTarget("unknown resource")
        found[target.id] = target
    if len(found) != 1:
        raise InvalidTarget("audience/resource name more than one target")
    (target,) = found.values()
    if target.status != "active":
        raise InvalidTarget("target disabled")
    return target
