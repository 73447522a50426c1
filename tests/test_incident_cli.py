"""Incident response from the command line (DESIGN §7, §8): ``sts audit``, ``sts revoke`` and
``sts gc`` against the database the STS under test writes to."""

from __future__ import annotations

import json
import time
from functools import partial
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select, update

from sts.cli import main
from sts.core.clock import FrozenClock
from sts.services import audit, gc, nhis
from sts.store.admin import admin_store
from sts.store.models import AuditEvent, IssuedToken, Nhi
from tests.exchange_fixtures import IDP, exchange
from tests.test_revocation import World, build_world, feed_jtis, is_active

DAY = 86400


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> FrozenClock:
    """Now, or (parametrized indirectly) this many seconds in the past: the CLI judges expiry
    by the wall clock, so tokens minted two days ago are long expired for it."""
    return FrozenClock(int(time.time()) - getattr(request, "param", 0))


@pytest.fixture
def world(client: Any, runtime: Any, make_nhi: Any, clock: FrozenClock) -> World:
    return build_world(client, runtime, make_nhi, clock)


@pytest.fixture
def denied(world: World) -> dict[str, Any]:
    """tool asks for more than its rule allows, with alice1's mid-chain token."""
    chain = world.chains["alice1"]
    resp = exchange(
        world.client, world.nhis["tool"], chain.hops[1].token, audience="data", scope="orders:write"
    )
    assert resp.status_code == 400 and resp.json["error"] == "invalid_scope", resp.json
    return {"txn": chain.txn, "error": "invalid_scope"}


@pytest.fixture
def sts(runtime: Any, settings: Any) -> Any:
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


def as_json(sts: Any, *args: str) -> Any:
    return json.loads(sts(*args, "--json").stdout)


def credential_of(world: World, name: str) -> str:
    with admin_store(world.runtime.engine) as store:
        return str(nhis.get_nhi(store, name).credentials[0]["id"])


# -- audit show ------------------------------------------------------------------------------
def test_audit_show_when_txn_given_then_answers_the_four_questions(
    world: World, denied: dict[str, Any], sts: Any
) -> None:
    chain = world.chains["alice1"]

    story = as_json(sts, "audit", "show", "--txn", chain.txn)

    assert story["txn"] == chain.txn
    assert story["focus"] is None
    assert story["initiated_by"]["subject"] == "alice"
    assert story["initiated_by"]["issuer"] == IDP
    assert story["initiated_by"]["first_client"] == "web"
    assert story["executed_by"] == ["web", "agent", "tool"]
    hops = story["hops"]
    assert [h["jti"] for h in hops] == [h.jti for h in chain.hops]
    assert [(h["actor"], h["target"], h["depth"]) for h in hops] == [
        ("web", "agent", 1),
        ("agent", "tool", 2),
        ("tool", "data", 3),
    ]
    assert [h["credential_id"] for h in hops] == [
        credential_of(world, n) for n in ("web", "agent", "tool")
    ]
    assert [h["rule_id"] for h in hops] == [world.rules[n] for n in ("web", "agent", "tool")]
    assert [h["scope"] for h in hops] == [h.claims["scope"] for h in chain.hops]
    assert [h["chain"] for h in hops] == [["web"], ["agent", "web"], ["tool", "agent", "web"]]
    assert [h["parent_jti"] for h in hops] == [None, chain.hops[0].jti, chain.hops[1].jti]
    assert {h["status"] for h in hops} == {"active"}
    assert [h["expires_at"] for h in hops] == [h.claims["exp"] for h in chain.hops]
    assert len(story["denied"]) == 1
    attempt = story["denied"][0]
    assert attempt["client_id"] == "tool"
    assert attempt["credential_id"] == credential_of(world, "tool")
    assert attempt["event"] == "token.denied" and attempt["decision"] == "denied"
    assert attempt["target"] == "data"
    assert attempt["parent_jti"] == chain.hops[1].jti
    assert attempt["detail"]["error"] == denied["error"]
    assert attempt["reason"] and "scope" in attempt["reason"]
    assert story["revocations"] == []
    assert story["accessed"] is None


