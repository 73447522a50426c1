"""Provisioning, running and containing a chain through the admin API alone; revocations of
every kind with their blast radius; reading chains and the audit trail back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.admin_api_helpers import Api, admin, admin_nhi, error, invalid
from tests.conftest import Registered
from tests.exchange_fixtures import PersonIdp, client_credentials, exchange
from tests.helpers import basic, claims_of

__all__ = ["admin", "admin_nhi"]  # fixtures

HOPS = [("web", "agent"), ("agent", "tool"), ("tool", "data")]


@dataclass
class Scenario:
    idp: PersonIdp
    nhis: dict[str, Registered]
    rules: dict[str, dict[str, Any]]


def provision(admin: Api) -> Scenario:
    """A person's IdP, four NHIs and three rules, registered only through the admin API."""
    idp = PersonIdp()
    admin.ok(
        "POST",
        "/issuers",
        {
            "issuer": idp.issuer,
            "jwks": idp.keys.jwks,
            "audiences": ["web"],
            "algorithms": ["ES256"],
            "scope_mode": "cap",
        },
        201,
    )
    nhis = {}
    for name, kind in [
        ("web", "service"),
        ("agent", "agent"),
        ("tool", "workload"),
        ("data", "service"),
    ]:
        created = admin.ok("POST", "/nhis", {"name": name, "kind": kind, "owner": "team"}, 201)
        nhis[name] = Registered(name, created["client_secret"], name)
    rule_bodies = {
        "web": {
            "actor": "web",
            "targets": ["agent"],
            "scope": "orders:read orders:write",
            "subject": f"issuer:{idp.issuer}",
        },
        "agent": {
            "actor": "agent",
            "targets": ["tool"],
            "scope": "orders:read orders:write",
            "upstream": "web",
        },
        "tool": {
            "actor": "tool",
            "targets": ["data"],
            "scope": "orders:read",
            "upstream": "agent",
            "max_ttl": 120,
        },
    }
    rules = {actor: admin.ok("POST", "/rules", body, 201) for actor, body in rule_bodies.items()}
    return Scenario(idp, nhis, rules)


def run_chain(client: Any, scenario: Scenario, now: int) -> list[str]:
    """alice's token through web → agent → tool → data; the three issued tokens."""
    token = scenario.idp.token("alice", "web", now, scope="orders:read orders:write")
    issued = []
    for actor, target in HOPS:
        resp = exchange(client, scenario.nhis[actor], token, audience=target)
        assert resp.status_code == 200, resp.get_json()
        token = resp.get_json()["access_token"]
        issued.append(token)
    return issued


def active(client: Any, scenario: Scenario, token: str) -> bool:
    """Introspected by its audience, or by its client where the audience is disabled."""
    claims = claims_of(token)
    for holder in (scenario.nhis[claims["aud"]], scenario.nhis[claims["client_id"]]):
        resp = client.post(
            "/introspect", data={"token": token}, headers=basic(holder.client_id, holder.secret)
        )
        if resp.status_code == 200:
            return bool(resp.get_json()["active"])
    raise AssertionError("no holder of the token could introspect it")


