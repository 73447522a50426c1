"""OpenID AuthZEN Authorization API 1.0: the Access Evaluation API and PDP metadata.

The STS answers one question as a policy decision point (DESIGN §10): would this token
exchange be allowed, and why. The AuthZEN 4-tuple (§6.1) carries it so:

- ``subject`` (§5.1) is who the chain acts for: ``id`` is its ``sub``;
  ``properties.issuer`` the trusted issuer it comes from (absent: an NHI of this STS), or
  ``properties.subject_token`` a real subject token, judged as the token endpoint would;
- ``resource`` (§5.2) is the next hop: ``id`` names it as ``audience`` would (an NHI's name
  or one of its resource URIs);
- ``action`` (§5.3) is the exchange: ``name`` is the requested scope (space-delimited,
  RFC 6749 §3.3);
- ``context`` (§5.4) holds the rest of the request: ``actor``, the NHI that would exchange
  (required), and ``chain``, the NHIs that acted so far, first hop first (not with a
  subject token, which carries its own).

Other members and properties are accepted and ignored. The answer (§6.2) is ``decision``
with a ``context``: the deciding rule, the scope and lifetime granted, and for a refusal a
Reason Object whose ``reason_admin`` is the precise reason and whose
``reason_user`` is the token endpoint's public description, next to its ``error`` code.
Bad input is refused before anything is looked up, naming the member at fault.
"""

from __future__ import annotations

from typing import Any

from chain_sts_client.scopes import MAX_SCOPE_LENGTH, scope_set, scope_str, well_formed_scope

from sts.core.policy_query import MAX_QUERY_CHAIN, PolicyAnswer, PolicyQuery

__all__ = [
    "EVALUATION_PATH",
    "METADATA_PATH",
    "EvaluationError",
    "evaluation_response",
    "metadata",
    "parse_evaluation",
]

#: The HTTPS binding of the Access Evaluation API, under the ``/v1/`` version path (§4).
EVALUATION_PATH = "/access/v1/evaluation"
#: §9.2: where the PDP metadata is published.
METADATA_PATH = "/.well-known/authzen-configuration"
#: Longest identifier accepted (a ``sub``, an issuer, a resource URI).
MAX_ID = 2048
#: Longest NHI name (a ``client_id``).
MAX_NAME = 255
#: Longest entity ``type``.
MAX_TYPE = 255


class EvaluationError(ValueError):
    """The request is not an Access Evaluation request this PDP can read (HTTPS binding: 400)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _object(body: dict[str, Any], name: str, *, required: bool) -> dict[str, Any]:
    value = body.get(name)
    if value is None and not required and name not in body:
        return {}
    if not isinstance(value, dict):
        raise EvaluationError(name, "is required" if name not in body else "must be an object")
    return value


def _string(
    entity: dict[str, Any], where: str, name: str, max_length: int, *, required: bool = True
) -> str | None:
    """A member that is a non-empty string without control characters (which no stored
    identity holds: the registry could not even record them)."""
    field = f"{where}.{name}"
    if name not in entity:
        if required:
            raise EvaluationError(field, "is required")
        return None
    value = entity[name]
    if not isinstance(value, str):
        raise EvaluationError(field, "must be a string")
    if not value:
        raise EvaluationError(field, "must not be empty")
    if len(value) > max_length:
        raise EvaluationError(field, f"must be at most {max_length} characters")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise EvaluationError(field, "must not contain control characters or lone surrogates")
    return value


def _properties(entity: dict[str, Any], where: str) -> dict[str, Any]:
    if "properties" not in entity:
        return {}
    value = entity["properties"]
    if not isinstance(value, dict):
        raise EvaluationError(f"{where}.properties", "must be an object")
    return value


def _chain(context: dict[str, Any]) -> tuple[str, ...]:
    if "chain" not in context:
        return ()
    value = context["chain"]
    if not isinstance(value, list):
        raise EvaluationError("context.chain", "must be an array of NHI names")
    if len(value) > MAX_QUERY_CHAIN:
        raise EvaluationError("context.chain", f"must name at most {MAX_QUERY_CHAIN} NHIs")
    names = []
    for i in range(len(value)):
        name = _string({str(i): value[i]}, "context.chain", str(i), MAX_NAME)
        assert name is not None
        names.append(name)
    return tuple(names)


def parse_evaluation(body: Any, max_token_bytes: int) -> PolicyQuery:
    """§6.1: the Access Evaluation request as a :class:`PolicyQuery`."""
    if not isinstance(body, dict):
        raise EvaluationError("(body)", "must be a JSON object")
    subject = _object(body, "subject", required=True)
    resource = _object(body, "resource", required=True)
    action = _object(body, "action", required=True)
    context = _object(body, "context", required=False)
    _string(subject, "subject", "type", MAX_TYPE)
    sub = _string(subject, "subject", "id", MAX_ID)
    props = _properties(subject, "subject")
    issuer = _string(props, "subject.properties", "issuer", MAX_ID, required=False)
    token = _string(props, "subject.properties", "subject_token", max_token_bytes, required=False)
    _string(resource, "resource", "type", MAX_TYPE)
    target = _string(resource, "resource", "id", MAX_ID)
    _properties(resource, "resource")
    name = _string(action, "action", "name", MAX_SCOPE_LENGTH)
    _properties(action, "action")
    if name is None or not well_formed_scope(name):
        raise EvaluationError("action.name", "must be a scope: space-delimited scope tokens")
    actor = _string(context, "context", "actor", MAX_NAME)
    chain = _chain(context)
    if token is not None and issuer is not None:
        raise EvaluationError("subject.properties.issuer", "must not be given with a subject_token")
    if token is not None and chain:
        raise EvaluationError("context.chain", "must not be given with a subject_token")
    assert actor is not None and target is not None
    return PolicyQuery(
        actor=actor,
        target=target,
        scope=scope_set(name),
        subject=sub,
        subject_issuer=issuer,
        subject_token=token,
        chain=chain,
    )


def evaluation_response(answer: PolicyAnswer) -> dict[str, Any]:
    """§6.2: the decision, and the context that explains it."""
    context: dict[str, Any] = {
        "rule_id": answer.rule_id,
        "actor": answer.actor,
        "subject": {"id": answer.subject, "issuer": answer.subject_issuer},
        "target": answer.target,
        "chain": list(answer.chain),
        "rules_weighed": list(answer.rules),
    }
    if answer.allowed:
        assert answer.scope is not None
        context.update(scope=scope_str(answer.scope), expires_in=answer.expires_in)
    else:
        context.update(
            id=answer.error,
            error=answer.error,
            error_description=answer.description,
            reason_admin={"en": answer.reason},
            reason_user={"en": answer.description},
        )
    return {"decision": answer.allowed, "context": context}


def metadata(issuer: str) -> dict[str, str]:
    """§9.1: the PDP identifier (this STS's issuer) and the one API it serves."""
    base = issuer.rstrip("/")
    return {"policy_decision_point": issuer, "access_evaluation_endpoint": base + EVALUATION_PATH}