def test_audit_show_when_mid_token_jti_given_then_same_transaction(
    world: World, denied: dict[str, Any], sts: Any
) -> None:
    chain = world.chains["alice1"]
    by_txn = as_json(sts, "audit", "show", "--txn", chain.txn)

    by_jti = as_json(sts, "audit", "show", "--jti", chain.hops[1].jti)

    assert by_jti["txn"] == chain.txn
    assert by_jti["focus"] == chain.hops[1].jti
    assert {k: v for k, v in by_jti.items() if k != "focus"} == {
        k: v for k, v in by_txn.items() if k != "focus"
    }


def test_audit_show_when_sibling_transaction_then_its_own_story_only(
    world: World, denied: dict[str, Any], sts: Any
) -> None:
    sibling = world.chains["alice2"]

    story = as_json(sts, "audit", "show", "--txn", sibling.txn)

    assert [h["jti"] for h in story["hops"]] == [h.jti for h in sibling.hops]
    assert story["denied"] == []


def test_audit_show_when_human_output_then_mentions_each_actor_and_the_denial(
    world: World, denied: dict[str, Any], sts: Any
) -> None:
    chain = world.chains["alice1"]

    out = sts("audit", "show", "--txn", chain.txn).stdout

    assert chain.txn in out
    assert "initiated by alice" in out
    assert "web -> agent -> tool" in out
    for actor in ("web", "agent", "tool"):
        assert f": {actor} (credential {credential_of(world, actor)})" in out
    for hop in chain.hops:
        assert hop.jti in out
    assert "denied" in out and "tool -> data" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--txn", "no-such-txn"), 2, "error (not_found)"),
        (("--jti", "no-such-jti"), 2, "error (not_found)"),
        ((), 2, "error (invalid)"),
    ],
)
def test_audit_show_when_target_unknown_or_missing_then_exit_2(
    world: World, sts: Any, args: tuple[str, ...], code: int, message: str
) -> None:
    result = sts("audit", "show", *args, code=code)

    assert message in result.output


def test_audit_show_when_both_jti_and_txn_then_exit_2(world: World, sts: Any) -> None:
    chain = world.chains["alice1"]

    result = sts("audit", "show", "--txn", chain.txn, "--jti", chain.hops[0].jti, code=2)

    assert "error (invalid)" in result.output


# -- audit list ------------------------------------------------------------------------------
def test_audit_list_when_decision_denied_then_only_denials(
    world: World, denied: dict[str, Any], sts: Any
) -> None:
    events = as_json(sts, "audit", "list", "--decision", "denied")["items"]

    assert len(events) == 1
    assert events[0]["decision"] == "denied"
    assert events[0]["txn"] == denied["txn"]
    assert events[0]["client_id"] == "tool"
    assert events[0]["subject"] == "alice"


def test_audit_list_when_actor_web_then_only_web_events_newest_first(
    world: World, denied: dict[str, Any], sts: Any
) -> None:
    assert world.direct is not None
    events = as_json(sts, "audit", "list", "--actor", "web")["items"]

    assert {e["client_id"] for e in events} == {"web"}
    issued = {e["jti"] for e in events if e["event"] == "token.issued"}
    assert issued == {c.hops[0].jti for c in world.chains.values()} | {world.direct.jti}
    assert [(e["at"], e["id"]) for e in events] == sorted(
        ((e["at"], e["id"]) for e in events), reverse=True
    )


def test_audit_list_when_subject_and_decision_filters_then_they_combine(
    world: World, denied: dict[str, Any], sts: Any
) -> None:
    bob = as_json(sts, "audit", "list", "--subject", "bob", "--decision", "allowed")["items"]
    alice_denied = as_json(
        sts, "audit", "list", "--subject", "alice", "--decision", "denied"
    )["items"]
    later = as_json(sts, "audit", "list", "--since", str(world.clock.now() + 1))["items"]

    assert len(bob) == 4  # three hops and the direct token
    assert {(e["subject"], e["decision"]) for e in bob} == {("bob", "allowed")}
    assert len(alice_denied) == 1
    assert later == []


