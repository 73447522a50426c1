"""Access reports (DESIGN §10): the audience of a token reports what it did under it.

Every refusal is asserted whole, on both backends, and stores nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from sts.services import audit, gc
from sts.store.admin import admin_store
from sts.store.models import AccessReportRow, AuditEvent
from sts.store.revocation import revoke
from tests.conftest import ISSUER
from tests.helpers import basic
from tests.test_revocation import INVALID_CLIENT, World, build_world

PATH = "/access-reports"
JSON = "application/json"


@pytest.fixture
def world(client: Any, runtime: Any, make_nhi: Any, clock: Any) -> World:
    world = build_world(client, runtime, make_nhi, clock)
    world.chains["alice"] = world.run_chain("alice")
    return world


def refused(code: str, description: str, status: int = 400, **extra: Any) -> dict[str, Any]:
    return {"error": "invalid_request", "error_description": description, "code": code, **extra}


def post(world: World, body: Any, who: str = "data", **kwargs: Any) -> Any:
    nhi = world.nhis[who]
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    kwargs.setdefault("content_type", JSON)
    headers = kwargs.pop("headers", basic(nhi.client_id, nhi.secret or ""))
    return world.client.post(PATH, data=data, headers=headers, **kwargs)


def stored(world: World) -> int:
    with world.runtime.engine.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(AccessReportRow)).scalar_one())


def last_hop(world: World) -> Any:
    return world.chains["alice"].hops[-1]  # tool -> data: addressed to data


def report(world: World, **overrides: Any) -> dict[str, Any]:
    return {
        "jti": last_hop(world).jti,
        "resource": "db://orders",
        "action": "read",
        "data_classes": ["pii", "financial"],
        "records": 12,
        "bytes": 2048,
        "destination": "agent",
        "outcome": "success",
        "at": world.clock.now(),
        **overrides,
    }


def test_report_when_audience_reports_then_201_and_stored_under_its_hop(world: World) -> None:
    resp = post(world, report(world))
    assert resp.status_code == 201
    assert resp.json == {"stored": 1}
    assert resp.headers["Cache-Control"] == "no-store"
    with admin_store(world.runtime.engine) as store:
        story = audit.show(store, now=world.clock.now(), txn=world.chains["alice"].txn)
    hop = next(h for h in story["hops"] if h["jti"] == last_hop(world).jti)
    assert hop["reports"] == [
        {
            "jti": last_hop(world).jti,
            "resource": "db://orders",
            "action": "read",
            "data_classes": ["pii", "financial"],
            "records": 12,
            "bytes": 2048,
            "destination": "agent",
            "outcome": "success",
            "at": world.clock.now(),
            "reported_by": "data",
        }
    ]
    assert story["accessed"] == {
        "reports": 1,
        "resources": ["db://orders"],
        "data_classes": ["financial", "pii"],
        "records": 12,
        "bytes": 2048,
        "destinations": ["agent"],
    }
    assert all(h["reports"] == [] for h in story["hops"] if h["jti"] != last_hop(world).jti)


def test_report_when_batch_then_all_stored_and_only_required_fields_suffice(
    world: World,
) -> None:
    jti = last_hop(world).jti
    batch = {"reports": [report(world), {"jti": jti, "resource": "db://x", "action": "list"}]}
    resp = post(world, batch)
    assert (resp.status_code, resp.json) == (201, {"stored": 2})
    assert stored(world) == 2


def test_report_when_client_secret_post_members_then_accepted(world: World) -> None:
    nhi = world.nhis["data"]
    body = {**report(world), "client_id": nhi.client_id, "client_secret": nhi.secret}
    resp = post(world, body, headers={})
    assert (resp.status_code, resp.json) == (201, {"stored": 1})


def test_report_when_wrong_secret_then_invalid_client_and_nothing_stored(world: World) -> None:
    resp = post(world, report(world), headers=basic("data", "wrong"))
    assert resp.status_code == 401
    assert resp.json == INVALID_CLIENT
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    assert stored(world) == 0


def test_report_when_no_credentials_then_invalid_client(world: World) -> None:
    resp = post(world, report(world), headers={})
    assert (resp.status_code, resp.json) == (401, INVALID_CLIENT)


UNKNOWN = refused("unknown_token", "The token is unknown or not addressed to this client.")


def test_report_when_unknown_jti_then_unknown_token(world: World) -> None:
    resp = post(world, report(world, jti="no-such-token"))
    assert (resp.status_code, resp.json) == (400, UNKNOWN)
    assert stored(world) == 0


def test_report_when_token_addressed_to_another_then_same_answer_as_unknown(
    world: World,
) -> None:
    """The agent's token (addressed to the tool) cannot be reported on by data, nor the
    data's token by the tool that holds it: only the audience reports."""
    agent_to_tool = world.chains["alice"].hops[1]
    resp = post(world, report(world, jti=agent_to_tool.jti))
    assert (resp.status_code, resp.json) == (400, UNKNOWN)
    resp = post(world, report(world), who="tool")
    assert (resp.status_code, resp.json) == (400, UNKNOWN)
    assert stored(world) == 0
    with world.runtime.engine.begin() as conn:
        events = conn.execute(
            select(AuditEvent.client_id, AuditEvent.reason).where(
                AuditEvent.event == "access_report.denied"
            )
        ).all()
    assert [tuple(e) for e in events] == [
        ("data", "report on a token addressed to tool"),
        ("tool", "report on a token addressed to data"),
    ]


