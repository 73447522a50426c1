"""Whether one hop of a chain is still in force: the one rule (DESIGN §5.2, §7).

Exchange and introspection refuse a token when any hop of its lineage is void; ``chain
show``, ``audit show`` and the admin API report each hop's state. All of them ask here, so a
hop can never be "active" on one screen and refused at the token endpoint.
"""

from __future__ import annotations

from typing import Literal

HopStatus = Literal["active", "revoked", "expired", "void"]


def void_reason(*, revoked: bool, actor_status: str | None, rule_in_force: bool) -> str | None:
    """Why a hop no longer counts, whatever its expiry, or ``None`` while it is in force.

    A missing actor (its NHI was deleted) is as void as a disabled one: an identity the
    registry no longer vouches for cannot hold up a chain."""
    if revoked:
        return "revoked"
    if actor_status != "active":
        return "actor disabled" if actor_status is not None else "actor missing"
    if not rule_in_force:
        return "rule no longer in force"
    return None


def hop_state(
    *,
    revoked: bool,
    expires_at: int,
    now: int,
    actor_status: str | None,
    rule_in_force: bool,
) -> tuple[HopStatus, str]:
    """A hop's own state with its reason: ``revoked``, ``expired``, ``void`` (its actor is
    disabled or gone, or the rule that minted it no longer in force) or ``active``."""
    if revoked:
        return "revoked", ""
    if expires_at <= now:
        return "expired", ""
    reason = void_reason(revoked=False, actor_status=actor_status, rule_in_force=rule_in_force)
    if reason is not None:
        return "void", reason
    return "active", ""


def rule_in_force(
    rule_id: str | None, status: str | None, expires_at: int | None, now: int
) -> bool:
    """A hop minted without a rule (``client_credentials``) depends on none."""
    if rule_id is None:
        return True
    return status == "enabled" and (expires_at is None or expires_at > now)
