"""Asking the policy (DESIGN §10): "would this exchange be allowed, and why?"

One function for every front end (the AuthZEN endpoint, ``sts policy explain``): the
exchange's own evaluator answers (:class:`~sts.core.policy_query.PolicyEvaluator`, handed in
by the front end from the runtime, so this layer never reaches into the protocol), and the
question is audited as a query, ``policy.evaluated``, naming who asked: it is never a token
issuance or a denied attempt, and it mints nothing.
"""

from __future__ import annotations

from typing import Any

from sts.core.logs import redact
from sts.core.policy_query import PolicyAnswer, PolicyEvaluator, PolicyQuery
from sts.core.ports import AuditRecord, Store
from sts.core.scopes import scope_str

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
