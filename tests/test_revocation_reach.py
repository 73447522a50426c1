"""What a revocation reaches beyond descendants (DESIGN §7): every token minted with a
revoked actor token, or with an actor token from a revoked issuer, and their descendants at
any depth; every token addressed to a revoked NHI. Seen as a resource server sees it:
introspection, a further exchange, and the revocation feed; a dry run predicts it exactly."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from sts.services import credentials, nhis
from sts.store.admin import admin_store
from tests.reach_fixtures import (
    CHAINS,
    WORKLOAD,
    ReachWorld,
    assert_exactly_dead,
    build_reach_world,
    lineage_of,
    revoke_both_ways,
)


@pytest.fixture
def world(client: Any, runtime: Any, make_nhi: Any, clock: Any) -> ReachWorld:
    return build_reach_world(client, runtime, make_nhi, clock)


def test_lineage_when_minted_with_actor_tokens_then_each_records_which(world: ReachWorld) -> None:
    own, chains = world.own, world.chains

    recorded = lineage_of(world)

    assert recorded[own["C2"].jti] == (own["C"].jti, own["A"].jti, None)
    assert recorded[chains["plain"][1].jti] == (chains["plain"][0].jti, None, None)
    assert recorded[chains["own"][1].jti] == (chains["own"][0].jti, own["A"].jti, None)
    assert recorded[chains["relay"][1].jti] == (chains["relay"][0].jti, own["C2"].jti, None)
    assert recorded[chains["vouched"][1].jti] == (chains["vouched"][0].jti, None, WORKLOAD)


def test_revoke_token_when_it_was_an_actor_token_then_all_it_reached_dies_at_any_depth(
    world: ReachWorld,
) -> None:
    """A → C2 (actor edge) → the relay chain's agent hop (actor edge) → the tool's hop
    (descendant); A → the own chain's agent hop → its tool hop."""
    own = world.own
    dead = {own["A"].jti, own["C2"].jti} | world.hops("own", "relay", depths=(2, 3))

    result = revoke_both_ways(world, "token", own["A"].jti, reason="leaked")

    assert (result.tokens, result.transactions, set(result.jtis)) == (6, 4, dead)
    assert_exactly_dead(world, dead)


def test_revoke_token_when_a_descendant_was_an_actor_token_then_what_it_minted_dies(
    world: ReachWorld,
) -> None:
    own = world.own
    dead = {own["C"].jti, own["C2"].jti} | world.hops("relay", depths=(2, 3))

    result = revoke_both_ways(world, "token", own["C"].jti)

    assert (result.tokens, result.transactions, set(result.jtis)) == (4, 2, dead)
    assert_exactly_dead(world, dead)


def test_revoke_txn_when_it_holds_an_actor_token_then_what_that_minted_dies(
    world: ReachWorld,
) -> None:
    own = world.own
    assert own["C2"].claims["txn"] == own["C"].jti
    dead = {own["C"].jti, own["C2"].jti} | world.hops("relay", depths=(2, 3))

    result = revoke_both_ways(world, "txn", own["C"].jti)

    assert (result.tokens, result.transactions, set(result.jtis)) == (4, 2, dead)
    assert_exactly_dead(world, dead)


def test_revoke_rule_when_it_minted_an_actor_token_then_what_that_minted_dies(
    world: ReachWorld,
) -> None:
    dead = {world.own["C2"].jti} | world.hops("relay", depths=(2, 3))

    result = revoke_both_ways(world, "rule", world.rules["self"])

    assert (result.tokens, result.transactions, set(result.jtis)) == (3, 2, dead)
    assert_exactly_dead(world, dead)


def test_revoke_credential_when_it_obtained_an_actor_token_then_hops_made_later_die_too(
    world: ReachWorld,
) -> None:
    with admin_store(world.runtime.engine) as store:
        old = nhis.get_nhi(store, "agent").credentials[0]["id"]
        _, secret = credentials.rotate_secret(
            store, world.runtime.hasher, "agent", now=world.clock.now(), admin="t"
        )
    world.nhis["agent"] = replace(world.nhis["agent"], secret=secret)
    # Made with the new secret, but with A (obtained with the old one) as the actor token.
    world.chains["after"] = world.run_chain(world.own["A"].token)
    world.chains["fresh"] = world.run_chain(None)
    dead = {t.jti for t in world.own.values()}
    dead |= world.hops(*CHAINS, depths=(2, 3)) | world.hops("after", depths=(2, 3))

    result = revoke_both_ways(world, "credential", old, reason="leaked")

    assert (result.tokens, result.transactions, set(result.jtis)) == (13, 7, dead)
    assert_exactly_dead(world, dead)


def test_revoke_issuer_when_it_vouched_for_an_actor_then_what_that_minted_dies(
    world: ReachWorld,
) -> None:
    dead = world.hops("vouched", depths=(2, 3))

    result = revoke_both_ways(world, "issuer", WORKLOAD, reason="compromised")

    assert (result.tokens, result.transactions, set(result.jtis)) == (2, 1, dead)
    assert_exactly_dead(world, dead)


def test_revoke_nhi_when_tokens_addressed_to_it_then_they_die_and_stay_dead_once_enabled(
    world: ReachWorld,
) -> None:
    # Every agent hop is addressed to the tool; the tool's own hops descend from them.
    dead = world.hops(*CHAINS, depths=(2, 3))

    result = revoke_both_ways(world, "nhi", "tool", reason="compromised")

    assert (result.tokens, result.transactions, set(result.jtis)) == (8, 4, dead)
    with admin_store(world.runtime.engine) as store:
        nhis.set_nhi_status(
            store, "tool", status="active", reason="", now=world.clock.now(), admin="t"
        )
        _, secret = credentials.rotate_secret(
            store, world.runtime.hasher, "tool", now=world.clock.now(), admin="t"
        )
    world.nhis["tool"] = replace(world.nhis["tool"], secret=secret)
    # The tool is back and authenticates: what was addressed to it stays dead.
    assert_exactly_dead(world, dead)
    fresh = world.run_chain(None)
    assert fresh[2].claims["client_id"] == "tool"