def test_report_when_past_exp_plus_grace_then_token_expired(world: World) -> None:
    grace = world.runtime.settings.access_report_grace
    exp = int(last_hop(world).claims["exp"])
    world.clock.at = exp + grace
    resp = post(world, report(world, at=exp))
    assert (resp.status_code, resp.json) == (201, {"stored": 1})
    world.clock.at = exp + grace + 1
    resp = post(world, report(world, at=exp))
    assert resp.status_code == 400
    assert resp.json == refused(
        "token_expired", "The token's lifetime and grace period have passed."
    )
    assert stored(world) == 1


@pytest.mark.parametrize(
    ("at", "now"),
    [
        (lambda c: c["iat"] - 3600, lambda c: c["exp"]),  # before it was issued
        (lambda c: c["exp"] + 90, lambda c: c["exp"] + 100),  # after it expired
        (lambda c: c["iat"] + 200, lambda c: c["iat"] + 100),  # in the future
    ],
)
def test_report_when_at_outside_token_lifetime_then_refused(
    world: World, at: Any, now: Any
) -> None:
    claims = last_hop(world).claims
    world.clock.at = int(now(claims))
    resp = post(world, report(world, at=int(at(claims))))
    assert resp.status_code == 400
    assert resp.json == refused(
        "at_outside_lifetime", "The access time is outside the token's lifetime."
    )
    assert stored(world) == 0


def test_report_when_batch_holds_one_bad_report_then_nothing_stored(world: World) -> None:
    good = report(world)
    resp = post(world, {"reports": [good, good, report(world, jti="unknown")]})
    assert (resp.status_code, resp.json) == (400, UNKNOWN)
    assert stored(world) == 0


def test_report_when_batch_over_100_then_batch_too_large(world: World) -> None:
    resp = post(world, {"reports": [report(world)] * 101})
    assert resp.status_code == 400
    assert resp.json == refused("batch_too_large", "A batch holds at most 100 reports.")
    assert stored(world) == 0


