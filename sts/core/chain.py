"""The actor chain as one immutable value (RFC 8693 §4.1, DESIGN §5.9).

A token's ``act`` claim nests the actors newest-outermost: ``{"sub": current, "act": {"sub":
previous, ...}}``. :class:`Chain` holds them as a tuple, outermost first, and is the only
place that reads or builds ``act``: grants never edit claim dictionaries in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Hard cap on parsed nesting, whatever the configured depth: bounds work on hostile input.
MAX_PARSE_DEPTH = 32
MAX_MEMBER_LENGTH = 2048


class ChainError(ValueError):
    """The ``act`` (or ``may_act``) claim is malformed, too deep, or a hop would cycle."""


@dataclass(frozen=True)
class Actor:
    """An identity in ``act``: ``sub``, and ``iss`` where the actor is from another issuer."""

    sub: str
    iss: str | None = None

    def claim(self) -> dict[str, str]:
        return {"sub": self.sub} if self.iss is None else {"sub": self.sub, "iss": self.iss}

    @classmethod
    def parse(cls, value: Any) -> Actor:
        if not isinstance(value, dict):
            raise ChainError("actor claim is not an object")
        sub, iss = value.get("sub"), value.get("iss")
        if not isinstance(sub, str) or not sub or len(sub) > MAX_MEMBER_LENGTH:
            raise ChainError("actor claim has no valid sub")
        if iss is not None and (
            not isinstance(iss, str) or not iss or len(iss) > MAX_MEMBER_LENGTH
        ):
            raise ChainError("actor claim has an invalid iss")
        return cls(sub, iss)


@dataclass(frozen=True)
class Chain:
    """Actors of a token, outermost (current) first, deepest (first actor) last."""

    actors: tuple[Actor, ...] = ()

    @classmethod
    def from_act(cls, act: Any) -> Chain:
        """Parse a nested ``act`` claim (``None``: no chain). Only identity members are read;
        anything else in a level is ignored, never copied forward."""
        actors: list[Actor] = []
        level = act
        while level is not None:
            if len(actors) >= MAX_PARSE_DEPTH:
                raise ChainError("act nesting too deep")
            actors.append(Actor.parse(level))
            level = level.get("act")
        return cls(tuple(actors))

    @property
    def depth(self) -> int:
        return len(self.actors)

    @property
    def outermost(self) -> Actor | None:
        return self.actors[0] if self.actors else None

    def subs(self) -> tuple[str, ...]:
        return tuple(a.sub for a in self.actors)

    def to_act(self) -> dict[str, Any] | None:
        """The nested ``act`` claim, built from the innermost actor outwards."""
        act: dict[str, Any] | None = None
        for actor in reversed(self.actors):
            level: dict[str, Any] = actor.claim()
            if act is not None:
                level["act"] = act
            act = level
        return act

    def after_hop(self, actor: Actor, subject: str, *, subject_is_nhi: bool = True) -> Chain:
        """The chain of the token this actor mints from a subject token with this chain.

        - the actor is the subject and there is no chain yet: no ``act`` at all;
        - the actor is already outermost (it exchanges its own self-addressed token): unchanged;
        - the actor appears deeper in the chain, or is the subject of a delegated chain: cycle.

        ``subject_is_nhi`` is false when the subject comes from another issuer (a person): its
        ``sub`` lives in that issuer's namespace and never names an actor, even if equal.
        """
        is_subject = subject_is_nhi and actor.sub == subject and actor.iss is None
        if not self.actors and is_subject:
            return self
        if self.outermost == actor:
            return self
        if actor in self.actors or is_subject:
            raise ChainError("actor already in the chain")
        return Chain((actor, *self.actors))
