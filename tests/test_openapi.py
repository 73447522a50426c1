"""The OpenAPI document: a valid OpenAPI 3.1 description of every route the STS serves, that
the real responses keep to, checked by a standard validator, by a scripted tour of every
operation, and by a property-based fuzzer (schemathesis) run against the live app."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sts.admin_api import OPENAPI_PATH
from sts.web.forms import FormEndpoints
from tests.admin_api_helpers import Api, bootstrap, token_for
from tests.conftest import ISSUER, Registered
from tests.exchange_fixtures import PersonIdp, client_credentials, exchange
from tests.helpers import FORM, basic, claims_of

#: Examples per operation: every operation gets them all, however busy the machine (a clock
#: budget would skip operations, and fail, only when it is slow). STS_TEST_FUZZ_SCALE=N runs
#: N times as many, for a longer hunt.
SCALE = int(os.environ.get("STS_TEST_FUZZ_SCALE", "1"))
POSITIVE_EXAMPLES = 20 * SCALE
NEGATIVE_EXAMPLES = 10 * SCALE
#: Invalid input must be refused with one of these (413: a body past the size limit).
FUZZ_CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": ["400", "401", "403", "404", "405", "409", "413", "415", "422"]
            }
        }
    }
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture
def doc(client) -> dict[str, Any]:
    resp = client.get(OPENAPI_PATH)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    body: dict[str, Any] = resp.get_json()
    return body


def test_openapi_document_when_served_then_a_valid_openapi_3_1_document(doc):
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert doc["servers"] == [{"url": ISSUER}]
    flows = doc["components"]["securitySchemes"]["adminToken"]["flows"]
    assert flows["clientCredentials"]["tokenUrl"] == f"{ISSUER}/token"


def _served(app) -> set[tuple[str, str]]:
    out = set()
    for rule in app.url_map.iter_rules():
        # The incident console (sts.web.console) serves HTML pages to a browser session,
        # not an API: it is no part of the document.
        if rule.endpoint == "static" or rule.endpoint.startswith("console."):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        out |= {(path, m.lower()) for m in rule.methods or () if m not in ("HEAD", "OPTIONS")}
    # The form-POST endpoints are answered in front of Flask's routing (sts.web.forms).
    forms = app.wsgi_app
    assert isinstance(forms, FormEndpoints)
    return out | {(path, "post") for path in forms.endpoints}


def test_openapi_document_when_compared_with_routes_then_each_operation_is_served(app, doc):
    documented = {(p, m) for p, item in doc["paths"].items() for m in item}
    served = _served(app)
    assert documented <= served
    admin_served = {(p, m) for p, m in served if p.startswith("/admin/")}
    assert admin_served == {(p, m) for p, m in documented if p.startswith("/admin/")}
    # /token, /introspect and /revoke answer other methods with an OAuth error: POST only is
    # documented. Every other route is documented with every method it serves.
    assert {p for p, _ in served} == {p for p, _ in documented}
    assert len({op["operationId"] for item in doc["paths"].values() for op in item.values()}) == (
        len(documented)
    )


# -- a scripted tour: real responses of every operation against their schemas ---------------
class Contract:
    """Checks responses against the document (status documented, body valid, headers)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.registry = Registry().with_resource(
            "urn:sts-openapi", Resource.from_contents(doc, DRAFT202012)
        )
        self.seen: set[tuple[str, str, str]] = set()

    def check(self, template: str, method: str, resp: Any) -> Any:
        responses = self.doc["paths"][template][method]["responses"]
        status = str(resp.status_code)
        assert status in responses or "default" in responses, (template, method, status)
        documented = responses.get(status, responses.get("default"))
        if "content" not in documented:  # 204
            assert not resp.data, (template, method, status)
            self.seen.add((template, method, status))
            return None
        media = documented["content"]["application/json"]
        assert resp.mimetype == "application/json"
        raw = media["schema"]
        schema = {"$ref": "urn:sts-openapi#" + raw["$ref"][1:]} if "$ref" in raw else raw
        errors = list(
            Draft202012Validator(schema, registry=self.registry).iter_errors(resp.get_json())
        )
        assert not errors, (template, method, status, [e.message for e in errors])
        for name, header in documented.get("headers", {}).items():
            if header.get("required"):
                assert name in resp.headers, (template, method, name)
        self.seen.add((template, method, status))
        return resp.get_json()


