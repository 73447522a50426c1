"""The fourth question from the command line and the admin API (DESIGN §8, §10): each hop's
access reports under it in ``sts audit show``, the reverse question ``sts audit touched``, and
human output an operator can scan (hop numbers in chain order, ``audit list`` columns, admin
events that say what they changed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from sts.cli import main
from tests.admin_api_helpers import Api, bootstrap, invalid, token_for
from tests.helpers import basic
from tests.test_incident_cli import as_json
from tests.test_revocation import World, build_world


@pytest.fixture
def world(client: Any, runtime: Any, make_nhi: Any, clock: Any) -> World:
    return build_world(client, runtime, make_nhi, clock)


@pytest.fixture
def sts(runtime: Any, settings: Any) -> Any:
    """``sts`` on the database the STS under test writes to."""
    env = {
        "STS_DATABASE_URL": runtime.engine.url.render_as_string(hide_password=False),
        "STS_KEYS_DIR": str(settings.keys_dir),
    }

    def run(*args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(main, list(args), env=env)
        assert result.exit_code == code, (result.output, result.exception)
        assert "Traceback" not in result.output
        return result

    return run


def report(world: World, chain: str, **fields: Any) -> None:
    hop = world.chains[chain].hops[-1]  # tool -> data: data is its audience
    data = world.nhis["data"]
    body = {"jti": hop.jti, "at": world.clock.now(), **fields}
    resp = world.client.post(
        "/access-reports",
        data=json.dumps(body),
        content_type="application/json",
        headers=basic(data.client_id, data.secret or ""),
    )
    assert resp.status_code == 201, resp.json


@pytest.fixture
def reported(world: World) -> World:
    report(
        world,
        "alice1",
        resource="db://orders",
        action="read",
        data_classes=["pii"],
        records=12,
        bytes=2048,
        destination="agent",
        outcome="success",
    )
    report(world, "bob", resource="db://orders", action="export", data_classes=["financial"])
    report(world, "alice2", resource="db://invoices", action="read")
    return world


def test_audit_show_when_reported_then_each_report_under_its_hop_numbered_in_chain_order(
    reported: World, sts: Any
) -> None:
    chain = reported.chains["alice1"]
    out = sts("audit", "show", "--txn", chain.txn).stdout.splitlines()
    hops = [line for line in out if line.startswith("  hop ")]
    assert [line.split(":")[0].strip() for line in hops] == ["hop 1", "hop 2", "hop 3"]
    assert [line.split()[2] for line in hops] == ["web", "agent", "tool"]
    under_third = out[out.index(hops[2]) + 1]
    at = out[out.index(hops[2]) + 1].split()[0]
    assert under_third == (
        f"    {at} data read db://orders [pii] 12 record(s) 2048 bytes -> agent (success)"
    )
    assert out[-1] == (
        "  accessed: 1 report(s): db://orders [pii], 12 record(s), 2048 bytes, sent to agent"
    )


def test_audit_show_when_nothing_reported_then_says_so(world: World, sts: Any) -> None:
    out = sts("audit", "show", "--txn", world.chains["alice1"].txn).stdout.splitlines()
    assert out[-1] == "  accessed: nothing reported by the services the tokens were addressed to"
    story = as_json(sts, "audit", "show", "--txn", world.chains["alice1"].txn)
    assert story["accessed"] is None
    assert [h["reports"] for h in story["hops"]] == [[], [], []]


def test_audit_touched_when_resource_given_then_chains_with_initiator_and_path(
    reported: World, sts: Any
) -> None:
    found = as_json(sts, "audit", "touched", "--resource", "db://orders")
    assert [c["txn"] for c in found] == [reported.chains[n].txn for n in ("bob", "alice1")]
    bob, alice = found
    assert alice["initiated_by"] == {"subject": "alice", "issuer": reported.idp.issuer}
    assert bob["initiated_by"]["subject"] == "bob"
    assert alice["path"] == bob["path"] == ["web", "agent", "tool", "data"]
    assert (alice["actions"], alice["data_classes"], alice["records"]) == (["read"], ["pii"], 12)
    only_pii = as_json(sts, "audit", "touched", "--resource", "db://orders", "--data-class", "pii")
    assert [c["txn"] for c in only_pii] == [reported.chains["alice1"].txn]
    later = str(reported.clock.now() + 1)
    assert as_json(sts, "audit", "touched", "--resource", "db://orders", "--since", later) == []


def test_audit_touched_when_human_then_initiator_and_path_per_chain(
    reported: World, sts: Any
) -> None:
    out = sts("audit", "touched", "--resource", "db://invoices").stdout.splitlines()
    txn = reported.chains["alice2"].txn
    assert out[0].startswith(f"txn {txn}  initiated by alice (issuer {reported.idp.issuer})")
    assert out[1:] == ["  path: web -> agent -> tool -> data", "  did: read [-] 0 record(s)"]
    none = sts("audit", "touched", "--resource", "db://none").stdout
    assert none == "no reported access to db://none\n"


def test_audit_list_when_admin_events_then_they_say_what_they_changed(
    world: World, sts: Any
) -> None:
    sts("revoke", "nhi", "tool", "--reason", "compromised")
    header, *rows = sts("audit", "list", "--event", "admin.revoke.nhi").stdout.splitlines()
    assert header.split()[-4:] == ["TARGET", "TXN", "JTI", "WHAT"]
    (row,) = rows
    assert row.endswith("revoked nhi tool: 7 live token(s) (compromised)")
    created = sts("audit", "list", "--event", "admin.nhi.create").stdout.splitlines()[1:]
    assert {line.split("  ")[-1].strip() for line in created} == {
        "created service NHI web",
        "created agent NHI agent",
        "created workload NHI tool",
        "created service NHI data",
    }


def test_audit_list_when_token_issued_then_target_txn_and_jti_columns(
    world: World, sts: Any
) -> None:
    hop = world.chains["alice1"].hops[-1]
    lines = sts("audit", "list", "--event", "token.issued", "--limit", "100").stdout.splitlines()
    row = next(line for line in lines if hop.jti in line)
    assert row.split()[1:8] == [
        "token.issued",
        "allowed",
        "tool",
        "alice",
        "data",
        hop.claims["txn"],
        hop.jti,
    ]


def test_chain_show_when_transaction_then_hops_numbered_from_the_first(
    world: World, sts: Any
) -> None:
    out = sts("chain", "show", "--txn", world.chains["alice1"].txn).stdout.splitlines()
    assert [line.split("hop ")[1].split(":")[0] for line in out[1:]] == ["1", "2", "3"]


# -- the admin API ----------------------------------------------------------------------------
@pytest.fixture
def api(client: Any, runtime: Any, clock: Any) -> Api:
    return Api(client, token_for(client, bootstrap(runtime, clock)))


def test_admin_touched_when_resource_given_then_chains_with_initiator_and_path(
    reported: World, api: Api
) -> None:
    found = api.ok("GET", "/audit/touched?resource=db%3A%2F%2Forders&data_class=financial")
    bob = reported.chains["bob"]
    assert found == {
        "items": [
            {
                "txn": bob.txn,
                "initiated_by": {"subject": "bob", "issuer": reported.idp.issuer},
                "path": ["web", "agent", "tool", "data"],
                "actions": ["export"],
                "data_classes": ["financial"],
                "records": 0,
                "first_at": reported.clock.now(),
                "last_at": reported.clock.now(),
            }
        ]
    }


def test_admin_touched_when_resource_missing_then_422_naming_it(api: Api) -> None:
    resp = api.get("/audit/touched")
    assert resp.status_code == 422
    assert resp.get_json() == invalid(("resource", "is required"))


def test_admin_transaction_audit_when_reported_then_reports_under_their_hop(
    reported: World, api: Api
) -> None:
    chain = reported.chains["alice1"]
    story = api.ok("GET", f"/transactions/{chain.txn}/audit")
    assert [len(h["reports"]) for h in story["hops"]] == [0, 0, 1]
    assert story["hops"][2]["reports"][0] == {
        "jti": chain.hops[2].jti,
        "resource": "db://orders",
        "action": "read",
        "data_classes": ["pii"],
        "records": 12,
        "bytes": 2048,
        "destination": "agent",
        "outcome": "success",
        "at": reported.clock.now(),
        "reported_by": "data",
    }
