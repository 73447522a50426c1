"""Who may use the admin API: bearer tokens this STS issued by client_credentials to an active
NHI for itself, and only within the admin scopes they carry."""

from __future__ import annotations

from typing import Any

import pytest

from tests.admin_api_helpers import Api, admin, admin_nhi, error, scoped, token_for
from tests.conftest import Registered
from tests.exchange_fixtures import PersonIdp, exchange
from tests.helpers import basic

__all__ = ["admin", "admin_nhi"]  # fixtures

CHALLENGE = 'Bearer realm="chain-sts-admin"'
INVALID = 'Bearer realm="chain-sts-admin", error="invalid_token"'
NOT_ADMIN = error(401, "invalid_token", "The token is not a valid admin token.")


def _refused(resp: Any, body: dict[str, Any], challenge: str = INVALID) -> None:
    assert resp.status_code == 401
    assert resp.get_json() == body
    assert resp.headers["WWW-Authenticate"] == challenge
    assert resp.headers["Cache-Control"] == "no-store"


def test_admin_api_when_no_token_then_401_missing_token_with_bearer_challenge(client):
    resp = client.get("/admin/v1/nhis")
    assert resp.status_code == 401
    _refused(resp, error(401, "missing_token", "A bearer token is required."), CHALLENGE)


@pytest.mark.parametrize(
    "authorization",
    ["Basic b3BzOnNlY3JldA==", "Bearer", "Bearer ", "Token abc", "bearer not-a-jwt"],
)
def test_admin_api_when_authorization_not_a_usable_bearer_then_401(client, authorization):
    resp = client.get("/admin/v1/nhis", headers={"Authorization": authorization})
    assert resp.status_code == 401
    expected = (
        NOT_ADMIN
        if authorization == "bearer not-a-jwt"
        else error(401, "invalid_token", "The Authorization header must carry a bearer token.")
    )
    _refused(resp, expected)


def test_admin_api_when_full_admin_token_then_reads_and_writes_succeed(admin: Api):
    assert admin.ok("GET", "/nhis")["total"] == 1
    admin.ok("POST", "/nhis", {"name": "web", "kind": "service"}, 201)
    assert admin.ok("POST", "/nhis/web/disable", {"reason": "test"})["status"] == "disabled"


def test_admin_api_when_token_minted_by_exchange_then_401_even_with_admin_scope(client, admin):
    """An NHI allowed sts:admin for itself may use its client_credentials token, never a
    token it exchanged that token for, though sub, scope and absence of act look alike."""
    created = admin.ok(
        "POST",
        "/nhis",
        {"name": "robot", "kind": "agent", "scope": "sts:admin"},
        201,
    )
    robot = Registered("robot", created["client_secret"], "robot")
    admin.ok("POST", "/rules", {"actor": "robot", "targets": ["robot"], "scope": "sts:admin"}, 201)
    root = token_for(client, robot)
    assert Api(client, root).get("/nhis").status_code == 200
    resp = exchange(client, robot, root)
    assert resp.status_code == 200, resp.get_json()
    exchanged = resp.get_json()["access_token"]
    resp = Api(client, exchanged).get("/nhis")
    assert resp.status_code == 401
    _refused(resp, NOT_ADMIN)


def test_admin_api_when_token_addressed_to_another_nhi_then_401(client, admin, admin_nhi):
    admin.ok("POST", "/nhis", {"name": "web", "kind": "service"}, 201)
    resp = client.post(
        "/token",
        data={"grant_type": "client_credentials", "audience": "web"},
        headers=basic(admin_nhi.client_id, admin_nhi.secret),
    )
    assert resp.status_code == 200
    resp = Api(client, resp.get_json()["access_token"]).get("/nhis")
    assert resp.status_code == 401
    _refused(resp, NOT_ADMIN)


def test_admin_api_when_token_from_trusted_issuer_then_401(client, admin, clock):
    idp = PersonIdp()
    admin.ok(
        "POST",
        "/issuers",
        {"issuer": idp.issuer, "jwks": idp.keys.jwks, "algorithms": ["ES256"]},
        201,
    )
    person = idp.token("ops", "https://sts.example.test", clock.now(), scope="sts:admin")
    resp = Api(client, person).get("/nhis")
    assert resp.status_code == 401
    _refused(resp, NOT_ADMIN)


