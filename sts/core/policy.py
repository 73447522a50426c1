"""Delegation policy (DESIGN §5.5, §5.7, §5.8): a pure function of the facts, default deny.

Rules are data. For an actor, a target and a subject chain, the decision picks the rule that
allows this hop and computes the granted scope (only narrows) and expiry (only shortens). No
rule naming this actor and target at all is ``invalid_target``; rules that exist but do not
cover this subject or chain are ``invalid_request``; a scope beyond every candidate is
``invalid_scope``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sts.core.chain import Chain
from sts.core.errors import InvalidRequest, InvalidScope, InvalidTarget
from sts.core.ports import RuleView


@dataclass(frozen=True)
class Subject:
    """Who the chain acts for, as rules match it."""

    sub: str
    #: Issuer of the original subject (a trusted issuer, or this STS for NHI-rooted chains).
    issuer: str
    #: Kind of the subject when it is a registered NHI, else ``None``.
    nhi_kind: str | None
    #: The scopes the subject token caps the result with; ``None``: no cap from the token.
    scope_cap: frozenset[str] | None
    #: Outermost actor of the subject token (or the NHI subject itself when no one acted yet).
    upstream: str | None
    #: The chain started with an NHI's own token (its subject is an NHI of this STS), not
    #: with a trusted issuer's subject.
    rooted_here: bool


@dataclass(frozen=True)
class Decision:
    rule: RuleView
    scopes: frozenset[str]
    exp: int


def _subject_matches(rule: RuleView, subject: Subject) -> bool:
    if rule.subject_type == "any":
        return True
    if rule.subject_type == "sub":
        # DESIGN §3: a subject is (issuer, sub). A person whose sub equals an NHI's name is
        # not that NHI, nor the same-named subject of another issuer.
        if subject.sub != rule.subject_value:
            return False
        if rule.subject_issuer is None:
            return subject.rooted_here
        return subject.issuer == rule.subject_issuer
    if rule.subject_type == "issuer":
        return subject.issuer == rule.subject_value
    if rule.subject_type == "kind":
        return subject.nhi_kind == rule.subject_value
    return False


def _why_not(rule: RuleView, subject: Subject, chain: Chain, global_depth: int) -> str | None:
    """The reason this rule does not cover the hop, or ``None`` if it does."""
    if not _subject_matches(rule, subject):
        return f"rule {rule.id}: subject not covered"
    if rule.upstream_sub is not None and subject.upstream != rule.upstream_sub:
        return f"rule {rule.id}: upstream actor not allowed"
    limit = min(global_depth, rule.max_depth if rule.max_depth is not None else global_depth)
    if chain.depth > limit:
        return f"rule {rule.id}: chain depth {chain.depth} exceeds {limit}"
    return None


def decide(
    *,
    rules: list[RuleView],
    subject: Subject,
    new_chain: Chain,
    requested: frozenset[str] | None,
    now: int,
    default_ttl: int,
    max_ttl: int,
    max_depth: int,
    token_exps: tuple[int, ...],
) -> Decision:
    """Choose the rule for this hop, the granted scope and the expiry.

    ``rules`` are the enabled, unexpired rules of this actor naming this target (or ``*``).
    ``token_exps`` are the ``exp`` of the subject token and of the actor token, if any.
    """
    if not rules:
        # First: a target this actor may not reach answers like an unknown one (§5.6).
        raise InvalidTarget("no rule lets this actor reach this target")
    if new_chain.depth > max_depth:
        raise InvalidRequest(f"chain depth {new_chain.depth} exceeds global {max_depth}")
    reasons = [(_why_not(r, subject, new_chain, max_depth), r) for r in rules]
    covering = [r for why, r in reasons if why is None]
    if not covering:
        raise InvalidRequest("; ".join(why for why, _ in reasons if why)[:500])

    def allowed(rule: RuleView) -> frozenset[str]:
        cap = subject.scope_cap
        return rule.scopes if cap is None else rule.scopes & cap

    if requested is None:
        # The largest allowed scope; ties go to the oldest rule (the list is ordered).
        rule = max(covering, key=lambda r: len(allowed(r)))
        scopes = allowed(rule)
    else:
        fitting = [r for r in covering if requested <= allowed(r)]
        if not fitting:
            raise InvalidScope("requested scope exceeds the rule's and the subject's scope")
        rule, scopes = fitting[0], requested
    if not scopes:
        # DESIGN §5.7: a token with no scope is never minted.
        raise InvalidScope("no scope left: the rule's and the subject's scopes do not meet")
    lifetimes = [now + default_ttl, now + max_ttl, *token_exps]
    if rule.max_ttl is not None:
        lifetimes.append(now + rule.max_ttl)
    exp = min(lifetimes)
    if exp <= now:
        raise InvalidRequest("no lifetime left for the new token")
    return Decision(rule, scopes, exp)
