"""The token endpoint's request handling (RFC 6749 §3.2, §5; RFC 8707; DESIGN §5, §6, §8).

Every answer is asserted whole: status, the complete JSON error body, and the no-cache headers.
Requests that reach the pipeline leave an audit event; issued tokens leave a lineage row.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from sqlalchemy import select

from sts.services import nhis
from sts.store.admin import admin_store
from sts.store.models import AuditEvent, IssuedToken
from tests.conftest import ISSUER
from tests.helpers import FORM, basic, claims_of

CC = {"grant_type": "client_credentials"}
TARGET_ERROR = {
    "error": "invalid_target",
    "error_description": "The requested target is unknown or not allowed.",
}
REPEATED = {"error": "invalid_request", "error_description": "Repeated parameter."}
MALFORMED = {"error": "invalid_request", "error_description": "The body is malformed."}
TOO_LARGE = {"error": "invalid_request", "error_description": "Request too large."}
MALFORMED_SCOPE = {
    "error": "invalid_scope",
    "error_description": "The scope parameter is malformed.",
}
WIDER_SCOPE = {
    "error": "invalid_scope",
    "error_description": "The requested scope exceeds what is allowed.",
}


def post(client: Any, data: Any, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
    kwargs.setdefault("content_type", FORM)
    return client.post("/token", data=data, headers=headers or {}, **kwargs)


def assert_no_cache(resp: Any) -> None:
    """RFC 6749 §5.1 / §5.2: token responses and their errors are never cached."""
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Pragma"] == "no-cache"
    assert resp.headers["Content-Type"] == "application/json"
    names = [name.lower() for name, _ in resp.headers]
    assert len(names) == len(set(names)), f"a header sent twice: {resp.headers}"


def assert_error(resp: Any, status: int, body: dict[str, str]) -> None:
    assert resp.status_code == status
    assert resp.json == body
    assert_no_cache(resp)


def audit_rows(runtime: Any) -> list[dict[str, Any]]:
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(AuditEvent).where(AuditEvent.event.like("token.%")).order_by(AuditEvent.id)
        ).all()
    return [dict(r._mapping) for r in rows]


def lineage_rows(runtime: Any) -> list[dict[str, Any]]:
    with runtime.engine.connect() as conn:
        rows = conn.execute(select(IssuedToken).order_by(IssuedToken.issued_at)).all()
    return [dict(r._mapping) for r in rows]


def assert_denied(runtime: Any, resp: Any, error: str, reason: str, client_id: Any = None) -> None:
    """The last audit event is this request's denial, with the precise reason."""
    event = audit_rows(runtime)[-1]
    assert event["event"] == "token.denied"
    assert event["decision"] == "denied"
    assert event["reason"] == reason
    assert event["detail"]["error"] == error
    assert event["client_id"] == client_id
    assert event["request_id"] == resp.headers["X-Request-Id"]
    assert event["jti"] is None


# -- method and body -----------------------------------------------------------------------


def test_token_endpoint_when_get_then_invalid_request(client, make_nhi):
    web = make_nhi("web")
    resp = client.get("/token?grant_type=client_credentials", headers=basic("web", web.secret))
    assert_error(
        resp,
        400,
        {"error": "invalid_request", "error_description": "The token endpoint accepts POST only."},
    )


def test_token_endpoint_when_put_then_invalid_request(client):
    resp = client.put("/token", data=CC, content_type=FORM)
    assert_error(
        resp,
        400,
        {"error": "invalid_request", "error_description": "The token endpoint accepts POST only."},
    )


def test_token_endpoint_when_json_body_then_invalid_request(client, make_nhi):
    web = make_nhi("web")
    resp = client.post("/token", json=CC, headers=basic("web", web.secret))
    assert_error(
        resp,
        400,
        {
            "error": "invalid_request",
            "error_description": "The body must be application/x-www-form-urlencoded.",
        },
    )


def test_token_endpoint_when_no_content_type_then_invalid_request(client, make_nhi):
    web = make_nhi("web")
    resp = post(client, b"grant_type=client_credentials", basic("web", web.secret), content_type="")
    assert_error(
        resp,
        400,
        {
            "error": "invalid_request",
            "error_description": "The body must be application/x-www-form-urlencoded.",
        },
    )


