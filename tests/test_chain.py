"""The actor chain as one immutable value (DESIGN §5.9, RFC 8693 §4.1), without an app."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sts.core.chain import MAX_MEMBER_LENGTH, MAX_PARSE_DEPTH, Actor, Chain, ChainError

subs = st.text(min_size=1, max_size=40)
actors = st.builds(Actor, sub=subs, iss=st.none() | st.sampled_from(["https://idp.example"]))
actor_lists = st.lists(actors, max_size=MAX_PARSE_DEPTH)


def nested(*subs_: str) -> dict[str, Any] | None:
    """``act`` for these subs, outermost first, written out by hand."""
    act: dict[str, Any] | None = None
    for sub in reversed(subs_):
        act = {"sub": sub} if act is None else {"sub": sub, "act": act}
    return act


# -- round trip and nesting -------------------------------------------------------------------
@given(actor_lists)
def test_to_act_when_parsed_back_then_the_same_chain(items: list[Actor]) -> None:
    chain = Chain(tuple(items))
    assert Chain.from_act(chain.to_act()) == chain


@given(actor_lists)
def test_to_act_when_walked_then_outermost_first_and_identity_members_only(
    items: list[Actor],
) -> None:
    level, seen = Chain(tuple(items)).to_act(), []
    while level is not None:
        assert set(level) <= {"sub", "iss", "act"}
        seen.append(Actor(level["sub"], level.get("iss")))
        level = level.get("act")
    assert seen == items


def test_to_act_when_no_actors_then_none() -> None:
    assert Chain().to_act() is None
    assert Chain.from_act(None) == Chain()
    assert Chain().depth == 0 and Chain().outermost is None


def test_to_act_when_three_actors_then_newest_outermost() -> None:
    chain = Chain((Actor("tool"), Actor("agent"), Actor("web")))
    assert chain.to_act() == nested("tool", "agent", "web")
    assert chain.outermost == Actor("tool")
    assert chain.subs() == ("tool", "agent", "web")
    assert chain.depth == 3


def test_to_act_when_actor_has_issuer_then_level_carries_iss() -> None:
    chain = Chain((Actor("svc"), Actor("bot", "https://wl.example")))
    assert chain.to_act() == {"sub": "svc", "act": {"sub": "bot", "iss": "https://wl.example"}}


def test_to_act_when_called_twice_then_independent_dicts() -> None:
    chain = Chain((Actor("b"), Actor("a")))
    first = chain.to_act()
    assert first is not None
    first["act"]["sub"] = "mallory"
    assert chain.to_act() == nested("b", "a")


# -- after_hop --------------------------------------------------------------------------------
def test_after_hop_when_actor_is_subject_and_no_chain_then_no_act() -> None:
    after = Chain().after_hop(Actor("svc"), "svc")
    assert after == Chain()
    assert after.to_act() is None


def test_after_hop_when_first_delegation_then_one_level() -> None:
    after = Chain().after_hop(Actor("web"), "alice")
    assert after.to_act() == {"sub": "web"}


def test_after_hop_when_actor_is_new_then_prepended_outermost() -> None:
    chain = Chain((Actor("agent"), Actor("web")))
    after = chain.after_hop(Actor("tool"), "alice")
    assert after.subs() == ("tool", "agent", "web")
    assert chain.subs() == ("agent", "web")  # the original is untouched


def test_after_hop_when_actor_already_outermost_then_unchanged() -> None:
    chain = Chain((Actor("agent"), Actor("web")))
    assert chain.after_hop(Actor("agent"), "alice") == chain


@pytest.mark.parametrize("actor", ["web", "agent"])
def test_after_hop_when_actor_appears_deeper_then_cycle_refused(actor: str) -> None:
    chain = Chain((Actor("tool"), Actor("agent"), Actor("web")))
    with pytest.raises(ChainError):
        chain.after_hop(Actor(actor), "alice")


def test_after_hop_when_actor_is_subject_of_delegated_chain_then_cycle_refused() -> None:
    chain = Chain((Actor("agent"),))
    with pytest.raises(ChainError):
        chain.after_hop(Actor("svc"), "svc")


def test_after_hop_when_same_sub_from_another_issuer_then_distinct_actor() -> None:
    chain = Chain((Actor("svc"),))
    after = chain.after_hop(Actor("svc", "https://wl.example"), "alice")
    assert after.actors == (Actor("svc", "https://wl.example"), Actor("svc"))


@pytest.mark.parametrize("prior", [(), ("agent",)])
def test_after_hop_when_person_subject_has_an_actors_sub_then_no_cycle(
    prior: tuple[str, ...],
) -> None:
    """A person's ``sub`` lives in its IdP's namespace: equal to an NHI's, it names no actor."""
    chain = Chain(tuple(Actor(s) for s in prior))
    after = chain.after_hop(Actor("alice"), "alice", subject_is_nhi=False)
    assert after.subs() == ("alice", *prior)


