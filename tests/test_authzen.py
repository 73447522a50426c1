"""OpenID AuthZEN 1.0 Access Evaluation (DESIGN §10): "would this exchange be allowed, and
why", answered by the exchange's own steps without minting anything, on both backends.

The parity tests make the same hop twice, once at the token endpoint and once as a question,
and require the same verdict: the same error code and public description as the token
endpoint's answer, the same precise reason as its audit event.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st
from schemathesis import GenerationMode
from sqlalchemy import func, select

from sts.admin_api import OPENAPI_PATH
from sts.oauth.authzen import EvaluationError, parse_evaluation
from sts.store.models import AuditEvent, IssuedToken
from tests.admin_api_helpers import Api, admin, admin_nhi, error, scoped, token_for
from tests.conftest import ISSUER, Registered
from tests.exchange_fixtures import PersonIdp, client_credentials, exchange
from tests.helpers import claims_of
from tests.test_openapi import FUZZ_CONFIG, _fuzz

__all__ = ["admin", "admin_nhi"]  # fixtures

EVALUATION = "/access/v1/evaluation"


@dataclass
class World:
    idp: PersonIdp
    nhis: dict[str, Registered]
    rules: dict[str, str]


@pytest.fixture
def world(admin: Api) -> World:
    """A person's IdP; web → agent → tool, each hop under one rule."""
    idp = PersonIdp()
    admin.ok(
        "POST",
        "/issuers",
        {"issuer": idp.issuer, "jwks": idp.keys.jwks, "audiences": ["web"], "scope_mode": "cap"},
        201,
    )
    nhis = {}
    for name, kind in [("web", "service"), ("agent", "agent"), ("tool", "workload")]:
        created = admin.ok("POST", "/nhis", {"name": name, "kind": kind}, 201)
        nhis[name] = Registered(name, created["client_secret"], name)
    rules = {
        "web": admin.ok(
            "POST",
            "/rules",
            {
                "actor": "web",
                "targets": ["agent"],
                "scope": "orders:read orders:write",
                "subject": f"issuer:{idp.issuer}",
                "max_ttl": 120,
            },
            201,
        )["id"],
        "agent": admin.ok(
            "POST",
            "/rules",
            {"actor": "agent", "targets": ["tool"], "scope": "orders:read", "upstream": "web"},
            201,
        )["id"],
    }
    return World(idp, nhis, rules)


def ask(
    api: Api,
    *,
    actor: str,
    target: str,
    scope: str,
    sub: str = "alice",
    issuer: str | None = None,
    token: str | None = None,
    chain: list[str] | None = None,
    **kwargs: Any,
) -> Any:
    properties: dict[str, Any] = {}
    if issuer is not None:
        properties["issuer"] = issuer
    if token is not None:
        properties["subject_token"] = token
    context: dict[str, Any] = {"actor": actor}
    if chain is not None:
        context["chain"] = chain
    body = {
        "subject": {"type": "user", "id": sub, "properties": properties},
        "resource": {"type": "nhi", "id": target},
        "action": {"name": scope},
        "context": context,
    }
    return api.client.post(
        EVALUATION,
        json=body,
        headers={"Authorization": f"Bearer {api.token}", **kwargs.pop("headers", {})},
        **kwargs,
    )


def counts(runtime: Any) -> tuple[int, int]:
    """Issued tokens, and token events (issued or denied), so far."""
    with runtime.engine.connect() as conn:
        issued = conn.execute(select(func.count()).select_from(IssuedToken)).scalar_one()
        events = conn.execute(
            select(func.count()).where(AuditEvent.event.in_(["token.issued", "token.denied"]))
        ).scalar_one()
    return issued, events


def last_event(runtime: Any, event: str) -> Any:
    with runtime.engine.connect() as conn:
        return conn.execute(
            select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.id.desc())
        ).first()


# -- metadata ---------------------------------------------------------------------------------
def test_pdp_metadata_when_fetched_then_names_this_sts_and_its_evaluation_endpoint(client):
    resp = client.get("/.well-known/authzen-configuration")
    assert resp.status_code == 200
    assert resp.get_json() == {
        "policy_decision_point": ISSUER,
        "access_evaluation_endpoint": f"{ISSUER}/access/v1/evaluation",
    }
    assert resp.headers["Cache-Control"] == "public, max-age=300"