@pytest.mark.parametrize("path", ["/token", "/introspect", "/revoke"])
def test_form_endpoints_when_answering_then_each_header_once(client, make_nhi, path):
    web = make_nhi("web")
    issued = post(client, CC, basic("web", web.secret))
    assert issued.status_code == 200, issued.json
    assert_no_cache(issued)
    refused = client.get(path)
    assert refused.status_code == 400, refused.json
    assert_no_cache(refused)
    form = CC if path == "/token" else {"token": "x"}
    unauthenticated = client.post(path, data=form, content_type=FORM)
    assert unauthenticated.status_code == 401, unauthenticated.json
    assert_no_cache(unauthenticated)


def test_token_endpoint_when_form_content_type_has_charset_then_token_issued(client, make_nhi):
    web = make_nhi("web")
    resp = post(
        client,
        b"grant_type=client_credentials",
        basic("web", web.secret),
        content_type=FORM + "; charset=UTF-8",
    )
    assert resp.status_code == 200, resp.json


def test_token_endpoint_when_body_larger_than_limit_then_invalid_request(
    client, make_nhi, settings
):
    web = make_nhi("web")
    head = b"grant_type=client_credentials&pad="
    body = head + b"x" * (settings.max_request_bytes + 1 - len(head))
    resp = post(client, body, basic("web", web.secret))
    assert_error(resp, 400, TOO_LARGE)


def test_token_endpoint_when_body_exactly_at_limit_then_accepted(client, make_nhi, settings):
    web = make_nhi("web")
    head = b"grant_type=client_credentials&pad="
    body = head + b"x" * (settings.max_request_bytes - len(head))
    resp = post(client, body, basic("web", web.secret))
    assert resp.status_code == 200, resp.json