def invalid(*fields: tuple[str, str]) -> dict[str, Any]:
    return refused(
        "invalid_report",
        "A report is malformed.",
        fields=[{"field": f, "message": m} for f, m in fields],
    )


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"resource": "r", "action": "read"}, [("jti", "is required")]),
        ({"jti": "x"}, [("resource", "is required"), ("action", "is required")]),
        (
            {"jti": "x", "resource": "r", "action": "read", "records": "12"},
            [("records", "must be a non-negative integer")],
        ),
        (
            {"jti": "x", "resource": "r", "action": "read", "records": -1},
            [("records", "must be a non-negative integer")],
        ),
        (
            {"jti": "x", "resource": "r", "action": "read", "bytes": True},
            [("bytes", "must be a non-negative integer")],
        ),
        (
            {"jti": "x", "resource": "r", "action": "read", "data_classes": "pii"},
            [("data_classes", "must be an array of at most 32 strings")],
        ),
        (
            {"jti": "x", "resource": "r", "action": "read", "data_classes": [1]},
            [("data_classes", "must hold strings of 1 to 64 printable characters")],
        ),
        (
            {"jti": "x", "resource": "", "action": "read"},
            [("resource", "must be a string of 1 to 2048 characters")],
        ),
        (
            {"jti": "x", "resource": "r\n", "action": "read"},
            [("resource", "must not hold control characters")],
        ),
        (
            {"jti": "x", "resource": "r", "action": "read", "sql": "select"},
            [("sql", "unknown member")],
        ),
        ({"jti": 7, "resource": "r", "action": "read"}, [("jti", "must be a token's jti")]),
        ({"reports": []}, [("reports", "must be a non-empty array")]),
        (
            {"reports": [{"jti": "x", "resource": "r", "action": "read"}, 5]},
            [("reports[1]", "must be an object")],
        ),
        (
            {"reports": [{"jti": "x", "action": "read"}]},
            [("reports[0].resource", "is required")],
        ),
        (
            {"reports": [{"jti": "x", "resource": "r", "action": "read"}], "jti": "x"},
            [("jti", "not allowed beside reports")],
        ),
        ([1, 2], [("(body)", "must be a JSON object")]),
        (
            {"jti": "x", "resource": "r", "action": "read", "client_secret": 5},
            [("client_secret", "must be a string")],
        ),
    ],
)
def test_report_when_ill_typed_or_missing_field_then_invalid_report(
    world: World, body: Any, fields: list[tuple[str, str]]
) -> None:
    resp = post(world, body)
    assert resp.status_code == 400
    assert resp.json == invalid(*fields)
    assert stored(world) == 0


@pytest.mark.parametrize("raw", [b"{", b"not json", b"\xff\xfe", b'{"records": NaN}', b""])
def test_report_when_not_json_then_malformed_json(world: World, raw: bytes) -> None:
    resp = post(world, raw)
    assert resp.status_code == 400
    assert resp.json == refused("malformed_json", "The body is not valid JSON.")


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", ""])
def test_report_when_not_application_json_then_415(world: World, content_type: str) -> None:
    resp = post(world, report(world), content_type=content_type)
    assert resp.status_code == 415
    assert resp.json == refused("unsupported_media_type", "The body must be application/json.")
    assert stored(world) == 0


def test_report_when_body_too_large_then_413(world: World) -> None:
    limit = world.runtime.settings.max_request_bytes
    body = json.dumps(report(world, destination="x" * limit))
    resp = post(world, body)
    assert resp.status_code == 413
    assert resp.json == refused("body_too_large", "Request too large.")
    assert stored(world) == 0


def test_report_when_get_then_405_json(world: World) -> None:
    resp = world.client.get(PATH)
    assert resp.status_code == 405
    assert resp.json == {"error": "invalid_request", "error_description": "Method Not Allowed"}


def test_reports_when_lineage_housekept_or_revoked_then_kept(world: World) -> None:
    post(world, report(world))
    txn = world.chains["alice"].txn
    with world.runtime.engine.begin() as conn:
        revoke(conn, "txn", txn, now=world.clock.now(), admin="test")
    later = int(last_hop(world).claims["exp"]) + 40 * 86400
    world.clock.at = later
    result = gc.collect(
        lambda: admin_store(world.runtime.engine), now=later, retention_seconds=86400
    )
    assert result["lineage_rows"] >= 3
    assert stored(world) == 1
    with admin_store(world.runtime.engine) as store:
        story = audit.show(store, now=later, txn=txn)
    hop = next(h for h in story["hops"] if h["jti"] == last_hop(world).jti)
    assert [r["resource"] for r in hop["reports"]] == ["db://orders"]


def test_metadata_when_fetched_then_names_the_access_report_endpoint(world: World) -> None:
    meta = world.client.get("/.well-known/oauth-authorization-server").json
    assert meta["access_report_endpoint"] == ISSUER + PATH
    assert meta["access_report_endpoint_auth_methods_supported"] == meta[
        "token_endpoint_auth_methods_supported"
    ]


def test_report_when_member_name_is_token_shaped_then_echoed_to_sender_but_never_logged(
    world: World, sts_log_records: list[Any]
) -> None:
    name = "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl"
    resp = post(world, report(world, **{name: 1}))
    assert resp.status_code == 400
    assert resp.json == invalid((name, "unknown member"))
    logged = [r for r in sts_log_records if getattr(r, "reason", "").startswith("malformed")]
    assert [r.reason for r in logged] == ["malformed report: 1 member(s) not defined here"]