# -- decisions --------------------------------------------------------------------------------
def test_evaluation_when_a_rule_allows_then_decision_rule_scope_lifetime_and_nothing_minted(
    admin, world, runtime
):
    before = counts(runtime)
    resp = ask(
        admin,
        actor="web",
        target="agent",
        scope="orders:read",
        issuer=world.idp.issuer,
        headers={"X-Request-ID": "bfe9eb29-ab87-4ca3-be83-a1d5d8305716"},
    )
    assert resp.status_code == 200
    assert resp.headers["X-Request-Id"] == "bfe9eb29-ab87-4ca3-be83-a1d5d8305716"
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.get_json() == {
        "decision": True,
        "context": {
            "rule_id": world.rules["web"],
            "actor": "web",
            "subject": {"id": "alice", "issuer": world.idp.issuer},
            "target": "agent",
            "chain": ["web"],
            "rules_weighed": [world.rules["web"]],
            "scope": "orders:read",
            "expires_in": 120,
        },
    }
    assert counts(runtime) == before
    event = last_event(runtime, "policy.evaluated")
    assert (event.decision, event.client_id, event.subject, event.target, event.scope) == (
        "done",
        "ops",
        "alice",
        "agent",
        "orders:read",
    )
    assert (event.rule_id, event.chain, event.jti, event.txn) == (
        world.rules["web"],
        ["web"],
        None,
        None,
    )
    assert event.request_id == "bfe9eb29-ab87-4ca3-be83-a1d5d8305716"
    assert event.detail == {
        "decision": "allowed",
        "actor": "web",
        "subject_issuer": world.idp.issuer,
        "by_token": False,
        "expires_in": 120,
    }


def test_evaluation_when_the_chain_so_far_is_named_then_judged_like_the_tokens_chain(admin, world):
    resp = ask(
        admin,
        actor="agent",
        target="tool",
        scope="orders:read",
        issuer=world.idp.issuer,
        chain=["web"],
    )
    body = resp.get_json()
    assert (body["decision"], body["context"]["chain"]) == (True, ["web", "agent"])
    assert body["context"]["rule_id"] == world.rules["agent"]
    # Another upstream than the rule's: the rule exists but does not cover this chain.
    resp = ask(
        admin,
        actor="agent",
        target="tool",
        scope="orders:read",
        issuer=world.idp.issuer,
        chain=["tool"],
    )
    rule = world.rules["agent"]
    assert resp.get_json() == {
        "decision": False,
        "context": {
            "id": "invalid_request",
            "error": "invalid_request",
            "error_description": "The request is invalid.",
            "reason_admin": {"en": f"rule {rule}: upstream actor not allowed"},
            "reason_user": {"en": "The request is invalid."},
            "rule_id": None,
            "actor": "agent",
            "subject": {"id": "alice", "issuer": world.idp.issuer},
            "target": "tool",
            "chain": ["tool", "agent"],
            "rules_weighed": [rule],
        },
    }


@pytest.mark.parametrize(
    ("question", "error_code", "description", "reason"),
    [
        (
            {"actor": "web", "target": "agent", "scope": "orders:delete"},
            "invalid_scope",
            "The requested scope exceeds what is allowed.",
            "requested scope exceeds the rule's and the subject's scope",
        ),
        (
            {"actor": "web", "target": "tool", "scope": "orders:read"},
            "invalid_target",
            "The requested target is unknown or not allowed.",
            "no rule lets this actor reach this target",
        ),
        (
            {"actor": "web", "target": "ghost", "scope": "orders:read"},
            "invalid_target",
            "The requested target is unknown or not allowed.",
            "unknown audience",
        ),
        (
            {"actor": "ghost", "target": "agent", "scope": "orders:read"},
            "invalid_client",
            "Client authentication failed.",
            "unknown client",
        ),
        (
            {
                "actor": "web",
                "target": "agent",
                "scope": "orders:read",
                "sub": "bob",
                "issuer": "https://other.example.test",
            },
            "invalid_request",
            "The request is invalid.",
            "subject token: issuer not trusted",
        ),
        (
            {"actor": "agent", "target": "tool", "scope": "orders:read", "chain": ["nobody"]},
            "invalid_request",
            "The request is invalid.",
            "chain: 'nobody' is not a registered NHI",
        ),
    ],
)
def test_evaluation_when_refused_then_the_token_endpoints_error_and_precise_reason(
    admin, world, question, error_code, description, reason
):
    question = {"issuer": world.idp.issuer, **question}
    body = ask(admin, **question).get_json()
    assert body["decision"] is False
    context = body["context"]
    assert (context["id"], context["error"], context["error_description"]) == (
        error_code,
        error_code,
        description,
    )
    assert context["reason_admin"] == {"en": reason}
    assert context["reason_user"] == {"en": description}
    assert context["rule_id"] is None and "scope" not in context


