"""Asking the policy (DESIGN §10): "would this exchange be allowed, and why?"

One function for every front end (the AuthZEN endpoint, ``sts policy explain``): the
exchange's own evaluator answers (:class:`~sts.core.policy_query.PolicyEvaluator`, handed in
by the front end from the runtime, so this layer never reaches into the protocol), and the
question is audited as a query, ``policy.evaluated``, naming who asked: it is never a token
issuance or a denied attempt, and it mints nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sts.core.errors import InvalidScope
from sts.core.logs import redact
from sts.core.policy_query import MAX_QUERY_CHAIN, PolicyAnswer, PolicyEvaluator, PolicyQuery
from sts.core.ports import AuditRecord, Store
from sts.core.scopes import parse_scope, scope_str
from sts.services.errors import Invalid

#: The audit event each evaluation leaves.
EVALUATED = "policy.evaluated"


def explain(
    store: Store,
    evaluator: PolicyEvaluator,
    query: PolicyQuery,
    *,
    by: str,
    now: int,
    request_id: str = "",
) -> PolicyAnswer:
    """The answer to ``query``, with its audit event written in the caller's transaction."""
    answer = evaluator(query, store, now)
    detail: dict[str, Any] = {
        "decision": "allowed" if answer.allowed else "denied",
        "actor": answer.actor,
        "subject_issuer": answer.subject_issuer,
        "by_token": query.subject_token is not None,
    }
    if not answer.allowed:
        detail["error"] = answer.error
    if answer.expires_in is not None:
        detail["expires_in"] = answer.expires_in
    store.audit(
        AuditRecord(
            at=now,
            event=EVALUATED,
            decision="done",
            reason=redact(answer.reason),
            request_id=request_id,
            client_id=by,
            subject=redact(answer.subject) if answer.subject else None,
            target=redact(answer.target),
            scope=_scope(query, answer),
            rule_id=answer.rule_id,
            chain=tuple(redact(a) for a in reversed(answer.chain)),
            detail=detail,
        )
    )
    return answer


def _scope(query: PolicyQuery, answer: PolicyAnswer) -> str | None:
    """The scope granted, else the scope asked for."""
    scopes = answer.scope if answer.scope is not None else query.scope
    return scope_str(scopes) if scopes else None


def answer_dict(answer: PolicyAnswer) -> dict[str, Any]:
    """The answer as the CLI's ``--json`` prints it."""
    return {
        "decision": answer.allowed,
        "actor": answer.actor,
        "subject": answer.subject,
        "subject_issuer": answer.subject_issuer,
        "target": answer.target,
        "chain": list(answer.chain),
        "rule_id": answer.rule_id,
        "scope": scope_str(answer.scope) if answer.scope is not None else None,
        "expires_in": answer.expires_in,
        "error": answer.error,
        "error_description": answer.description,
        "reason": answer.reason,
        "rules_weighed": list(answer.rules),
    }


#: Longest NHI name or ``sub`` a question names.
MAX_NAME = 2048


def _name(value: str, field: str) -> str:
    if not value or len(value) > MAX_NAME:
        raise Invalid(f"{field}: must be 1-{MAX_NAME} characters", field)
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value):
        raise Invalid(f"{field}: must not contain control characters", field)
    return value


def split_subject(value: str, issuers: list[str], own_issuer: str) -> tuple[str | None, str]:
    """``ISSUER:SUB`` as (issuer, sub) where ISSUER is a trusted issuer (the longest that
    prefixes the value) or this STS; anything else is an NHI of this STS (issuer ``None``)."""
    for issuer in sorted([*issuers, own_issuer], key=len, reverse=True):
        if value.startswith(issuer + ":") and len(value) > len(issuer) + 1:
            sub = value[len(issuer) + 1 :]
            return (None if issuer == own_issuer else issuer), sub
    return None, value


def build_query(
    *,
    actor: str,
    target: str,
    scope: str | None,
    subject: str | None,
    subject_issuer: str | None,
    subject_token: str | None,
    chain: list[str],
) -> PolicyQuery:
    """A question as an administrator words it on the command line, checked."""
    if (subject is None) == (subject_token is None):
        raise Invalid("give exactly one of --subject or --subject-token", "subject")
    if subject_token is not None and chain:
        raise Invalid("a subject token carries its own chain", "chain")
    if subject_token is not None and subject_issuer is not None:
        raise Invalid("a subject token names its own issuer", "subject_issuer")
    if subject_token is not None and not subject_token:
        raise Invalid("subject token: empty", "subject_token")
    if len(chain) > MAX_QUERY_CHAIN:
        raise Invalid(f"chain: at most {MAX_QUERY_CHAIN} NHIs", "chain")
    try:
        scopes = parse_scope(scope)
    except InvalidScope:
        raise Invalid("scope: must be space-delimited scope tokens", "scope") from None
    return PolicyQuery(
        actor=_name(actor, "actor"),
        target=_name(target, "target"),
        scope=scopes,
        subject=None if subject is None else _name(subject, "subject"),
        subject_issuer=None if subject_issuer is None else _name(subject_issuer, "subject"),
        subject_token=subject_token,
        chain=tuple(_name(n, "chain") for n in chain),
    )


def with_subject(query: PolicyQuery, issuer: str | None, sub: str) -> PolicyQuery:
    """The query about this subject (``issuer`` ``None``: an NHI of this STS)."""
    return dataclasses.replace(query, subject=sub, subject_issuer=issuer)