def test_audit_list_when_since_is_iso_time_then_accepted(
    world: World, denied: dict[str, Any], sts: Any
) -> None:
    events = as_json(
        sts, "audit", "list", "--since", "2000-01-01T00:00:00Z", "--limit", "2"
    )["items"]
    assert len(events) == 2

    result = sts("audit", "list", "--since", "yesterday", code=2)
    assert "error (invalid)" in result.output


# -- revoke ----------------------------------------------------------------------------------
def test_revoke_token_when_dry_run_then_same_blast_radius_and_nothing_revoked(
    world: World, sts: Any
) -> None:
    chain = world.chains["alice1"]
    jti = chain.hops[1].jti
    expected = sorted(h.jti for h in chain.hops[1:])

    dry = as_json(sts, "revoke", "token", jti, "--dry-run")

    assert (dry["kind"], dry["target"], dry["dry_run"]) == ("token", jti, True)
    assert (dry["tokens"], dry["transactions"], dry["jtis"]) == (2, 1, expected)
    assert dry["revocation_id"] is None
    assert all(is_active(world, h) for h in chain.hops)
    assert feed_jtis(world.client, world.nhis["data"]) == {}

    real = as_json(sts, "revoke", "token", jti, "--reason", "leaked")

    assert real["dry_run"] is False and isinstance(real["revocation_id"], int)
    assert (real["tokens"], real["transactions"], real["jtis"], real["jtis_listed"]) == (
        2,
        1,
        expected,
        2,
    )
    assert [is_active(world, h) for h in chain.hops] == [True, False, False]
    assert set(feed_jtis(world.client, world.nhis["data"])) == set(expected)
    story = as_json(sts, "audit", "show", "--txn", chain.txn)
    assert [h["status"] for h in story["hops"]] == ["active", "revoked", "revoked"]
    [rev] = story["revocations"]
    assert (rev["kind"], rev["target"], rev["reason"]) == ("token", jti, "leaked")
    assert rev["revoked_by"].startswith("cli")


def test_revoke_token_when_human_output_then_counts_and_jtis(world: World, sts: Any) -> None:
    chain = world.chains["alice1"]

    out = sts("revoke", "token", chain.hops[0].jti, "--dry-run").stdout

    assert "would revoke token" in out and "3 live token(s) in 1 transaction(s)" in out
    for hop in chain.hops:
        assert hop.jti in out
    assert all(is_active(world, h) for h in chain.hops)


def test_revoke_nhi_when_compromised_then_every_chain_through_it_dies(
    world: World, sts: Any
) -> None:
    # From the hop addressed to the agent (DESIGN §7: it dies with the agent) to the last.
    dead = {c.hops[d].jti for c in world.chains.values() for d in (0, 1, 2)}

    result = as_json(sts, "revoke", "nhi", "agent", "--reason", "compromised")

    assert (result["kind"], result["target"]) == ("nhi", "agent")
    assert (result["tokens"], result["transactions"], set(result["jtis"])) == (9, 3, dead)
    assert set(feed_jtis(world.client, world.nhis["data"])) == dead
    shown = as_json(sts, "nhi", "show", "agent")
    assert shown["status"] == "disabled" and shown["status_reason"] == "compromised"
    story = as_json(sts, "audit", "show", "--txn", world.chains["bob"].txn)
    [rev] = story["revocations"]
    assert (rev["kind"], rev["target"], rev["reason"]) == ("nhi", "agent", "compromised")
    [event] = as_json(sts, "audit", "list", "--event", "admin.revoke.nhi")["items"]
    assert event["detail"]["reason"] == "compromised" and event["detail"]["tokens"] == 9