def test_admin_api_when_admin_nhi_disabled_then_its_token_dies_and_enabling_needs_a_new_one(
    client, admin
):
    created = admin.ok(
        "POST",
        "/nhis",
        {
            "name": "second",
            "kind": "service",
            "scope": "sts:admin",
            "grants": ["client_credentials"],
        },
        201,
    )
    who = Registered("second", created["client_secret"], "second")
    second = Api(client, token_for(client, who))
    admin.ok("POST", "/nhis/second/disable", {"reason": "leaver"})
    _refused(second.get("/nhis"), NOT_ADMIN)
    admin.ok("POST", "/nhis/second/enable")
    # Disabling is containment (DESIGN §7): the token it held stays revoked; enabling only
    # lets it obtain new ones.
    _refused(second.get("/nhis"), NOT_ADMIN)
    assert Api(client, token_for(client, who)).get("/nhis").status_code == 200


def test_admin_api_when_admin_token_revoked_then_401(client, admin):
    second = scoped(client, admin, "second", "sts:admin")
    chain = admin.ok("GET", "/audit/events?event=token.issued&actor=second")["items"]
    admin.ok("POST", "/revocations", {"kind": "token", "target": chain[0]["jti"]}, 201)
    resp = second.get("/nhis")
    assert resp.status_code == 401
    _refused(resp, NOT_ADMIN)


def test_admin_api_when_admin_token_expired_then_401(admin, clock):
    clock.advance(301)
    resp = admin.get("/nhis")
    assert resp.status_code == 401
    _refused(resp, NOT_ADMIN)


def test_admin_api_when_token_has_no_admin_scope_then_403(client, admin):
    plain = scoped(client, admin, "billing", "invoices:read")
    resp = plain.get("/nhis")
    assert resp.status_code == 403
    assert resp.get_json() == error(
        403, "insufficient_scope", "This needs one of the scopes: sts:admin, sts:audit."
    )
    assert resp.headers["WWW-Authenticate"] == (
        'Bearer realm="chain-sts-admin", error="insufficient_scope", scope="sts:admin sts:audit"'
    )


WRITES = [
    ("POST", "/nhis", {"name": "x", "kind": "service"}),
    ("POST", "/nhis/ops/enable", None),
    ("POST", "/nhis/ops/credentials", {"type": "secret"}),
    ("POST", "/issuers", {"issuer": "https://idp.example.test", "jwks_uri": "https://x.test/k"}),
    ("POST", "/rules", {"actor": "ops", "targets": ["ops"], "scope": "a"}),
]
CONTAINMENT = [
    ("POST", "/nhis/ops/disable", {"reason": "r"}),
    ("POST", "/nhis/ops/credentials/cred_0/revoke", {}),
    ("POST", "/rules/rule_0/disable", {}),
    ("POST", "/revocations", {"kind": "nhi", "target": "ops"}),
]
READS = [
    ("GET", "/nhis", None),
    ("GET", "/nhis/ops", None),
    ("GET", "/nhis/ops/credentials", None),
    ("GET", "/nhis/ops/credentials/cred_0", None),
    ("GET", "/issuers", None),
    ("GET", "/issuers/https%3A%2F%2Fidp.example.test", None),
    ("GET", "/rules", None),
    ("GET", "/rules/rule_0", None),
    ("GET", "/transactions/t0/chain", None),
    ("GET", "/tokens/t0/chain", None),
    ("GET", "/transactions/t0/audit", None),
    ("GET", "/tokens/t0/audit", None),
    ("GET", "/audit/events", None),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES + CONTAINMENT)
def test_admin_api_when_audit_token_changes_anything_then_403(client, admin, method, path, body):
    auditor = scoped(client, admin, "auditor", "sts:audit")
    resp = auditor.call(method, path, body)
    assert resp.status_code == 403
    needed = "sts:admin" if (method, path, body) in WRITES else "sts:admin, sts:revoke"
    assert resp.get_json() == error(
        403, "insufficient_scope", f"This needs one of the scopes: {needed}."
    )