def test_three_hop_chain_when_provisioned_and_revoked_through_the_api_then_the_chain_dies(
    client, admin, clock
):
    scenario = provision(admin)
    tokens = run_chain(client, scenario, clock.now())
    last = claims_of(tokens[-1])
    assert (last["sub"], last["aud"], last["client_id"]) == ("alice", "data", "tool")
    assert last["act"] == {"sub": "tool", "act": {"sub": "agent", "act": {"sub": "web"}}}
    txn = last["txn"]
    assert all(active(client, scenario, token) for token in tokens)

    chain = admin.ok("GET", f"/transactions/{txn}/chain")["roots"]
    assert [(n["actor"], n["target"], n["status"]) for n in _walk(chain)] == [
        ("web", "agent", "active"),
        ("agent", "tool", "active"),
        ("tool", "data", "active"),
    ]
    story = admin.ok("GET", f"/transactions/{txn}/audit")
    assert story["initiated_by"]["subject"] == "alice"
    assert story["initiated_by"]["issuer"] == scenario.idp.issuer
    assert story["executed_by"] == ["web", "agent", "tool"]
    assert [h["rule_id"] for h in story["hops"]] == [scenario.rules[a]["id"] for a, _ in HOPS]

    blast = admin.ok("POST", "/revocations", {"kind": "nhi", "target": "agent", "dry_run": True})
    assert all(active(client, scenario, token) for token in tokens)
    done = admin.ok(
        "POST",
        "/revocations",
        {"kind": "nhi", "target": "agent", "reason": "prompt injection"},
        201,
    )
    # Every hop: the first is addressed to the agent (DESIGN §7), the others it acted in.
    assert (
        (blast["tokens"], blast["transactions"]) == (done["tokens"], done["transactions"]) == (3, 1)
    )
    assert blast["jtis"] == done["jtis"] == sorted(claims_of(t)["jti"] for t in tokens)

    assert [active(client, scenario, t) for t in tokens] == [False, False, False]
    again = exchange(client, scenario.nhis["tool"], tokens[1], audience="data")
    assert again.status_code == 400
    assert client_credentials(client, scenario.nhis["agent"]).status_code == 401
    assert admin.ok("GET", "/nhis/agent")["status"] == "disabled"
    story = admin.ok("GET", f"/tokens/{last['jti']}/audit")
    assert [(h["actor"], h["status"]) for h in story["hops"]] == [
        ("web", "revoked"),
        ("agent", "revoked"),
        ("tool", "revoked"),
    ]
    assert [
        (r["kind"], r["target"], r["revoked_by"], r["reason"]) for r in story["revocations"]
    ] == [("nhi", "agent", "ops", "prompt injection")]