def test_openapi_document_when_every_operation_called_then_responses_match(
    app, client, doc, runtime, clock
):
    contract = Contract(doc)
    ops = bootstrap(runtime, clock)
    token = token_for(client, ops)
    api = Api(client, token)
    A = "/admin/v1"

    def admin(method: str, path: str, template: str, body: Any = None, **kw: Any) -> Any:
        return contract.check(A + template, method, api.call(method.upper(), path, body, **kw))

    # discovery and operations
    for path in (
        "/.well-known/oauth-authorization-server",
        "/jwks.json",
        "/healthz",
        "/readyz",
        OPENAPI_PATH,
        "/.well-known/authzen-configuration",
    ):
        contract.check(path, "get", client.get(path))
    # provisioning
    idp = PersonIdp()
    admin(
        "post",
        "/issuers",
        "/issuers",
        {
            "issuer": idp.issuer,
            "jwks": idp.keys.jwks,
            "audiences": ["web"],
            "algorithms": ["ES256"],
        },
    )
    admin(
        "post",
        "/issuers",
        "/issuers",
        {
            "issuer": idp.issuer,
            "jwks": idp.keys.jwks,
            "audiences": ["web"],
            "algorithms": ["ES256"],
        },
    )
    admin("post", "/issuers", "/issuers", {"issuer": idp.issuer, "jwks_uri": "https://x.test/k"})
    admin("post", "/issuers", "/issuers", {"issuer": "nope"})
    admin("get", "/issuers", "/issuers")
    admin("get", "/issuers/https%3A%2F%2Fidp.example.test", "/issuers/{issuer}")
    admin("get", "/issuers/https%3A%2F%2Fnone.example.test", "/issuers/{issuer}")
    secrets = {}
    for name, kind in [("web", "service"), ("agent", "agent")]:
        secrets[name] = admin("post", "/nhis", "/nhis", {"name": name, "kind": kind})[
            "client_secret"
        ]
    admin("post", "/nhis", "/nhis", {"name": "web", "kind": "service"})
    admin("post", "/nhis", "/nhis", {"name": "web", "kind": "agent"})
    admin("post", "/nhis", "/nhis", {"name": "bad name"})
    admin("post", "/nhis", "/nhis", None, data="{", content_type="application/json")
    admin("get", "/nhis?limit=1", "/nhis")
    admin("get", "/nhis?limit=0", "/nhis")
    admin("get", "/nhis/web", "/nhis/{name}")
    admin("get", "/nhis/ghost", "/nhis/{name}")
    admin("post", "/nhis/agent/disable", "/nhis/{name}/disable", {"reason": "r"})
    admin("post", "/nhis/agent/disable", "/nhis/{name}/disable", {})
    admin("post", "/nhis/agent/enable", "/nhis/{name}/enable")
    added = admin("post", "/nhis/web/credentials", "/nhis/{name}/credentials", {"type": "secret"})
    admin("post", "/nhis/web/credentials", "/nhis/{name}/credentials", {"type": "jwks"})
    admin("get", "/nhis/web/credentials", "/nhis/{name}/credentials")
    admin("get", f"/nhis/web/credentials/{added['id']}", "/nhis/{name}/credentials/{credential_id}")
    admin(
        "post",
        f"/nhis/web/credentials/{added['id']}/revoke",
        "/nhis/{name}/credentials/{credential_id}/revoke",
        {"reason": "rotated"},
    )
    rule = admin(
        "post",
        "/rules",
        "/rules",
        {"actor": "web", "targets": ["agent"], "scope": "a", "subject": f"issuer:{idp.issuer}"},
    )
    admin(
        "post",
        "/rules",
        "/rules",
        {"actor": "web", "targets": ["agent"], "scope": "a", "subject": f"issuer:{idp.issuer}"},
    )
    admin("post", "/rules", "/rules", {"actor": "ghost", "targets": ["agent"], "scope": "a"})
    admin("get", "/rules?actor=web", "/rules")
    admin("get", f"/rules/{rule['id']}", "/rules/{rule_id}")
    admin("get", "/rules/rule_none", "/rules/{rule_id}")
    # the OAuth endpoints
    web = Registered("web", secrets["web"], "web")
    contract.check("/token", "post", client_credentials(client, web))
    contract.check(
        "/token",
        "post",
        client.post(
            "/token", data={"grant_type": "x"}, headers=basic("web", "wrong"), content_type=FORM
        ),
    )
    contract.check(
        "/token",
        "post",
        client.post(
            "/token",
            data={"grant_type": "x"},
            headers=basic("web", secrets["web"]),
            content_type=FORM,
        ),
    )
    person = idp.token("alice", "web", clock.now(), scope="a")
    issued = contract.check("/token", "post", exchange(client, web, person, audience="agent"))
    at = issued["access_token"]
    contract.check(
        "/introspect",
        "post",
        client.post("/introspect", data={"token": at}, headers=basic("agent", secrets["agent"])),
    )
    contract.check(
        "/introspect",
        "post",
        client.post("/introspect", data={}, headers=basic("agent", secrets["agent"])),
    )
    contract.check(
        "/revocations", "get", client.get("/revocations", headers=basic("agent", secrets["agent"]))
    )
    contract.check(
        "/revocations",
        "get",
        client.get("/revocations?since=x", headers=basic("agent", secrets["agent"])),
    )
    contract.check("/revocations", "get", client.get("/revocations"))
    jti, txn = claims_of(at)["jti"], claims_of(at)["txn"]
    # access reports (DESIGN §10), by the token's audience
    for report in (
        {"jti": jti, "resource": "db://orders", "action": "read", "data_classes": ["pii"]},
        {"reports": [{"jti": jti, "resource": "db://orders"}]},
        {"jti": "none", "resource": "db://orders", "action": "read"},
    ):
        contract.check(
            "/access-reports",
            "post",
            client.post(
                "/access-reports",
                json=report,
                headers=basic("agent", secrets["agent"]),
            ),
        )
    contract.check(
        "/access-reports",
        "post",
        client.post("/access-reports", data="x", headers=basic("agent", secrets["agent"])),
    )
    admin("get", "/audit/touched?resource=db%3A%2F%2Forders", "/audit/touched")
    admin("get", "/audit/touched?resource=db%3A%2F%2Forders&data_class=pii", "/audit/touched")
    admin("get", "/audit/touched", "/audit/touched")
    # would this be allowed (AuthZEN)
    question = {
        "subject": {"type": "user", "id": "alice", "properties": {"issuer": idp.issuer}},
        "resource": {"type": "nhi", "id": "agent"},
        "action": {"name": "a"},
        "context": {"actor": "web"},
    }
    evaluation = "/access/v1/evaluation"
    bearer = {"Authorization": f"Bearer {token}"}
    for body in (question, {**question, "action": {"name": "b"}}, {"subject": {}}):
        contract.check(evaluation, "post", client.post(evaluation, json=body, headers=bearer))
    contract.check(evaluation, "post", client.post(evaluation, json=question))
    # chains and audit
    admin("get", f"/transactions/{txn}/chain", "/transactions/{txn}/chain")
    admin("get", f"/tokens/{jti}/chain", "/tokens/{jti}/chain")
    admin("get", "/tokens/none/chain", "/tokens/{jti}/chain")
    admin("get", f"/transactions/{txn}/audit", "/transactions/{txn}/audit")
    admin("get", f"/tokens/{jti}/audit", "/tokens/{jti}/audit")
    admin("get", "/transactions/none/audit", "/transactions/{txn}/audit")
    admin("get", "/audit/events?limit=5", "/audit/events")
    admin("get", "/audit/events?since=x", "/audit/events")
    # revocations
    admin("post", "/revocations", "/revocations", {"kind": "txn", "target": txn, "dry_run": True})
    admin("post", "/revocations", "/revocations", {"kind": "txn", "target": txn})
    admin("post", "/revocations", "/revocations", {"kind": "rule", "target": "rule_none"})
    admin("post", f"/rules/{rule['id']}/disable", "/rules/{rule_id}/disable")
    contract.check(
        "/revoke",
        "post",
        client.post("/revoke", data={"token": at}, headers=basic("web", secrets["web"])),
    )
    contract.check("/revoke", "post", client.post("/revoke", data={"token": at}))
    # lifecycle
    rid = rule["id"]
    admin("post", "/nhis/agent/update", "/nhis/{name}/update", {"owner": "team"})
    admin("post", "/nhis/ghost/update", "/nhis/{name}/update", {"owner": "team"})
    admin("post", "/nhis/web/update", "/nhis/{name}/update", {"sub": "agent"})
    admin("post", "/nhis/web/update", "/nhis/{name}/update", {"kind": "robot"})
    body = {"actor": "web", "targets": ["agent"], "scope": "a b"}
    admin("post", f"/rules/{rid}/update", "/rules/{rule_id}/update", body)
    admin("post", "/rules/rule_none/update", "/rules/{rule_id}/update", body)
    admin("post", f"/rules/{rid}/enable", "/rules/{rule_id}/enable")
    admin("post", "/nhis/agent/delete", "/nhis/{name}/delete")
    admin("post", f"/rules/{rid}/delete", "/rules/{rule_id}/delete", {"reason": "done"})
    admin("post", "/rules/rule_none/delete", "/rules/{rule_id}/delete")
    admin("post", "/nhis/agent/delete?revoke=maybe", "/nhis/{name}/delete")
    admin("post", "/nhis/agent/delete?revoke=true", "/nhis/{name}/delete")
    admin("post", "/nhis/agent/delete", "/nhis/{name}/delete")
    iss = "/issuers/https%3A%2F%2Fidp.example.test"
    admin("post", iss + "/update", "/issuers/{issuer}/update", {"audiences": ["web", "api"]})
    admin("post", iss + "/update", "/issuers/{issuer}/update", {"algorithms": ["HS256"]})
    admin("post", iss + "/disable", "/issuers/{issuer}/disable", {"reason": "breach"})
    admin("post", iss + "/enable", "/issuers/{issuer}/enable")
    admin("post", iss + "/remove", "/issuers/{issuer}/remove")
    admin("post", iss + "/enable", "/issuers/{issuer}/enable")
    exported = admin("get", "/registry", "/registry")
    plan = admin("post", "/registry/apply?dry_run=true", "/registry/apply", exported)
    assert plan["changes"] == [] and plan["dry_run"] is True
    admin("post", "/registry/apply", "/registry/apply", {"version": 2})
    admin("post", "/registry/apply?prune=yes", "/registry/apply", exported)
    # metrics: the text format, or an OAuth error
    scraped = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert scraped.status_code == 200 and scraped.mimetype == "text/plain"
    contract.seen.add(("/metrics", "get", "200"))
    contract.check("/metrics", "get", client.get("/metrics"))
    # refused callers
    contract.check(A + "/nhis", "get", client.get(A + "/nhis"))
    auditor = Api(client, token_for(client, ops, scope="sts:audit"))
    contract.check(A + "/nhis", "post", auditor.post("/nhis", {"name": "x", "kind": "service"}))

    # SSF: stream management, status, verification, poll
    contract.check(
        "/.well-known/ssf-configuration", "get", client.get("/.well-known/ssf-configuration")
    )
    rs = admin("post", "/nhis", "/nhis", {"name": "rs", "kind": "service", "scope": "ssf:manage"})
    ssf = {
        "Authorization": f"Bearer {token_for(client, Registered('rs', rs['client_secret'], 'rs'))}"
    }

    def stream(method: str, path: str, template: str, body: Any = None) -> Any:
        resp = client.open(path, method=method.upper(), headers=ssf, json=body)
        return contract.check(template, method, resp)

    poll = {"delivery": {"method": "urn:ietf:rfc:8936"}}
    sid = stream("post", "/ssf/stream", "/ssf/stream", poll)["stream_id"]
    stream("post", "/ssf/stream", "/ssf/stream", {"delivery": {}})
    contract.check("/ssf/stream", "post", client.post("/ssf/stream", json=poll))
    stream("get", f"/ssf/stream?stream_id={sid}", "/ssf/stream")
    stream("get", "/ssf/stream", "/ssf/stream")
    stream("get", "/ssf/stream?stream_id=none", "/ssf/stream")
    stream("patch", "/ssf/stream", "/ssf/stream", {"stream_id": sid, "description": "d"})
    stream("put", "/ssf/stream", "/ssf/stream", {"stream_id": sid, **poll})
    stream("get", f"/ssf/status?stream_id={sid}", "/ssf/status")
    stream("post", "/ssf/status", "/ssf/status", {"stream_id": sid, "status": "enabled"})
    stream("post", "/ssf/verify", "/ssf/verify", {"stream_id": sid, "state": "s"})
    stream("post", "/ssf/verify", "/ssf/verify", {"stream_id": sid, "state": "s"})
    stream("post", f"/ssf/poll/{sid}", "/ssf/poll/{stream_id}", {"maxEvents": 5})
    stream("post", f"/ssf/poll/{sid}", "/ssf/poll/{stream_id}", {"maxEvents": -1})
    stream("delete", f"/ssf/stream?stream_id={sid}", "/ssf/stream")
    contract.check(
        "/ssf/stream",
        "post",
        client.post("/ssf/stream", data="x", headers={**ssf, "Content-Type": "text/plain"}),
    )
    contract.check(
        "/ssf/stream",
        "post",
        client.post("/ssf/stream", json=poll, headers={"Authorization": f"Bearer {token}"}),
    )

    documented = {(p, m) for p, item in doc["paths"].items() for m in item}
    assert {(p, m) for p, m, _ in contract.seen} == documented