def test_evaluation_when_actor_disabled_then_invalid_client(admin, world):
    admin.ok("POST", "/nhis/web/disable", {"reason": "incident"})
    body = ask(
        admin, actor="web", target="agent", scope="orders:read", issuer=world.idp.issuer
    ).get_json()
    assert body["context"]["error"] == "invalid_client"
    assert body["context"]["reason_admin"] == {"en": "client disabled"}


# -- parity with the token endpoint ----------------------------------------------------------
def _denial_reason(runtime: Any) -> str:
    event = last_event(runtime, "token.denied")
    return str(event.reason)


@pytest.mark.parametrize(
    ("scope", "audience"),
    [
        ("orders:read", "agent"),
        ("orders:read orders:write", "agent"),
        ("orders:delete", "agent"),
        ("orders:read", "tool"),
        ("orders:read", "web"),
        ("orders:read", "ghost"),
    ],
)
def test_evaluation_with_a_subject_token_when_compared_with_the_exchange_then_same_verdict(
    client, admin, world, runtime, clock, scope, audience
):
    person = world.idp.token("alice", "web", clock.now(), scope="orders:read")
    before = counts(runtime)
    answer = ask(admin, actor="web", target=audience, scope=scope, token=person).get_json()
    assert counts(runtime) == before  # nothing minted, no token event
    resp = exchange(client, world.nhis["web"], person, audience=audience, scope=scope)
    context = answer["context"]
    if resp.status_code == 200:
        granted = resp.get_json()
        assert answer["decision"] is True
        assert (context["scope"], context["expires_in"]) == (
            granted["scope"],
            granted["expires_in"],
        )
    else:
        assert answer["decision"] is False
        assert resp.get_json() == {
            "error": context["error"],
            "error_description": context["error_description"],
        }
        assert context["reason_admin"] == {"en": _denial_reason(runtime)}


def test_evaluation_with_our_own_token_when_compared_with_the_exchange_then_same_verdict(
    client, admin, world, runtime, clock
):
    person = world.idp.token("alice", "web", clock.now(), scope="orders:read orders:write")
    first = exchange(client, world.nhis["web"], person, audience="agent").get_json()
    hop = first["access_token"]
    # The token's scope caps the next hop: asking for more than it carries is refused.
    for scope, target in [("orders:read", "tool"), ("orders:write", "tool")]:
        answer = ask(admin, actor="agent", target=target, scope=scope, token=hop).get_json()
        resp = exchange(client, world.nhis["agent"], hop, audience=target, scope=scope)
        if resp.status_code == 200:
            assert answer["decision"] is True
            assert answer["context"]["chain"] == ["web", "agent"]
            assert answer["context"]["expires_in"] == resp.get_json()["expires_in"]
        else:
            assert answer["decision"] is False
            assert answer["context"]["error"] == resp.get_json()["error"]
            assert answer["context"]["reason_admin"] == {"en": _denial_reason(runtime)}
    # The token is addressed to agent: only agent may exchange it; web asking is refused
    # exactly as the token endpoint refuses it.
    answer = ask(admin, actor="web", target="agent", scope="orders:read", token=hop).get_json()
    resp = exchange(client, world.nhis["web"], hop, audience="agent", scope="orders:read")
    assert resp.status_code == 400
    assert answer["context"]["error_description"] == resp.get_json()["error_description"]
    assert answer["context"]["reason_admin"] == {"en": _denial_reason(runtime)}
    # Revoked: the question sees it too.
    admin.ok("POST", "/revocations", {"kind": "token", "target": _jti(hop)}, 201)
    answer = ask(admin, actor="agent", target="tool", scope="orders:read", token=hop).get_json()
    revoked = "subject token: token or an ancestor is revoked"
    assert answer["context"]["reason_admin"] == {"en": revoked}


def _jti(token: str) -> str:
    return str(claims_of(token)["jti"])


def test_evaluation_with_a_subject_token_when_subject_id_differs_then_refused(admin, world, clock):
    person = world.idp.token("alice", "web", clock.now(), scope="orders:read")
    body = ask(
        admin, actor="web", target="agent", scope="orders:read", token=person, sub="mallory"
    ).get_json()
    assert body["context"]["reason_admin"] == {
        "en": "subject token: its sub is not the subject asked about"
    }