def _walk(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for node in nodes:
        out.append(node)
        out.extend(_walk(node["children"]))
    return out


@pytest.mark.parametrize(
    ("kind", "target", "dies"),
    [
        ("token", 1, [False, True, True]),
        ("txn", None, [True, True, True]),
        ("rule", "agent", [False, True, True]),
        ("issuer", "idp", [True, True, True]),
        ("nhi", "tool", [False, True, True]),  # the hop addressed to it, and its own
    ],
)
def test_revocation_when_each_kind_then_dry_run_matches_and_derived_tokens_die(
    client, admin, clock, kind, target, dies
):
    scenario = provision(admin)
    tokens = run_chain(client, scenario, clock.now())
    claims = [claims_of(t) for t in tokens]
    named = {
        "token": lambda: claims[1]["jti"],
        "txn": lambda: claims[0]["txn"],
        "rule": lambda: scenario.rules["agent"]["id"],
        "issuer": lambda: scenario.idp.issuer,
        "nhi": lambda: "tool",
    }[kind]()
    body = {"kind": kind, "target": named}
    blast = admin.ok("POST", "/revocations", {**body, "dry_run": True})
    done = admin.ok("POST", "/revocations", body, 201)
    expected = sorted(c["jti"] for c, d in zip(claims, dies, strict=True) if d)
    assert blast["jtis"] == done["jtis"] == expected
    assert {
        k: done[k] for k in ("kind", "target", "dry_run", "tokens", "transactions", "jtis_listed")
    } == {
        "kind": kind,
        "target": named,
        "dry_run": False,
        "tokens": len(expected),
        "transactions": 1,
        "jtis_listed": len(expected),
    }
    assert [active(client, scenario, t) for t in tokens] == [not d for d in dies]


@pytest.mark.parametrize(
    ("kind", "code", "description"),
    [
        ("token", "token_not_found", "No tokens for this token."),
        ("txn", "transaction_not_found", "No tokens for this txn."),
        ("nhi", "nhi_not_found", "No NHI named 'ghost'."),
        ("credential", "credential_not_found", "No credential 'ghost'."),
        ("rule", "rule_not_found", "No rule 'ghost'."),
        ("issuer", "issuer_not_found", "No such trusted issuer."),
    ],
)
def test_revocation_when_target_unknown_then_404_naming_its_kind(admin, kind, code, description):
    for dry_run in (True, False):
        resp = admin.post("/revocations", {"kind": kind, "target": "ghost", "dry_run": dry_run})
        assert resp.status_code == 404
        assert resp.get_json() == error(404, code, description)


def test_revocation_when_body_invalid_then_422(admin):
    resp = admin.post("/revocations", {"kind": "everything", "dry_run": "yes"})
    assert resp.status_code == 422
    assert resp.get_json() == invalid(
        ("dry_run", "must be a boolean"),
        ("kind", "must be one of token, nhi, credential, rule, issuer, txn"),
        ("target", "is required"),
    )


def test_chain_when_token_in_the_middle_then_its_ancestors_and_descendants(client, admin, clock):
    scenario = provision(admin)
    tokens = run_chain(client, scenario, clock.now())
    jtis = [claims_of(t)["jti"] for t in tokens]
    roots = admin.ok("GET", f"/tokens/{jtis[1]}/chain")["roots"]
    assert [n["jti"] for n in _walk(roots)] == jtis
    node = _walk(roots)[2]
    assert {k: node[k] for k in ("parent_jti", "actor", "target", "scope", "rule_id", "chain")} == {
        "parent_jti": jtis[1],
        "actor": "tool",
        "target": "data",
        "scope": "orders:read",
        "rule_id": scenario.rules["tool"]["id"],
        "chain": ["tool", "agent", "web"],
    }


@pytest.mark.parametrize(
    ("path", "code", "description"),
    [
        ("/tokens/ghost/chain", "token_not_found", "No token with this jti."),
        ("/transactions/ghost/chain", "transaction_not_found", "No tokens in this transaction."),
        ("/tokens/ghost/audit", "token_not_found", "No token with this jti."),
        ("/transactions/ghost/audit", "transaction_not_found", "No tokens in this transaction."),
        ("/tokens/not%20an%20id/chain", "token_not_found", "Token not found"),
    ],
)
def test_chain_and_audit_when_unknown_then_404(admin, path, code, description):
    resp = admin.get(path)
    assert resp.status_code == 404
    assert resp.get_json() == error(404, code, description)


def test_audit_events_when_filtered_then_matching_newest_first(client, admin, clock):
    scenario = provision(admin)
    run_chain(client, scenario, clock.now())
    clock.advance(10)
    denied = exchange(client, scenario.nhis["tool"], "not-a-token", audience="data")
    assert denied.status_code == 400
    issued = admin.ok("GET", "/audit/events?event=token.issued&subject=alice")["items"]
    assert [e["client_id"] for e in issued] == ["tool", "agent", "web"]
    latest = admin.ok("GET", f"/audit/events?since={clock.now()}")["items"]
    # The admin's own read just before is an audited action too (newest first).
    assert [(e["event"], e["decision"], e["client_id"]) for e in latest] == [
        ("admin.read", "done", "ops"),
        ("token.denied", "denied", "tool"),
    ]
    assert latest[0]["detail"] == {"path": "/admin/v1/audit/events"}
    assert admin.ok("GET", "/audit/events?decision=denied&actor=tool")["items"] == latest[1:]
    assert len(admin.ok("GET", "/audit/events?limit=2")["items"]) == 2
    changes = admin.ok("GET", "/audit/events?actor=ops&decision=done")["items"]
    assert {e["event"] for e in changes} == {
        "admin.issuer.add",
        "admin.nhi.create",
        "admin.rule.create",
        "admin.read",
    }


def test_audit_events_when_query_invalid_then_422(admin):
    resp = admin.get("/audit/events?since=yesterday&decision=maybe&limit=0")
    assert resp.status_code == 422
    assert resp.get_json() == invalid(
        ("decision", "must be one of allowed, denied, done"),
        ("limit", "must be at least 1"),
        ("since", "must be an integer"),
    )