def chunked(client: Any, body: bytes, headers: dict[str, str]) -> Any:
    """A body sent without Content-Length (chunked), as a WSGI server hands it over."""
    return client.post(
        "/token",
        input_stream=io.BytesIO(body),
        content_type=FORM,
        headers={**headers, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_token_endpoint_when_chunked_body_larger_than_limit_then_refused_not_truncated(
    client, make_nhi, settings, runtime
):
    web = make_nhi("web", scope="a b")
    head = b"grant_type=client_credentials&pad="
    body = head + b"x" * (settings.max_request_bytes - len(head)) + b"&scope=a"
    resp = chunked(client, body, basic("web", web.secret))
    assert_error(resp, 400, TOO_LARGE)
    assert lineage_rows(runtime) == []


def test_token_endpoint_when_chunked_body_at_limit_then_accepted(client, make_nhi, settings):
    web = make_nhi("web")
    head = b"grant_type=client_credentials&pad="
    body = head + b"x" * (settings.max_request_bytes - len(head))
    resp = chunked(client, body, basic("web", web.secret))
    assert resp.status_code == 200, resp.json


def test_token_endpoint_when_body_not_utf8_then_invalid_request(client, make_nhi):
    web = make_nhi("web")
    for body in (
        b"grant_type=client_credentials&scope=\xff\xfe",
        b"grant_type=client_credentials&scope=%ff%fe",
        b"grant_type=client_credentials&scope=%C3%28",
    ):
        assert_error(post(client, body, basic("web", web.secret)), 400, MALFORMED)


def test_token_endpoint_when_too_many_fields_then_invalid_request(client, make_nhi):
    web = make_nhi("web")
    body = "grant_type=client_credentials&" + "&".join(f"p{i}=v" for i in range(100))
    assert_error(post(client, body.encode(), basic("web", web.secret)), 400, MALFORMED)


# -- grant_type --------------------------------------------------------------------------------


def test_token_endpoint_when_grant_type_missing_then_invalid_request(client, make_nhi, runtime):
    web = make_nhi("web")
    body = {"error": "invalid_request", "error_description": "Missing grant_type."}
    resp = post(client, {"scope": "a"}, basic("web", web.secret))
    assert_error(resp, 400, body)
    assert_denied(runtime, resp, "invalid_request", "missing grant_type")
    assert_error(post(client, {"grant_type": ""}, basic("web", web.secret)), 400, body)


def test_token_endpoint_when_grant_type_unknown_then_unsupported_grant_type(
    client, make_nhi, runtime
):
    web = make_nhi("web")
    for grant_type in (
        "password",
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "CLIENT_CREDENTIALS",
    ):
        resp = post(client, {"grant_type": grant_type}, basic("web", web.secret))
        assert_error(
            resp,
            400,
            {
                "error": "unsupported_grant_type",
                "error_description": "The grant type is not supported.",
            },
        )
        assert_denied(runtime, resp, "unsupported_grant_type", "unsupported grant_type")


def test_token_endpoint_when_grant_type_unknown_then_description_does_not_echo_input(client):
    resp = post(client, {"grant_type": "<script>alert(1)</script>"})
    assert resp.data == (
        b'{"error": "unsupported_grant_type", '
        b'"error_description": "The grant type is not supported."}'
    )


# -- repeated parameters (RFC 6749 §3.2) -------------------------------------------------------


def test_token_endpoint_when_scope_repeated_then_invalid_request(client, make_nhi, runtime):
    web = make_nhi("web", scope="a b")
    body = b"grant_type=client_credentials&scope=a&scope=b"
    resp = post(client, body, basic("web", web.secret))
    assert_error(resp, 400, REPEATED)
    assert_denied(runtime, resp, "invalid_request", "parameter 'scope' repeated")
    assert lineage_rows(runtime) == []


def test_token_endpoint_when_grant_type_repeated_then_invalid_request(client, make_nhi, runtime):
    web = make_nhi("web")
    for body in (
        b"grant_type=client_credentials&grant_type=client_credentials",
        b"grant_type=client_credentials&grant_type=password",
    ):
        resp = post(client, body, basic("web", web.secret))
        assert_error(resp, 400, REPEATED)
        assert_denied(runtime, resp, "invalid_request", "parameter 'grant_type' repeated")


def test_token_endpoint_when_client_credentials_repeated_then_invalid_request(client, make_nhi):
    web = make_nhi("web")
    other = make_nhi("other")
    body = (
        f"grant_type=client_credentials&client_id=web&client_secret={web.secret}"
        f"&client_id=other&client_secret={other.secret}"
    ).encode()
    assert_error(post(client, body), 400, REPEATED)


def test_token_endpoint_when_empty_parameter_repeated_then_invalid_request(client, make_nhi):
    web = make_nhi("web")
    body = b"grant_type=client_credentials&scope=&scope="
    assert_error(post(client, body, basic("web", web.secret)), 400, REPEATED)


# -- scope (RFC 6749 §3.3) -------------------------------------------------------------------


def test_client_credentials_when_scope_omitted_then_all_client_scopes(client, make_nhi):
    web = make_nhi("web", scope="orders:write orders:read")
    resp = post(client, CC, basic("web", web.secret))
    assert resp.status_code == 200
    assert resp.json["scope"] == "orders:read orders:write"
    assert claims_of(resp.json["access_token"])["scope"] == "orders:read orders:write"


def test_client_credentials_when_client_has_no_scopes_then_token_without_scope(client, make_nhi):
    web = make_nhi("web")
    resp = post(client, CC, basic("web", web.secret))
    assert resp.status_code == 200
    assert "scope" not in resp.json
    assert "scope" not in claims_of(resp.json["access_token"])


def test_client_credentials_when_scope_narrower_then_granted_as_requested(client, make_nhi):
    web = make_nhi("web", scope="a b c")
    resp = post(client, {**CC, "scope": "c a"}, basic("web", web.secret))
    assert resp.status_code == 200
    assert resp.json["scope"] == "a c"


def test_client_credentials_when_scope_malformed_then_invalid_scope(client, make_nhi, runtime):
    web = make_nhi("web", scope="a b")
    for scope in ("a  b", " a", "a ", 'a"b', "a\\b", "a\tb", "caf\u00e9", "a" * 1025):
        resp = post(client, {**CC, "scope": scope}, basic("web", web.secret))
        assert_error(resp, 400, MALFORMED_SCOPE)
        assert_denied(runtime, resp, "invalid_scope", "malformed scope parameter", "web")


def test_client_credentials_when_scope_wider_than_client_then_invalid_scope(
    client, make_nhi, runtime
):
    web = make_nhi("web", scope="orders:read")
    for scope in ("orders:write", "orders:read orders:write", "admin"):
        resp = post(client, {**CC, "scope": scope}, basic("web", web.secret))
        assert_error(resp, 400, WIDER_SCOPE)
        assert_denied(
            runtime, resp, "invalid_scope", "requested scope exceeds the client's scopes", "web"
        )
    assert lineage_rows(runtime) == []


# -- target: audience (RFC 8693) and resource (RFC 8707) ---------------------------------------


def test_client_credentials_when_audience_unknown_then_invalid_target(client, make_nhi, runtime):
    web = make_nhi("web")
    resp = post(client, {**CC, "audience": "nobody"}, basic("web", web.secret))
    assert_error(resp, 400, TARGET_ERROR)
    assert_denied(runtime, resp, "invalid_target", "unknown audience", "web")


def test_client_credentials_when_audience_registered_then_aud_is_its_client_id(
    client, make_nhi, runtime, clock
):
    web = make_nhi("web", scope="orders:read")
    make_nhi("orders")
    resp = post(client, {**CC, "audience": "orders"}, basic("web", web.secret))
    assert resp.status_code == 200, resp.json
    claims = claims_of(resp.json["access_token"])
    assert claims["aud"] == "orders"
    (row,) = lineage_rows(runtime)
    assert row["target"] == "orders"
    assert row["jti"] == claims["jti"]


def test_client_credentials_when_resource_registered_then_aud_is_its_client_id(client, make_nhi):
    web = make_nhi("web")
    make_nhi("orders", resources=["https://orders.example.test/api"])
    resp = post(
        client, {**CC, "resource": "https://orders.example.test/api"}, basic("web", web.secret)
    )
    assert resp.status_code == 200, resp.json
    assert claims_of(resp.json["access_token"])["aud"] == "orders"


def test_client_credentials_when_resource_is_uri_sub_of_nhi_then_aud_is_its_client_id(
    client, make_nhi
):
    web = make_nhi("web")
    make_nhi("ledger", kind="workload", sub="spiffe://example.test/ns/prod/sa/ledger")
    data = {**CC, "resource": "spiffe://example.test/ns/prod/sa/ledger"}
    resp = post(client, data, basic("web", web.secret))
    assert resp.status_code == 200, resp.json
    assert claims_of(resp.json["access_token"])["aud"] == "ledger"


def test_client_credentials_when_audience_and_resource_name_same_target_then_token_issued(
    client, make_nhi
):
    web = make_nhi("web")
    make_nhi("orders", resources=["https://orders.example.test/api"])
    body = (
        b"grant_type=client_credentials&audience=orders&audience=orders"
        b"&resource=https%3A%2F%2Forders.example.test%2Fapi"
    )
    resp = post(client, body, basic("web", web.secret))
    assert resp.status_code == 200, resp.json
    assert claims_of(resp.json["access_token"])["aud"] == "orders"


def test_client_credentials_when_two_different_targets_then_invalid_target(
    client, make_nhi, runtime
):
    web = make_nhi("web")
    make_nhi("orders", resources=["https://orders.example.test/api"])
    make_nhi("billing", resources=["https://billing.example.test/api"])
    for body in (
        b"grant_type=client_credentials&audience=orders&audience=billing",
        b"grant_type=client_credentials&audience=orders"
        b"&resource=https%3A%2F%2Fbilling.example.test%2Fapi",
        b"grant_type=client_credentials&resource=https%3A%2F%2Forders.example.test%2Fapi"
        b"&resource=https%3A%2F%2Fbilling.example.test%2Fapi",
    ):
        resp = post(client, body, basic("web", web.secret))
        assert_error(resp, 400, TARGET_ERROR)
        assert_denied(
            runtime, resp, "invalid_target", "audience/resource name more than one target", "web"
        )
    assert lineage_rows(runtime) == []


def test_client_credentials_when_resource_not_absolute_or_has_fragment_then_invalid_target(
    client, make_nhi
):
    web = make_nhi("web")
    make_nhi("orders", resources=["https://orders.example.test/api"])
    for resource in ("orders", "/api", "https://orders.example.test/api#x", ""):
        resp = post(client, {**CC, "resource": resource}, basic("web", web.secret))
        assert_error(resp, 400, TARGET_ERROR)


def test_client_credentials_when_target_disabled_then_same_answer_as_unknown(
    client, make_nhi, runtime, clock
):
    web = make_nhi("web")
    make_nhi("orders")
    with admin_store(runtime.engine) as store:
        nhis.set_nhi_status(
            store, "orders", status="disabled", reason="retired", now=clock.now(), admin="test"
        )
    disabled = post(client, {**CC, "audience": "orders"}, basic("web", web.secret))
    unknown = post(client, {**CC, "audience": "nosuch"}, basic("web", web.secret))
    assert_error(disabled, 400, TARGET_ERROR)
    assert disabled.data == unknown.data


def test_client_credentials_when_too_many_target_values_then_invalid_target(client, make_nhi):
    web = make_nhi("web")
    make_nhi("orders")
    body = b"grant_type=client_credentials" + b"&audience=orders" * 11
    assert_error(post(client, body, basic("web", web.secret)), 400, TARGET_ERROR)


# -- headers, audit and lineage ----------------------------------------------------------------


def test_token_endpoint_when_success_or_error_then_no_store_and_no_cache(client, make_nhi):
    web = make_nhi("web", scope="a")
    answers = [
        post(client, CC, basic("web", web.secret)),  # 200
        post(client, CC, basic("web", "sts_wrong")),  # 401
        post(client, {**CC, "scope": "b"}, basic("web", web.secret)),  # 400 invalid_scope
        post(client, {"grant_type": "password"}),  # 400 unsupported_grant_type
        post(client, b"grant_type=a&grant_type=b"),  # 400 repeated
        client.get("/token"),  # 400 method
        client.post("/token", json=CC),  # 400 not a form
        post(client, b"x=\xff"),  # 400 undecodable
    ]
    assert [r.status_code for r in answers] == [200, 401, 400, 400, 400, 400, 400, 400]
    for resp in answers:
        assert_no_cache(resp)


def test_client_credentials_when_issued_then_lineage_and_audit_recorded(
    client, make_nhi, runtime, clock
):
    web = make_nhi("web", scope="orders:read")
    resp = post(client, CC, basic("web", web.secret))
    assert resp.status_code == 200
    assert_no_cache(resp)
    token = resp.json["access_token"]
    claims = claims_of(token)
    (row,) = lineage_rows(runtime)
    assert row["credential_id"] is not None
    assert row == {
        "jti": claims["jti"],
        "parent_jti": None,
        "txn": claims["jti"],
        "grant_type": "client_credentials",
        "subject": "web",
        "subject_issuer": ISSUER,
        "actor_id": row["actor_id"],
        "client_id": "web",
        "credential_id": row["credential_id"],
        "target": ISSUER,
        "scope": "orders:read",
        "rule_id": None,
        "actor_jti": None,
        "actor_issuer": None,
        "chain": [],
        "depth": 0,
        "issued_at": clock.now(),
        "expires_at": clock.now() + 300,
        "revoked_at": None,
        "revocation_id": None,
    }
    (event,) = audit_rows(runtime)
    assert event["event"] == "token.issued"
    assert event["decision"] == "allowed"
    assert event["jti"] == claims["jti"] and event["txn"] == claims["jti"]
    assert event["client_id"] == "web" and event["subject"] == "web"
    assert event["credential_id"] == row["credential_id"]
    assert event["target"] == ISSUER and event["scope"] == "orders:read"
    assert event["request_id"] == resp.headers["X-Request-Id"]
    assert event["detail"] == {"grant_type": "client_credentials", "exp": clock.now() + 300}
    # Neither the token nor the secret is ever written to the audit trail.
    assert token not in repr(event) and web.secret not in repr(event)


def test_token_endpoint_when_request_id_given_then_echoed_and_audited(client, make_nhi, runtime):
    web = make_nhi("web")
    headers = {**basic("web", web.secret), "X-Request-Id": "req-42-abc"}
    resp = post(client, {**CC, "scope": "x"}, headers)
    assert resp.headers["X-Request-Id"] == "req-42-abc"
    assert audit_rows(runtime)[-1]["request_id"] == "req-42-abc"


def test_token_endpoint_when_denied_then_no_lineage_and_one_denial_per_request(
    client, make_nhi, runtime
):
    web = make_nhi("web")
    post(client, CC, basic("web", "sts_wrong"))
    post(client, {"grant_type": "password"}, basic("web", web.secret))
    rows = audit_rows(runtime)
    assert [(r["event"], r["detail"]["error"]) for r in rows] == [
        ("token.denied", "invalid_client"),
        ("token.denied", "unsupported_grant_type"),
    ]
    assert web.secret not in repr(rows)
    assert lineage_rows(runtime) == []


def test_client_credentials_when_issued_twice_then_distinct_jti_and_two_lineage_rows(
    client, make_nhi, runtime
):
    web = make_nhi("web")
    first = claims_of(post(client, CC, basic("web", web.secret)).json["access_token"])
    second = claims_of(post(client, CC, basic("web", web.secret)).json["access_token"])
    assert first["jti"] != second["jti"]
    assert {r["jti"] for r in lineage_rows(runtime)} == {first["jti"], second["jti"]}
    assert [r["event"] for r in audit_rows(runtime)] == ["token.issued", "token.issued"]
