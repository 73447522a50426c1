"""The admin API's registry resources: NHIs, credentials, trusted issuers, delegation rules,
with REST status codes (201/200 idempotent, 404, 409, 422) and whole error bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.admin_api_helpers import Api, admin, admin_nhi, error, invalid, token_for
from tests.conftest import Registered
from tests.exchange_fixtures import PersonIdp, client_credentials
from tests.helpers import KeyPair, claims_of

__all__ = ["admin", "admin_nhi"]  # fixtures

TE = "urn:ietf:params:oauth:grant-type:token-exchange"


def _create(admin: Api, name: str = "web", **attrs: Any) -> dict[str, Any]:
    created: dict[str, Any] = admin.ok(
        "POST", "/nhis", {"name": name, "kind": "service", **attrs}, 201
    )
    return created


# -- NHIs ------------------------------------------------------------------------------------


def test_create_nhi_when_new_then_201_location_and_secret_shown_once(client, admin):
    resp = admin.post(
        "/nhis",
        {
            "name": "web",
            "kind": "agent",
            "owner": "team-web",
            "scope": "b a",
            "resources": ["https://web.example.test/api"],
        },
    )
    assert resp.status_code == 201
    assert resp.headers["Location"] == "/admin/v1/nhis/web"
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.get_json()
    secret = body.pop("client_secret")
    assert secret.startswith("sts_")
    shown = admin.ok("GET", "/nhis/web")
    assert body == shown
    assert {k: v for k, v in shown.items() if k not in ("credentials", "created_at")} == {
        "client_id": "web",
        "kind": "agent",
        "sub": "web",
        "owner": "team-web",
        "status": "active",
        "status_reason": "",
        "scope": "a b",
        "grants": ["client_credentials", TE],
        "resources": ["https://web.example.test/api"],
    }
    assert [c["type"] for c in shown["credentials"]] == ["secret"]
    assert "client_secret" not in json.dumps(shown) and secret not in json.dumps(shown)
    assert client_credentials(client, Registered("web", secret, "web")).status_code == 200


def test_create_nhi_when_repeated_with_same_attributes_then_200_existing_without_secret(admin):
    attrs = {"name": "web", "kind": "service", "scope": "a", "grants": ["client_credentials"]}
    first = admin.ok("POST", "/nhis", attrs, 201)
    again = admin.post("/nhis", {**attrs, "scope": "a"})
    assert again.status_code == 200
    assert "Location" not in again.headers
    first.pop("client_secret")
    assert again.get_json() == first
    events = admin.ok("GET", "/audit/events?event=admin.nhi.create&actor=ops")["items"]
    assert len(events) == 1


def test_create_nhi_when_same_name_other_attributes_then_409(admin):
    _create(admin, "web")
    resp = admin.post("/nhis", {"name": "web", "kind": "agent"})
    assert resp.status_code == 409
    assert resp.get_json() == error(
        409,
        "nhi_conflict",
        "An NHI with this name exists with other attributes.",
        fields=[{"field": "name", "message": "an NHI with this name exists with other attributes"}],
    )


def test_create_nhi_when_sub_taken_by_another_then_409_naming_sub(admin):
    _create(admin, "web", sub="spiffe://example.test/web")
    resp = admin.post(
        "/nhis", {"name": "web2", "kind": "service", "sub": "spiffe://example.test/web"}
    )
    assert resp.status_code == 409
    assert resp.get_json() == error(
        409,
        "nhi_conflict",
        "Sub 'spiffe://example.test/web' is already the sub of NHI 'web'.",
        fields=[
            {
                "field": "sub",
                "message": "sub 'spiffe://example.test/web' is already the sub of NHI 'web'",
            }
        ],
    )


def test_create_nhi_when_jwks_then_no_secret_and_repeat_is_idempotent(admin):
    keys = KeyPair("k1")
    created = _create(admin, "signer", jwks=keys.jwks)
    assert "client_secret" not in created
    assert [(c["type"], c["kids"]) for c in created["credentials"]] == [("jwks", ["k1"])]
    assert (
        admin.post("/nhis", {"name": "signer", "kind": "service", "jwks": keys.jwks}).status_code
        == 200
    )
    other = admin.post("/nhis", {"name": "signer", "kind": "service", "jwks": KeyPair("k2").jwks})
    assert other.status_code == 409


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, [("kind", "is required"), ("name", "is required")]),
        (
            {"name": "bad name", "kind": "robot", "color": "red"},
            [
                ("color", "is not a known field"),
                ("kind", "must be one of service, agent, workload"),
                ("name", "must be 1-128 letters, digits, '.', '_' or '-', starting alphanumeric"),
            ],
        ),
        (
            {
                "name": "web",
                "kind": "service",
                "scope": 5,
                "grants": ["password"],
                "owner": "a\u0000",
            },
            [
                ("grants[0]", f"must be one of client_credentials, token-exchange, {TE}"),
                ("owner", "must not contain control characters"),
                ("scope", "must be a string"),
            ],
        ),
        (
            {"name": "web", "kind": "service", "scope": "bad\\scope"},
            [("scope", "scope must be space-separated RFC 6749 §3.3 scope tokens")],
        ),
        (
            {"name": "web", "kind": "service", "jwks_uri": "ftp://keys.example.test/jwks"},
            [("jwks_uri", "jwks_uri must be an absolute http/https URL")],
        ),
        (
            {"name": "web", "kind": "service", "jwks_uri": "https://[::1/jwks"},
            [("jwks_uri", "jwks_uri must be an absolute http/https URL")],
        ),
        (
            {"name": "web", "kind": "service", "resources": ["https://[::1"]},
            [("resources", "resource 'https://[::1' must be an absolute URI without fragment")],
        ),
        (
            {"name": "web", "kind": "service", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}},
            [("jwks", "JWKS must hold public keys only")],
        ),
        (
            {"name": "web", "kind": "service", "jwks": {"keys": [{"kty": "EC", "kid": 7}]}},
            [("jwks", "JWKS: a kid must be a string (RFC 7517 §4.5)")],
        ),
    ],
)
def test_create_nhi_when_invalid_then_422_listing_each_field(admin, body, fields):
    resp = admin.post("/nhis", body)
    assert resp.status_code == 422
    assert resp.get_json() == invalid(*fields)
    assert admin.ok("GET", "/nhis")["total"] == 1  # only the administrator


def test_admin_body_when_not_json_then_400_and_wrong_type_415_and_array_422(admin):
    bad = admin.post("/nhis", data="{not json", content_type="application/json")
    assert bad.status_code == 400
    assert bad.get_json() == error(400, "malformed_json", "The body is not valid JSON.")
    nan = admin.post("/nhis", data='{"name": NaN}', content_type="application/json")
    assert nan.get_json() == error(400, "malformed_json", "The body is not valid JSON.")
    form = admin.post(
        "/nhis", data="name=web&kind=service", content_type="application/x-www-form-urlencoded"
    )
    assert form.status_code == 415
    assert form.get_json() == error(
        415, "unsupported_media_type", "The body must be application/json."
    )
    listed = admin.post("/nhis", ["web"])
    assert listed.status_code == 422
    assert listed.get_json() == invalid(("(body)", "must be an object"))


def test_admin_body_when_number_not_finite_then_400_and_integral_float_is_an_integer(admin):
    _create(admin, "web")
    body = '{"actor": "web", "targets": ["web"], "scope": "a", "max_ttl": 1e999}'
    resp = admin.post("/rules", data=body, content_type="application/json")
    assert resp.status_code == 400
    assert resp.get_json() == error(400, "malformed_json", "The body is not valid JSON.")
    rule = admin.ok(
        "POST",
        "/rules",
        {"actor": "web", "targets": ["web"], "scope": "a", "max_depth": 2.0, "max_ttl": 6e1},
        201,
    )
    assert (rule["max_depth"], rule["max_ttl"]) == (2, 60)


def test_admin_body_when_too_large_then_413(admin):
    resp = admin.post("/nhis", {"name": "web", "kind": "service", "owner": "x" * 70_000})
    assert resp.status_code == 413
    assert resp.get_json() == error(413, "payload_too_large", "The body is too large.")


def test_list_nhis_when_paged_and_filtered_then_matching_page_and_total(admin):
    for name, kind in [("a1", "agent"), ("a2", "agent"), ("s1", "service"), ("w1", "workload")]:
        _create(admin, name, kind=kind)
    admin.ok("POST", "/nhis/a2/disable", {"reason": "r"})
    page = admin.ok("GET", "/nhis?limit=2&offset=1")
    assert [i["client_id"] for i in page["items"]] == ["a2", "ops"]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 1)
    agents = admin.ok("GET", "/nhis?kind=agent&status=active")
    assert [i["client_id"] for i in agents["items"]] == ["a1"] and agents["total"] == 1


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("limit=0", [("limit", "must be at least 1")]),
        (
            "limit=1001&offset=-1",
            [("limit", "must be at most 1000"), ("offset", "must be at least 0")],
        ),
        ("limit=ten", [("limit", "must be an integer")]),
        ("kind=robot", [("kind", "must be one of service, agent, workload")]),
        ("limit=1&limit=2", [("limit", "must be given once")]),
    ],
)
def test_list_nhis_when_query_invalid_then_422(admin, query, fields):
    resp = admin.get(f"/nhis?{query}")
    assert resp.status_code == 422
    assert resp.get_json() == invalid(*fields)


@pytest.mark.parametrize("name", ["ghost", "not%20a%20name", "-dash"])
def test_get_nhi_when_unknown_or_not_a_name_then_404(admin, name):
    resp = admin.get(f"/nhis/{name}")
    assert resp.status_code == 404
    description = "No NHI named 'ghost'." if name == "ghost" else "Nhi not found"
    assert resp.get_json() == error(404, "nhi_not_found", description)


def test_disable_nhi_when_reason_then_disabled_and_enable_restores(client, admin):
    created = _create(admin, "web")
    web = Registered("web", created["client_secret"], "web")
    disabled = admin.ok("POST", "/nhis/web/disable", {"reason": "compromised"})
    assert (disabled["status"], disabled["status_reason"]) == ("disabled", "compromised")
    assert client_credentials(client, web).status_code == 401
    assert admin.ok("POST", "/nhis/web/enable")["status"] == "active"
    assert client_credentials(client, web).status_code == 200


def test_disable_nhi_when_no_or_blank_reason_then_422(admin):
    _create(admin, "web")
    assert admin.post("/nhis/web/disable").get_json() == invalid(("reason", "is required"))
    blank = admin.post("/nhis/web/disable", {"reason": "  "})
    assert blank.status_code == 422
    assert blank.get_json() == invalid(("reason", "a reason is required to disable an NHI"))


def test_disable_nhi_when_unknown_then_404_before_the_body_is_judged(admin):
    resp = admin.post("/nhis/ghost/disable")
    assert resp.status_code == 404
    assert resp.get_json() == error(404, "nhi_not_found", "No NHI named 'ghost'.")


# -- credentials -----------------------------------------------------------------------------


def test_add_secret_when_not_replacing_then_both_secrets_work(client, admin):
    first = _create(admin, "web")["client_secret"]
    resp = admin.post("/nhis/web/credentials", {"type": "secret"})
    assert resp.status_code == 201
    added = resp.get_json()
    second = added.pop("client_secret")
    assert resp.headers["Location"] == f"/admin/v1/nhis/web/credentials/{added['id']}"
    assert added == admin.ok("GET", f"/nhis/web/credentials/{added['id']}")
    assert (added["type"], added["status"], added["expires_at"]) == ("secret", "active", None)
    for secret in (first, second):
        assert client_credentials(client, Registered("web", secret, "web")).status_code == 200
    listed = admin.ok("GET", "/nhis/web/credentials")["items"]
    assert [c["status"] for c in listed] == ["active", "active"]


def test_add_secret_when_replacing_with_grace_then_old_ones_expire_then(client, admin, clock):
    old = _create(admin, "web")["client_secret"]
    added = admin.ok(
        "POST", "/nhis/web/credentials", {"type": "secret", "replace": True, "grace": 60}, 201
    )
    listed = {c["id"]: c for c in admin.ok("GET", "/nhis/web/credentials")["items"]}
    assert listed.pop(added["id"])["expires_at"] is None
    assert [c["expires_at"] for c in listed.values()] == [clock.now() + 60]
    assert client_credentials(client, Registered("web", old, "web")).status_code == 200
    clock.advance(61)
    assert client_credentials(client, Registered("web", old, "web")).status_code == 401
    new = Registered("web", added["client_secret"], "web")
    assert client_credentials(client, new).status_code == 200


def test_add_jwks_when_replacing_at_once_then_previous_keys_revoked(admin):
    _create(admin, "signer", jwks=KeyPair("k1").jwks)
    admin.ok(
        "POST",
        "/nhis/signer/credentials",
        {"type": "jwks_uri", "jwks_uri": "https://k.example.test/jwks"},
        201,
    )
    replaced = admin.ok(
        "POST",
        "/nhis/signer/credentials",
        {"type": "jwks", "jwks": KeyPair("k2").jwks, "replace": True},
        201,
    )
    listed = {c["id"]: c for c in admin.ok("GET", "/nhis/signer/credentials")["items"]}
    assert listed.pop(replaced["id"]) == replaced and replaced["kids"] == ["k2"]
    assert sorted((c["type"], c["status"]) for c in listed.values()) == [
        ("jwks", "revoked"),
        ("jwks_uri", "revoked"),
    ]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, [("type", "is required")]),
        ({"type": "jwks"}, [("jwks", "is required with type jwks")]),
        (
            {"type": "secret", "jwks_uri": "https://k.example.test"},
            [("jwks_uri", "is not allowed with type secret")],
        ),
        ({"type": "secret", "grace": 10}, [("grace", "is only allowed with replace")]),
        ({"type": "secret", "replace": True, "grace": -1}, [("grace", "must be at least 0")]),
    ],
)
def test_add_credential_when_invalid_then_422(admin, body, fields):
    _create(admin, "web")
    resp = admin.post("/nhis/web/credentials", body)
    assert resp.status_code == 422
    assert resp.get_json() == invalid(*fields)


def test_credential_when_of_another_nhi_or_unknown_then_404(admin):
    _create(admin, "web")
    cred = admin.ok("GET", "/nhis/ops/credentials")["items"][0]["id"]
    other = admin.get(f"/nhis/web/credentials/{cred}")
    assert other.status_code == 404
    assert other.get_json() == error(
        404, "credential_not_found", f"NHI 'web' has no credential '{cred}'."
    )
    ghost = admin.get("/nhis/ghost/credentials")
    assert ghost.get_json() == error(404, "nhi_not_found", "No NHI named 'ghost'.")
    assert admin.post(f"/nhis/web/credentials/{cred}/revoke").status_code == 404


def test_revoke_credential_when_tokens_obtained_with_it_then_they_die_with_it(client, admin):
    secret = _create(admin, "web", scope="a")["client_secret"]
    web = Registered("web", secret, "web")
    token = token_for(client, web)
    cred = admin.ok("GET", "/nhis/web/credentials")["items"][0]["id"]
    result = admin.ok("POST", f"/nhis/web/credentials/{cred}/revoke", {"reason": "leaked"})
    assert {k: result[k] for k in ("kind", "target", "dry_run", "tokens")} == {
        "kind": "credential",
        "target": cred,
        "dry_run": False,
        "tokens": 1,
    }
    assert admin.ok("GET", f"/nhis/web/credentials/{cred}")["status"] == "revoked"
    assert client_credentials(client, web).status_code == 401
    jti = claims_of(token)["jti"]
    assert admin.ok("GET", f"/tokens/{jti}/chain")["roots"][0]["status"] == "revoked"


# -- trusted issuers -------------------------------------------------------------------------


def test_add_issuer_when_new_then_201_and_found_by_encoded_identifier(admin):
    idp = PersonIdp()
    body = {
        "issuer": idp.issuer,
        "jwks": idp.keys.jwks,
        "audiences": ["web"],
        "algorithms": ["ES256"],
    }
    resp = admin.post("/issuers", body)
    assert resp.status_code == 201
    assert resp.headers["Location"] == "/admin/v1/issuers/https%3A%2F%2Fidp.example.test"
    added = resp.get_json()
    assert added == admin.ok("GET", "/issuers/https%3A%2F%2Fidp.example.test")
    assert {k: v for k, v in added.items() if k != "created_at"} == {
        "issuer": idp.issuer,
        "jwks_uri": None,
        "kids": ["idp-1"],
        "algorithms": ["ES256"],
        "audiences": ["web"],
        "scope_mode": "rule",
        "status": "active",
    }
    assert admin.ok("GET", "/issuers")["items"] == [added]
    assert admin.post("/issuers", body).status_code == 200
    conflict = admin.post("/issuers", {**body, "scope_mode": "cap"})
    assert conflict.status_code == 409
    assert conflict.get_json() == error(
        409,
        "issuer_conflict",
        "This issuer is already trusted with other settings.",
        fields=[
            {"field": "issuer", "message": "this issuer is already trusted with other settings"}
        ],
    )


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (
            {"issuer": "not a uri"},
            [("issuer", "must be an absolute URI of printable ASCII characters")],
        ),
        (
            {"issuer": "https://idp.example.test"},
            [("jwks", "give exactly one of a JWKS or a JWKS URI")],
        ),
        (
            {
                "issuer": "https://idp.example.test",
                "jwks_uri": "https://idp.example.test/k",
                "algorithms": ["HS256"],
            },
            [
                (
                    "algorithms[0]",
                    "must be one of "
                    + ", ".join(
                        [
                            "ES256",
                            "ES384",
                            "ES512",
                            "RS256",
                            "RS384",
                            "RS512",
                            "PS256",
                            "PS384",
                            "PS512",
                            "EdDSA",
                        ]
                    ),
                )
            ],
        ),
    ],
)
def test_add_issuer_when_invalid_then_422(admin, body, fields):
    resp = admin.post("/issuers", body)
    assert resp.status_code == 422
    assert resp.get_json() == invalid(*fields)


def test_get_issuer_when_unknown_then_404(admin):
    resp = admin.get("/issuers/https%3A%2F%2Fnobody.example.test")
    assert resp.status_code == 404
    assert resp.get_json() == error(404, "issuer_not_found", "No such trusted issuer.")


# -- delegation rules ------------------------------------------------------------------------


def test_create_rule_when_identical_enabled_rule_exists_then_200_same_rule(admin):
    _create(admin, "web")
    _create(admin, "agent")
    body = {"actor": "web", "targets": ["agent"], "scope": "b a", "max_ttl": 120}
    resp = admin.post("/rules", body)
    assert resp.status_code == 201
    rule = resp.get_json()
    assert resp.headers["Location"] == f"/admin/v1/rules/{rule['id']}"
    assert {k: v for k, v in rule.items() if k not in ("id", "created_at")} == {
        "actor": "web",
        "targets": ["agent"],
        "scope": "a b",
        "subject": "any",
        "subject_issuer": None,
        "upstream": None,
        "max_depth": None,
        "max_ttl": 120,
        "expires_at": None,
        "require_dpop": False,
        "status": "enabled",
    }
    assert admin.ok("POST", "/rules", {**body, "scope": "a b"}) == rule
    wider = admin.ok("POST", "/rules", {**body, "targets": ["agent", "web"]}, 201)
    assert wider["id"] != rule["id"]
    admin.ok("POST", f"/rules/{rule['id']}/disable", {"reason": "r"})
    assert admin.ok("POST", "/rules", body, 201)["id"] not in (rule["id"], wider["id"])


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, [("actor", "is required"), ("scope", "is required"), ("targets", "is required")]),
        (
            {"actor": "ghost", "targets": ["web"], "scope": "a"},
            [("actor", "actor 'ghost' is not a registered NHI")],
        ),
        (
            {"actor": "web", "targets": ["ghost"], "scope": "a"},
            [("targets", "target 'ghost' is not a registered NHI")],
        ),
        (
            {"actor": "web", "targets": ["web"], "scope": "a", "upstream": "ghost"},
            [("upstream", "upstream 'ghost' is not a registered NHI")],
        ),
        (
            {"actor": "web", "targets": [], "scope": "a", "max_depth": 0},
            [("max_depth", "must be at least 1"), ("targets", "must hold at least 1 item")],
        ),
        (
            {"actor": "web", "targets": ["web"], "scope": "a", "expires": "2000-01-01T00:00:00Z"},
            [("expires", "expires must be in the future")],
        ),
        (
            {"actor": "web", "targets": ["web"], "scope": "a", "subject": "kind:robot"},
            [("subject", "subject kind must be one of service, agent, workload")],
        ),
    ],
)
def test_create_rule_when_invalid_then_422_naming_the_field(admin, body, fields):
    _create(admin, "web")
    resp = admin.post("/rules", body)
    assert resp.status_code == 422
    assert resp.get_json() == invalid(*fields)


def test_list_rules_when_filtered_and_paged_then_matching(admin):
    _create(admin, "web")
    _create(admin, "agent")
    first = admin.ok("POST", "/rules", {"actor": "web", "targets": ["agent"], "scope": "a"}, 201)
    second = admin.ok("POST", "/rules", {"actor": "agent", "targets": ["*"], "scope": "a"}, 201)
    first = admin.ok("POST", f"/rules/{first['id']}/disable")
    in_order = sorted([first, second], key=lambda r: r["id"])  # created in the same second
    page = admin.ok("GET", "/rules?limit=1&offset=1")
    assert (page["items"], page["total"]) == (in_order[1:], 2)
    assert admin.ok("GET", "/rules?actor=web")["items"][0]["status"] == "disabled"
    assert admin.ok("GET", "/rules?status=enabled")["items"] == [second]


def test_rule_when_unknown_then_404(admin):
    for resp in (admin.get("/rules/rule_missing"), admin.post("/rules/rule_missing/disable")):
        assert resp.status_code == 404
        assert resp.get_json() == error(404, "rule_not_found", "No rule 'rule_missing'.")


# -- routing ---------------------------------------------------------------------------------


def test_admin_route_when_unknown_then_404_route_not_found(admin):
    resp = admin.get("/nothing/here")
    assert resp.status_code == 404
    assert resp.get_json() == error(404, "route_not_found", "No such admin resource.")


def test_admin_route_when_method_not_allowed_then_405_with_allow(admin):
    resp = admin.call("DELETE", "/nhis/web")
    assert resp.status_code == 405
    assert resp.get_json() == error(405, "method_not_allowed", "This method is not allowed here.")
    assert set(resp.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_non_admin_route_when_unknown_then_app_error_shape_unchanged(client):
    resp = client.get("/nothing")
    assert resp.status_code == 404
    assert resp.get_json() == {"error": "not_found", "error_description": "Not Found"}