@pytest.mark.parametrize(("method", "path", "body"), WRITES + READS)
def test_admin_api_when_revoke_token_reads_or_provisions_then_403(
    client, admin, method, path, body
):
    responder = scoped(client, admin, "responder", "sts:revoke")
    resp = responder.call(method, path, body)
    assert resp.status_code == 403
    needed = "sts:admin" if (method, path, body) in WRITES else "sts:admin, sts:audit"
    assert resp.get_json() == error(
        403, "insufficient_scope", f"This needs one of the scopes: {needed}."
    )


@pytest.mark.parametrize(("method", "path", "body"), READS)
def test_admin_api_when_audit_token_reads_then_not_refused(client, admin, method, path, body):
    auditor = scoped(client, admin, "auditor", "sts:audit")
    assert auditor.call(method, path, body).status_code in (200, 404)


def test_admin_api_when_revoke_token_contains_then_done(client, admin):
    responder = scoped(client, admin, "responder", "sts:revoke")
    admin.ok("POST", "/nhis", {"name": "agent", "kind": "agent"}, 201)
    rule = admin.ok("POST", "/rules", {"actor": "agent", "targets": ["*"], "scope": "a"}, 201)
    assert responder.ok("POST", "/nhis/agent/disable", {"reason": "leak"})["status"] == "disabled"
    assert responder.ok("POST", f"/rules/{rule['id']}/disable")["status"] == "disabled"
    result = responder.ok("POST", "/revocations", {"kind": "nhi", "target": "agent"}, 201)
    assert result["dry_run"] is False and result["revocation_id"] is not None


def test_admin_api_when_audit_token_dry_runs_a_revocation_then_blast_radius(client, admin):
    auditor = scoped(client, admin, "auditor", "sts:audit")
    result = auditor.ok("POST", "/revocations", {"kind": "nhi", "target": "ops", "dry_run": True})
    assert result["dry_run"] is True and result["revocation_id"] is None


def test_admin_api_when_narrowed_token_of_full_admin_then_only_that_scope(client, admin_nhi):
    auditing = Api(client, token_for(client, admin_nhi, scope="sts:audit"))
    assert auditing.get("/nhis").status_code == 200
    assert auditing.post("/nhis", {"name": "x", "kind": "service"}).status_code == 403


def test_admin_api_when_refused_then_denial_audited_with_identity(client, admin):
    auditor = scoped(client, admin, "auditor", "sts:audit")
    assert auditor.post("/nhis", {"name": "x", "kind": "service"}).status_code == 403
    assert client.get("/admin/v1/rules").status_code == 401
    denied = admin.ok("GET", "/audit/events?event=admin.denied")["items"]
    assert [(e["client_id"], e["decision"], e["detail"]) for e in denied] == [
        (None, "denied", {"method": "GET", "path": "/admin/v1/rules", "code": "missing_token"}),
        (
            "auditor",
            "denied",
            {"method": "POST", "path": "/admin/v1/nhis", "code": "insufficient_scope"},
        ),
    ]


def test_admin_api_when_changes_made_then_audit_events_name_the_admin(client, admin):
    admin.ok("POST", "/nhis", {"name": "web", "kind": "service"}, 201)
    admin.ok("POST", "/nhis/web/disable", {"reason": "r"})
    admin.ok("POST", "/nhis/web/enable")
    admin.ok("POST", "/nhis/web/credentials", {"type": "secret"}, 201)
    rule = admin.ok("POST", "/rules", {"actor": "web", "targets": ["web"], "scope": "a"}, 201)
    admin.ok("POST", f"/rules/{rule['id']}/disable", {"reason": "r"})
    admin.ok("POST", "/revocations", {"kind": "nhi", "target": "web"}, 201)
    events = admin.ok("GET", "/audit/events?decision=done")["items"]
    assert [(e["event"], e["client_id"]) for e in reversed(events)] == [
        ("admin.nhi.create", "test"),  # the bootstrap
        ("admin.nhi.create", "ops"),
        ("admin.nhi.disable", "ops"),
        ("admin.nhi.enable", "ops"),
        ("admin.credential.add", "ops"),
        ("admin.rule.create", "ops"),
        ("admin.rule.disable", "ops"),
        ("admin.revoke.nhi", "ops"),
    ]