@pytest.mark.parametrize(
    ("kind", "target"),
    [
        ("token", "no-such-jti"),
        ("txn", "no-such-txn"),
        ("nhi", "nobody"),
        ("credential", "cred_nope"),
        ("rule", "rule_nope"),
        ("issuer", "https://nowhere.example.test"),
    ],
)
def test_revoke_when_target_unknown_then_exit_2_not_found(
    world: World, sts: Any, kind: str, target: str
) -> None:
    result = sts("revoke", kind, target, code=2)

    assert "error (not_found)" in result.output
    assert feed_jtis(world.client, world.nhis["data"]) == {}


# -- hop states: the one judgement exchange and introspection make ---------------------------
def hop_states(sts: Any, txn: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each hop's ``(status, status_reason)`` as ``chain show`` and as ``audit show`` say."""
    by_chain: dict[str, Any] = {}
    pending = as_json(sts, "chain", "show", "--txn", txn)
    while pending:
        node = pending.pop()
        by_chain[node["jti"]] = (node["status"], node["status_reason"])
        pending.extend(node["children"])
    story = as_json(sts, "audit", "show", "--txn", txn)
    return by_chain, {h["jti"]: (h["status"], h["status_reason"]) for h in story["hops"]}


def test_chain_and_audit_when_actor_disabled_then_every_hop_it_touched_revoked_for_good(
    world: World, sts: Any
) -> None:
    chain = world.chains["alice1"]
    sts("nhi", "disable", "agent", "--reason", "compromised")

    # Disabling is containment (DESIGN §7): the hop addressed to the agent and the hops it
    # acted in are revoked, and stay so once it is enabled again.
    expected = {h.jti: ("revoked", "") for h in chain.hops}
    assert hop_states(sts, chain.txn) == (expected, expected)
    unusable = frozenset({"agent"})
    assert [is_active(world, t, unusable) for t in chain.hops] == [False, False, False]
    sts("nhi", "enable", "agent")
    assert hop_states(sts, chain.txn) == (expected, expected)
    assert [is_active(world, t) for t in chain.hops] == [False, False, False]


def test_chain_and_audit_when_actor_disabled_without_revocation_then_its_hop_and_below_void(
    world: World, sts: Any
) -> None:
    chain = world.chains["alice1"]
    with world.runtime.engine.begin() as conn:  # as a registry disabled before containment
        conn.execute(update(Nhi).where(Nhi.client_id == "agent").values(status="disabled"))

    expected = {
        chain.hops[0].jti: ("active", ""),
        chain.hops[1].jti: ("void", "actor disabled"),
        chain.hops[2].jti: ("void", "an ancestor is void"),
    }
    assert hop_states(sts, chain.txn) == (expected, expected)
    unusable = frozenset({"agent"})
    assert [is_active(world, t, unusable) for t in chain.hops] == [True, False, False]


def test_chain_and_audit_when_actor_missing_then_its_hop_void_as_exchange_judges_it(
    world: World, sts: Any
) -> None:
    chain = world.chains["alice1"]
    with world.runtime.engine.begin() as conn:  # the registry no longer has the hop's actor
        conn.execute(
            update(IssuedToken)
            .where(IssuedToken.jti == chain.hops[1].jti)
            .values(actor_id=None)
        )

    expected = {
        chain.hops[0].jti: ("active", ""),
        chain.hops[1].jti: ("void", "actor missing"),
        chain.hops[2].jti: ("void", "an ancestor is void"),
    }
    assert hop_states(sts, chain.txn) == (expected, expected)
    assert [is_active(world, t) for t in chain.hops] == [True, False, False]


# -- gc --------------------------------------------------------------------------------------
def counts(world: World) -> tuple[int, int]:
    with world.runtime.engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(IssuedToken)).scalar_one(),
            conn.execute(select(func.count()).select_from(AuditEvent)).scalar_one(),
        )


