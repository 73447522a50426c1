"""Who revoked (DESIGN §8): a client revoking its own token at the RFC 7009 endpoint is that
client's act, recorded as such (``token.revoked``, allowed, the client as ``client_id``),
never as an administrator's; the audit trail, ``sts audit`` and the admin API say so."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from sts.services import audit
from sts.store.admin import admin_store
from sts.store.models import AuditEvent, Revocation
from tests.admin_api_helpers import Api, admin, admin_nhi
from tests.helpers import FORM, basic
from tests.test_incident_cli import as_json, clock, credential_of, sts, world
from tests.test_revocation import Token, World

__all__ = ["admin", "admin_nhi", "clock", "sts", "world"]  # fixtures
REASON = "revoked by its client (RFC 7009)"


def events_after(world: World, mark: int) -> list[dict[str, Any]]:
    with world.runtime.engine.connect() as conn:
        rows = conn.execute(
            select(AuditEvent).where(AuditEvent.id > mark).order_by(AuditEvent.id)
        ).all()
    return [{k: v for k, v in r._mapping.items() if k not in ("id", "at")} for r in rows]


def last_event_id(world: World) -> int:
    with world.runtime.engine.connect() as conn:
        return int(conn.execute(select(AuditEvent.id).order_by(AuditEvent.id.desc())).first()[0])


def revoke_own(world: World, token: Token) -> Any:
    holder = world.nhis[token.holder]
    resp = world.client.post(
        "/revoke",
        data={"token": token.token},
        content_type=FORM,
        headers={**basic(holder.client_id, holder.secret or ""), "X-Request-Id": "req-7009"},
    )
    assert (resp.status_code, resp.json) == (200, {})
    return resp


def the_event(world: World, token: Token) -> dict[str, Any]:
    """The one event a client's revocation of ``token`` (alice1's agent hop) leaves."""
    hop1 = world.chains["alice1"].hops[0]
    return {
        "request_id": "req-7009",
        "event": "token.revoked",
        "decision": "allowed",
        "reason": REASON,
        "client_id": "agent",
        "credential_id": credential_of(world, "agent"),
        "subject": "alice",
        "target": "tool",
        "scope": "orders:read orders:write",
        "jti": token.jti,
        "parent_jti": hop1.jti,
        "txn": token.claims["txn"],
        "rule_id": None,
        "chain": ["agent", "web"],
        "detail": {"tokens": 2},
    }


def test_rfc7009_when_client_revokes_its_token_then_its_own_event_and_no_admin_one(
    world: World,
) -> None:
    token = world.chains["alice1"].hops[1]
    mark = last_event_id(world)

    revoke_own(world, token)

    assert events_after(world, mark) == [the_event(world, token)]
    with world.runtime.engine.connect() as conn:
        rows = conn.execute(select(Revocation)).all()
    assert [(r.kind, r.target, r.reason, r.revoked_by) for r in rows] == [
        ("token", token.jti, REASON, "agent")
    ]
    with admin_store(world.runtime.engine) as store:
        story = audit.show(store, now=world.clock.now(), jti=token.jti)
    assert story["revocations"] == [
        {
            "id": rows[0].id,
            "kind": "token",
            "target": token.jti,
            "reason": REASON,
            "revoked_by": "agent",
            "revoked_by_kind": "client",
            "at": world.clock.now(),
        }
    ]


def test_audit_cli_when_client_revoked_then_list_and_show_name_the_client(
    world: World, sts: Any
) -> None:
    token = world.chains["alice1"].hops[1]
    revoke_own(world, token)

    [listed] = as_json(sts, "audit", "list", "--event", "token.revoked")["items"]
    assert {k: v for k, v in listed.items() if k not in ("id", "at")} == the_event(world, token)
    header, line = sts("audit", "list", "--event", "token.revoked").stdout.strip().splitlines()
    assert header.split()[:4] == ["TIME", "EVENT", "DECISION", "CLIENT"]
    assert line.split()[1:4] == ["token.revoked", "allowed", "agent"]
    assert line.endswith(REASON)
    shown = sts("audit", "show", "--jti", token.jti).stdout
    assert f"by its client agent (RFC 7009): token {token.jti} ({REASON})" in shown
    assert as_json(sts, "audit", "list", "--event", "admin.revoke.token")["items"] == []


def test_admin_api_when_client_and_administrator_revoked_then_each_shown_as_who_it_was(
    world: World, admin: Api
) -> None:
    chain = world.chains["alice1"]
    revoke_own(world, chain.hops[1])
    admin.ok("POST", "/revocations", {"kind": "token", "target": chain.hops[0].jti}, 201)

    items = admin.ok("GET", "/audit/events?event=token.revoked")["items"]
    assert [{k: v for k, v in e.items() if k not in ("id", "at")} for e in items] == [
        the_event(world, chain.hops[1])
    ]
    story = admin.ok("GET", f"/transactions/{chain.txn}/audit")
    assert [
        (r["kind"], r["target"], r["revoked_by"], r["revoked_by_kind"], r["reason"])
        for r in story["revocations"]
    ] == [
        ("token", chain.hops[1].jti, "agent", "client", REASON),
        ("token", chain.hops[0].jti, "ops", "administrator", ""),
    ]
