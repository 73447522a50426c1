"""Asking the policy without an exchange (DESIGN §10): "would this hop be allowed, and why?"

A :class:`PolicyQuery` names what a token request would name (the actor that would exchange,
the subject it acts for, the chain so far, the next hop, the scope); the answer is a
:class:`PolicyAnswer`: the decision, the rule that decides it, and for a refusal the very
error code, public description and precise reason the token endpoint would give. Nothing is
minted. The evaluator is the exchange's own steps (:mod:`sts.oauth.rfc8693.evaluation`), so
the two never disagree; front ends reach it through :mod:`sts.services.policy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sts.core.ports import Store

#: Longest chain a query may name: the parse bound of an ``act`` claim.
MAX_QUERY_CHAIN = 32


@dataclass(frozen=True)
class PolicyQuery:
    """One hypothetical exchange.

    The subject is either a token (``subject_token``: judged exactly as the token endpoint
    judges it, its chain and scope included) or an identity (``subject`` and its
    ``subject_issuer``; ``None`` means an NHI of this STS) with the ``chain`` of NHIs that
    acted so far, **first hop first**. ``target`` names the next hop as ``audience`` would
    (an NHI's name, or one of its resource URIs); ``scope`` ``None`` asks for the largest
    allowed, as a token request without ``scope`` does.
    """

    actor: str
    target: str
    scope: frozenset[str] | None = None
    subject: str | None = None
    subject_issuer: str | None = None
    subject_token: str | None = None
    chain: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyAnswer:
    """The verdict on a :class:`PolicyQuery`.

    ``chain`` is the act chain the token would carry, first hop first. On a refusal,
    ``error`` and ``description`` are what the token endpoint would answer and ``reason`` the
    precise reason its audit event would record; ``rules`` are the rules of this actor that
    reach the target (the ones that were weighed).
    """

    allowed: bool
    subject: str | None
    subject_issuer: str | None
    actor: str
    target: str
    chain: tuple[str, ...] = ()
    rule_id: str | None = None
    scope: frozenset[str] | None = None
    expires_in: int | None = None
    error: str | None = None
    description: str | None = None
    reason: str = ""
    rules: tuple[str, ...] = ()


class PolicyEvaluator(Protocol):
    """Answers a query from the registry of one transaction, at ``now``."""

    def __call__(self, query: PolicyQuery, store: Store, now: int) -> PolicyAnswer: ...