# -- who may ask ------------------------------------------------------------------------------
def test_evaluation_when_no_token_then_401_and_audited(client, runtime):
    resp = client.post(EVALUATION, json={})
    assert resp.status_code == 401
    assert resp.get_json() == error(401, "missing_token", "A bearer token is required.")
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="chain-sts-admin"'
    assert last_event(runtime, "admin.denied").detail["path"] == EVALUATION


def test_evaluation_when_token_lacks_sts_audit_then_403(client, admin, world):
    revoker = scoped(client, admin, "revoker", "sts:revoke")
    resp = ask(revoker, actor="web", target="agent", scope="orders:read")
    assert resp.status_code == 403
    assert resp.get_json() == error(
        403, "insufficient_scope", "This needs one of the scopes: sts:admin, sts:audit."
    )


def test_evaluation_when_auditor_asks_then_answered(client, admin, admin_nhi, world):
    auditor = Api(client, token_for(client, admin_nhi, scope="sts:audit"))
    resp = ask(auditor, actor="web", target="agent", scope="orders:read", issuer=world.idp.issuer)
    assert resp.status_code == 200 and resp.get_json()["decision"] is True


def test_evaluation_when_a_service_without_admin_scope_asks_then_403(client, world):
    token = client_credentials(client, world.nhis["web"]).get_json()["access_token"]
    resp = ask(Api(client, token), actor="web", target="agent", scope="orders:read")
    assert resp.status_code == 403


def test_evaluation_when_an_exchanged_token_is_presented_then_401(client, world, clock):
    person = world.idp.token("alice", "web", clock.now(), scope="orders:read")
    hop = exchange(client, world.nhis["web"], person, audience="agent").get_json()
    resp = ask(Api(client, hop["access_token"]), actor="web", target="agent", scope="a")
    assert resp.status_code == 401
    assert resp.get_json() == error(401, "invalid_token", "The token is not a valid admin token.")


# -- bad input --------------------------------------------------------------------------------
GOOD: dict[str, Any] = {
    "subject": {"type": "user", "id": "alice", "properties": {"issuer": "https://idp"}},
    "resource": {"type": "nhi", "id": "agent"},
    "action": {"name": "orders:read"},
    "context": {"actor": "web"},
}


def _with(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = body
    for part in parents:
        node = node[part]
    if value is _DROP:
        del node[last]
    else:
        node[last] = value
    return body


_DROP = object()
SCOPE_WORDS = "must be a scope: space-delimited scope tokens"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ([1], "(body)", "must be a JSON object"),
        ({}, "subject", "is required"),
        (_with("subject", "alice"), "subject", "must be an object"),
        (_with("subject.type", _DROP), "subject.type", "is required"),
        (_with("subject.id", 7), "subject.id", "must be a string"),
        (_with("subject.id", ""), "subject.id", "must not be empty"),
        (_with("subject.id", "a" * 2049), "subject.id", "must be at most 2048 characters"),
        (
            _with("subject.id", "al\x00ice"),
            "subject.id",
            "must not contain control characters or lone surrogates",
        ),
        (_with("subject.properties", []), "subject.properties", "must be an object"),
        (_with("subject.properties.issuer", 1), "subject.properties.issuer", "must be a string"),
        (_with("resource", _DROP), "resource", "is required"),
        (_with("resource.id", None), "resource.id", "must be a string"),
        (_with("action.name", "a  b"), "action.name", SCOPE_WORDS),
        (_with("action.properties", "x"), "action.properties", "must be an object"),
        (_with("context", _DROP), "context.actor", "is required"),
        (_with("context", None), "context", "must be an object"),
        (_with("context.chain", "web"), "context.chain", "must be an array of NHI names"),
        (_with("context.chain", ["web", 3]), "context.chain.1", "must be a string"),
        (_with("context.chain", ["w"] * 33), "context.chain", "must name at most 32 NHIs"),
        (
            _with("subject.properties", {"issuer": "https://idp", "subject_token": "x.y.z"}),
            "subject.properties.issuer",
            "must not be given with a subject_token",
        ),
        (
            _with("context", {"actor": "web", "chain": ["a"]})
            | {"subject": {"type": "u", "id": "a", "properties": {"subject_token": "x"}}},
            "context.chain",
            "must not be given with a subject_token",
        ),
    ],
)
def test_evaluation_when_body_is_not_an_evaluation_request_then_400_naming_the_member(
    admin, runtime, body, field, message
):
    before = counts(runtime)
    resp = admin.client.post(
        EVALUATION, json=body, headers={"Authorization": f"Bearer {admin.token}"}
    )
    assert resp.status_code == 400
    assert resp.get_json() == error(
        400,
        "invalid_evaluation",
        f"The request is invalid: {field}: {message}",
        fields=[{"field": field, "message": message}],
    )
    assert counts(runtime) == before