# -- the fuzzer ------------------------------------------------------------------------------
def _fuzz(strategy: Any, examples: int, headers: dict[str, str]) -> Any:
    """A deterministic (derandomized), unshrunk run of ``examples`` generated requests."""

    @given(case=strategy)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def exercise(case: Any) -> None:
        case.call_and_validate(headers=dict(headers), checks=CHECKS)

    return exercise


def test_openapi_fuzzer_when_run_against_the_live_app_then_no_5xx_and_nothing_undocumented(
    app, client, runtime, clock
):
    """Every operation, with valid and invalid input generated from the document; the admin
    operations with an administrator's token, the OAuth ones with a registered client."""
    ops = bootstrap(runtime, clock, name="fuzz-admin-3c9e1d")
    bearer = {"Authorization": f"Bearer {token_for(client, ops)}"}
    api = Api(client, bearer["Authorization"].split()[1])
    secret = api.ok("POST", "/nhis", {"name": "fuzz-client-5b2a", "kind": "service"}, 201)[
        "client_secret"
    ]
    basic_auth = basic("fuzz-client-5b2a", secret)
    receiver = api.ok(
        "POST", "/nhis", {"name": "fuzz-rs-7d41", "kind": "service", "scope": "ssf:manage"}, 201
    )
    rs = Registered("fuzz-rs-7d41", receiver["client_secret"], "fuzz-rs-7d41")
    ssf_bearer = {"Authorization": f"Bearer {token_for(client, rs)}"}
    schema = schemathesis.openapi.from_wsgi(OPENAPI_PATH, app, config=FUZZ_CONFIG)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        admin_op = operation.path.startswith(("/admin/", "/access/"))
        headers = bearer if admin_op else basic_auth
        if operation.path.startswith("/ssf/"):
            headers = ssf_bearer
        for mode, examples in (
            (GenerationMode.POSITIVE, POSITIVE_EXAMPLES),
            (GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES),
        ):
            exercise = _fuzz(operation.as_strategy(generation_mode=mode), examples, headers)
            try:
                exercise()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing in it can be invalid
            except Exception as exc:  # collect them all, then fail once
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
