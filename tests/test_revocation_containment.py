"""Disabling is containment (DESIGN §7): disabling an NHI or a rule revokes, for good, every
live token the NHI appears in (as an actor anywhere in the chain, or as the audience) or the
rule minted, with everything derived from them, exactly like the revocation would: with a
revocation row, on the feed, audited. Enabling again only allows new exchanges."""

from __future__ import annotations

from typing import Any

import pytest

from sts.services import audit, nhis, revocation, rules
from sts.store.admin import admin_store
from sts.store.models import Revocation
from tests.reach_fixtures import (
    CHAINS,
    ReachWorld,
    assert_exactly_dead,
    build_reach_world,
    holder_sees,
)
from tests.test_revocation import feed_jtis


@pytest.fixture
def world(client: Any, runtime: Any, make_nhi: Any, clock: Any) -> ReachWorld:
    return build_reach_world(client, runtime, make_nhi, clock)


def blast_radius(world: ReachWorld, kind: str, target: str) -> list[str]:
    """What the revocation's dry run says would die."""
    with admin_store(world.runtime.engine) as store:
        found = revocation.revoke(
            store, kind, target, now=world.clock.now(), admin="ops", dry_run=True
        )
    return found.jtis


def revocation_rows(world: ReachWorld) -> list[dict[str, Any]]:
    with world.runtime.engine.connect() as conn:
        rows = conn.execute(Revocation.__table__.select().order_by(Revocation.id)).all()
    return [dict(r._mapping) for r in rows]


def events(world: ReachWorld, name: str) -> list[dict[str, Any]]:
    with admin_store(world.runtime.engine) as store:
        found = audit.list_events(store, event=name)
    return [{k: e[k] for k in ("event", "decision", "client_id", "detail")} for e in found]


def test_disable_nhi_when_disabled_then_every_token_it_appears_in_is_revoked(
    world: ReachWorld,
) -> None:
    # Its own tokens (A, C, C2), every hop addressed to it (web's), every hop it made, and
    # what descends from them: the whole registry of this world.
    dead = {t.jti for t in world.own.values()} | world.hops(*CHAINS)
    predicted = blast_radius(world, "nhi", "agent")

    with admin_store(world.runtime.engine) as store:
        view = nhis.set_nhi_status(
            store,
            "agent",
            status="disabled",
            reason="prompt injection",
            now=world.clock.now(),
            admin="ops",
        )

    assert (view.status, view.status_reason) == ("disabled", "prompt injection")
    # Containment, not revocation: its credentials are kept for when it is enabled again.
    assert {c["status"] for c in view.credentials} == {"active"}
    assert predicted == sorted(dead)
    [row] = revocation_rows(world)
    assert row == {
        "id": row["id"],
        "kind": "nhi",
        "target": "agent",
        "reason": "disabled: prompt injection",
        "revoked_by": "ops",
        "created_at": world.clock.now(),
    }
    assert events(world, "admin.nhi.disable") == [
        {
            "event": "admin.nhi.disable",
            "decision": "done",
            "client_id": "ops",
            "detail": {
                "nhi": "agent",
                "reason": "prompt injection",
                "tokens": len(dead),
                "revocation_id": row["id"],
            },
        }
    ]
    tokens = world.tokens()
    assert feed_jtis(world.client, world.nhis["data"]) == {
        jti: tokens[jti].claims["exp"] for jti in dead
    }


def test_enable_nhi_when_disabled_before_then_dead_stay_dead_and_new_exchanges_work(
    world: ReachWorld,
) -> None:
    dead = {t.jti for t in world.own.values()} | world.hops(*CHAINS)
    with admin_store(world.runtime.engine) as store:
        nhis.set_nhi_status(
            store, "agent", status="disabled", reason="x", now=world.clock.now(), admin="ops"
        )
        view = nhis.set_nhi_status(
            store, "agent", status="active", reason="", now=world.clock.now(), admin="ops"
        )

    assert (view.status, view.status_reason) == ("active", "")
    assert_exactly_dead(world, dead)
    fresh = world.run_chain(None)
    assert all(holder_sees(world, t) for t in fresh)
    assert events(world, "admin.nhi.enable") == [
        {
            "event": "admin.nhi.enable",
            "decision": "done",
            "client_id": "ops",
            "detail": {"nhi": "agent", "reason": ""},
        }
    ]


def test_disable_nhi_when_only_an_audience_then_tokens_addressed_to_it_die(
    world: ReachWorld,
) -> None:
    # The data service acts in no chain; every tool hop is addressed to it.
    dead = world.hops(*CHAINS, depths=(3,))

    with admin_store(world.runtime.engine) as store:
        nhis.set_nhi_status(
            store, "data", status="disabled", reason="retired", now=world.clock.now(), admin="ops"
        )
        nhis.set_nhi_status(
            store, "data", status="active", reason="", now=world.clock.now(), admin="ops"
        )

    assert_exactly_dead(world, dead)


def test_disable_rule_when_disabled_then_tokens_it_minted_and_descendants_revoked(
    world: ReachWorld,
) -> None:
    dead = world.hops(*CHAINS, depths=(2, 3))
    predicted = blast_radius(world, "rule", world.rules["agent"])

    with admin_store(world.runtime.engine) as store:
        shown = rules.disable_rule(
            store, world.rules["agent"], now=world.clock.now(), admin="ops", reason="too broad"
        )

    assert shown["status"] == "disabled"
    assert predicted == sorted(dead)
    [row] = revocation_rows(world)
    assert row == {
        "id": row["id"],
        "kind": "rule",
        "target": world.rules["agent"],
        "reason": "disabled: too broad",
        "revoked_by": "ops",
        "created_at": world.clock.now(),
    }
    assert events(world, "admin.rule.disable") == [
        {
            "event": "admin.rule.disable",
            "decision": "done",
            "client_id": "ops",
            "detail": {
                "rule": world.rules["agent"],
                "reason": "too broad",
                "tokens": 8,
                "revocation_id": row["id"],
            },
        }
    ]
    assert_exactly_dead(world, dead)


def test_disable_rule_when_no_reason_then_revocation_says_disabled(world: ReachWorld) -> None:
    with admin_store(world.runtime.engine) as store:
        rules.disable_rule(store, world.rules["self"], now=world.clock.now(), admin="ops")

    assert [(r["kind"], r["reason"]) for r in revocation_rows(world)] == [("rule", "disabled")]
    assert_exactly_dead(world, {world.own["C2"].jti} | world.hops("relay", depths=(2, 3)))