def test_evaluation_when_body_not_json_then_400_or_415(admin):
    headers = {"Authorization": f"Bearer {admin.token}"}
    resp = admin.client.post(EVALUATION, data="{", headers=headers, content_type="application/json")
    assert (resp.status_code, resp.get_json()) == (
        400,
        error(400, "malformed_json", "The body is not valid JSON."),
    )
    resp = admin.client.post(EVALUATION, data="x=1", headers=headers, content_type="text/plain")
    assert (resp.status_code, resp.get_json()) == (
        415,
        error(415, "unsupported_media_type", "The body must be application/json."),
    )


def test_evaluation_when_wrong_method_or_too_large_then_the_admin_error_shape(admin, settings):
    resp = admin.client.get(EVALUATION, headers={"Authorization": f"Bearer {admin.token}"})
    assert (resp.status_code, resp.headers["Allow"]) == (405, "OPTIONS, POST")
    assert resp.get_json() == error(405, "method_not_allowed", "This method is not allowed here.")
    big = {**GOOD, "context": {"actor": "web", "pad": "x" * settings.max_request_bytes}}
    resp = admin.client.post(
        EVALUATION, json=big, headers={"Authorization": f"Bearer {admin.token}"}
    )
    assert resp.status_code == 413
    assert resp.get_json() == error(413, "payload_too_large", "The body is too large.")


def test_evaluation_when_an_nhi_of_the_chain_is_disabled_then_refused_as_its_token_would_be(
    admin, world
):
    admin.ok("POST", "/nhis/web/disable", {"reason": "incident"})
    body = ask(
        admin,
        actor="agent",
        target="tool",
        scope="orders:read",
        issuer=world.idp.issuer,
        chain=["web"],
    ).get_json()
    assert (body["decision"], body["context"]["reason_admin"]) == (
        False,
        {"en": "subject token: an identity in the chain is disabled"},
    )


def test_evaluation_when_actor_may_not_exchange_then_unauthorized_client(admin, world):
    admin.ok(
        "POST",
        "/nhis",
        {"name": "batch", "kind": "workload", "grants": ["client_credentials"]},
        201,
    )
    body = ask(admin, actor="batch", target="agent", scope="orders:read").get_json()
    assert (body["context"]["error"], body["context"]["error_description"]) == (
        "unauthorized_client",
        "The client may not use this grant type.",
    )
    assert body["context"]["reason_admin"] == {
        "en": "grant urn:ietf:params:oauth:grant-type:token-exchange not allowed for client"
    }


# -- fuzzing ----------------------------------------------------------------------------------
@examples(max_examples=300, deadline=None, database=None, derandomize=True)
@given(
    body=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "subject",
                        "resource",
                        "action",
                        "context",
                        "type",
                        "id",
                        "name",
                        "properties",
                        "issuer",
                        "subject_token",
                        "actor",
                        "chain",
                        "x",
                    ]
                ),
                inner,
                max_size=5,
            )
        ),
        max_leaves=20,
    )
)
def test_parse_evaluation_when_any_json_then_a_query_or_an_error_naming_a_member(body):
    try:
        query = parse_evaluation(body, 16384)
    except EvaluationError as err:
        assert err.field and err.message
    else:
        assert query.actor and query.target and query.scope


def test_evaluation_when_fuzzed_from_its_document_then_no_5xx_and_nothing_undocumented(
    app, client, admin, world
):
    """The operation, with valid and invalid bodies generated from the OpenAPI document, as
    an administrator (the whole-document fuzzer calls it without a token)."""
    schema = schemathesis.openapi.from_wsgi(OPENAPI_PATH, app, config=FUZZ_CONFIG)
    (operation,) = [r.ok() for r in schema.get_all_operations() if r.ok().path == EVALUATION]
    for mode, count in ((GenerationMode.POSITIVE, 20), (GenerationMode.NEGATIVE, 20)):
        exercise = _fuzz(
            operation.as_strategy(generation_mode=mode),
            count,
            {"Authorization": f"Bearer {admin.token}"},
        )
        exercise()