@given(st.lists(subs, unique=True, max_size=8), subs, subs, st.booleans())
def test_after_hop_when_any_hop_allowed_then_no_duplicates_and_actor_outermost(
    items: list[str], actor: str, subject: str, subject_is_nhi: bool
) -> None:
    chain = Chain(tuple(Actor(s) for s in items))
    is_subject = subject_is_nhi and actor == subject
    cycle = actor in items[1:] or (is_subject and bool(items) and items[0] != actor)
    try:
        after = chain.after_hop(Actor(actor), subject, subject_is_nhi=subject_is_nhi)
    except ChainError:
        assert cycle
        return
    assert not cycle
    assert len(set(after.actors)) == after.depth
    assert after.depth <= chain.depth + 1
    assert after.actors[after.depth - chain.depth :] == chain.actors
    if after.depth:
        assert after.outermost == Actor(actor)
    else:
        assert is_subject and not items


# -- malformed act ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "act",
    [
        "web",
        ["web"],
        42,
        True,
        {},
        {"iss": "https://idp.example"},
        {"sub": ""},
        {"sub": 7},
        {"sub": None},
        {"sub": "x" * (MAX_MEMBER_LENGTH + 1)},
        {"sub": "web", "iss": 1},
        {"sub": "web", "iss": ""},
        {"sub": "web", "iss": ["https://idp.example"]},
        {"sub": "web", "act": "agent"},
        {"sub": "web", "act": {"act": {"sub": "agent"}}},
        {"sub": "web", "act": {"sub": "agent", "act": []}},
    ],
)
def test_from_act_when_malformed_then_chain_error(act: Any) -> None:
    with pytest.raises(ChainError):
        Chain.from_act(act)


def test_from_act_when_deeper_than_parse_cap_then_chain_error() -> None:
    at_cap = nested(*(f"a{i}" for i in range(MAX_PARSE_DEPTH)))
    assert Chain.from_act(at_cap).depth == MAX_PARSE_DEPTH
    with pytest.raises(ChainError):
        Chain.from_act(nested(*(f"a{i}" for i in range(MAX_PARSE_DEPTH + 1))))


def test_from_act_when_hostile_nesting_then_chain_error_not_recursion_error() -> None:
    act: dict[str, Any] = {"sub": "x"}
    for _ in range(5000):
        act = {"sub": "x", "act": act}
    with pytest.raises(ChainError):
        Chain.from_act(act)


def test_from_act_when_explicit_null_act_then_chain_ends() -> None:
    assert Chain.from_act({"sub": "web", "act": None}).subs() == ("web",)


# -- extra members are never carried forward ---------------------------------------------------
def test_from_act_when_levels_carry_extra_members_then_dropped() -> None:
    act = {
        "sub": "agent",
        "client_id": "agent",
        "scope": "admin",
        "may_act": {"sub": "mallory"},
        "act": {"sub": "web", "iss": "https://idp.example", "exp": 1, "aud": "x"},
    }
    chain = Chain.from_act(act)
    assert chain.to_act() == {"sub": "agent", "act": {"sub": "web", "iss": "https://idp.example"}}
    after = chain.after_hop(Actor("tool"), "alice")
    assert after.to_act() == {
        "sub": "tool",
        "act": {"sub": "agent", "act": {"sub": "web", "iss": "https://idp.example"}},
    }


@given(
    st.lists(
        st.tuples(
            subs,
            st.dictionaries(
                st.text(max_size=10).filter(lambda k: k not in {"sub", "iss", "act"}),
                st.integers() | st.text(max_size=5) | st.none(),
                max_size=3,
            ),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_from_act_when_random_extra_members_then_to_act_holds_identity_only(
    levels: list[tuple[str, dict[str, Any]]],
) -> None:
    act: dict[str, Any] | None = None
    for sub, extra in reversed(levels):
        level: dict[str, Any] = {**extra, "sub": sub}
        if act is not None:
            level["act"] = act
        act = level
    assert Chain.from_act(act).to_act() == nested(*(sub for sub, _ in levels))


def test_actor_parse_when_valid_then_claim_round_trips() -> None:
    assert Actor.parse({"sub": "web"}).claim() == {"sub": "web"}
    assert Actor.parse({"sub": "w", "iss": "https://i"}).claim() == {"sub": "w", "iss": "https://i"}