@pytest.mark.parametrize("clock", [2 * DAY], indirect=True)
def test_gc_when_lineage_expired_then_rows_go_but_audit_still_tells_the_story(
    world: World, denied: dict[str, Any], sts: Any
) -> None:
    chain = world.chains["alice1"]
    before = as_json(sts, "audit", "show", "--txn", chain.txn)
    assert {h["status"] for h in before["hops"]} == {"expired"}
    lineage, events = counts(world)
    assert lineage == 11  # three chains of three, bob's direct token, tool's own token

    kept = as_json(sts, "gc")  # default retention (30 days) keeps two-day-old rows
    assert kept["lineage_rows"] == 0 and counts(world) == (lineage, events)

    result = as_json(sts, "gc", "--retention-days", "0")

    assert result["lineage_rows"] == lineage
    assert counts(world) == (0, events)
    after = as_json(sts, "audit", "show", "--txn", chain.txn)
    assert after["denied"] == before["denied"]
    assert after["initiated_by"]["subject"] == "alice"
    assert after["initiated_by"]["first_client"] == "web"
    assert after["executed_by"] == ["web", "agent", "tool"]
    keys = ("jti", "parent_jti", "actor", "credential_id", "target", "scope", "rule_id", "chain")
    assert [{k: h[k] for k in keys} for h in after["hops"]] == [
        {k: h[k] for k in keys} for h in before["hops"]
    ]
    assert {h["status"] for h in after["hops"]} == {"expired"}
    by_jti = as_json(sts, "audit", "show", "--jti", chain.hops[1].jti)
    assert by_jti["txn"] == chain.txn and by_jti["denied"] == before["denied"]
    denials = as_json(sts, "audit", "list", "--decision", "denied")["items"]
    assert [e["txn"] for e in denials] == [chain.txn]
    assert "initiated by alice" in sts("audit", "show", "--txn", chain.txn).stdout
    again = as_json(sts, "gc", "--retention-days", "0")
    assert again["lineage_rows"] == 0


@pytest.mark.parametrize("clock", [2 * DAY], indirect=True)
def test_gc_when_retention_covers_expiry_then_nothing_removed(world: World, sts: Any) -> None:
    lineage, events = counts(world)

    result = as_json(sts, "gc", "--retention-days", "3")

    assert result["lineage_rows"] == 0
    assert counts(world) == (lineage, events)


def test_gc_when_tokens_live_then_nothing_removed(world: World, sts: Any) -> None:
    lineage, _ = counts(world)

    result = as_json(sts, "gc", "--retention-days", "0")

    assert result["lineage_rows"] == 0
    assert counts(world)[0] == lineage
    assert all(is_active(world, t) for t in world.tokens())


def test_audit_show_when_gc_removed_only_the_deepest_hop_then_it_comes_from_the_audit_trail(
    world: World, denied: dict[str, Any]
) -> None:
    chain = world.chains["alice1"]
    with admin_store(world.runtime.engine) as store:
        before = audit.show(store, now=world.clock.now(), txn=chain.txn)
    later = chain.hops[2].claims["exp"] + 1  # the last hop (shorter rule ttl) has expired

    removed = gc.collect(partial(admin_store, world.runtime.engine), now=later, retention_seconds=0)

    assert removed["lineage_rows"] == 3  # every chain's last hop
    with admin_store(world.runtime.engine) as store:
        after = audit.show(store, now=later, txn=chain.txn)
        by_jti = audit.show(store, now=later, jti=chain.hops[2].jti)
    assert after["initiated_by"] == before["initiated_by"]
    assert after["executed_by"] == ["web", "agent", "tool"]
    keys = ("jti", "parent_jti", "depth", "actor", "credential_id", "target", "scope", "rule_id")
    assert [{k: h[k] for k in keys} for h in after["hops"]] == [
        {k: h[k] for k in keys} for h in before["hops"]
    ]
    assert [h["status"] for h in after["hops"]] == ["active", "active", "expired"]
    assert after["hops"][2]["expires_at"] == chain.hops[2].claims["exp"]
    assert after["denied"] == before["denied"]
    assert by_jti["txn"] == chain.txn and by_jti["focus"] == chain.hops[2].jti
