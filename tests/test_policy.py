"""Delegation policy as a pure function (DESIGN §5.5, §5.7, §5.8), with hand-built facts."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sts.core.chain import Actor, Chain
from sts.core.errors import InvalidRequest, InvalidScope, InvalidTarget
from sts.core.policy import Subject, decide
from sts.core.ports import RuleView

NOW = 1_700_000_000
IDP = "https://idp.example.test"
STS = "https://sts.example.test"


def rule(rule_id: str = "rule_1", **kw: Any) -> RuleView:
    base = RuleView(
        id=rule_id,
        actor_id=1,
        subject_type="any",
        subject_value="",
        upstream_sub=None,
        scopes=frozenset({"read", "write"}),
        max_depth=None,
        max_ttl=None,
        expires_at=None,
        targets=frozenset({2}),
    )
    return replace(base, **kw)


PERSON = Subject(
    sub="alice", issuer=IDP, nhi_kind=None, scope_cap=None, upstream=None, rooted_here=False
)
JOB = Subject(
    sub="batch", issuer=STS, nhi_kind="workload", scope_cap=None, upstream="batch", rooted_here=True
)


def chain(*subs: str) -> Chain:
    return Chain(tuple(Actor(s) for s in subs))


def run(rules: list[RuleView], **kw: Any) -> Any:
    args: dict[str, Any] = {
        "rules": rules,
        "subject": PERSON,
        "new_chain": chain("web"),
        "requested": None,
        "now": NOW,
        "default_ttl": 300,
        "max_ttl": 3600,
        "max_depth": 5,
        "token_exps": (NOW + 600,),
    }
    args.update(kw)
    return decide(**args)


# -- default deny: which error -----------------------------------------------------------------
def test_decide_when_no_rules_then_invalid_target() -> None:
    with pytest.raises(InvalidTarget) as err:
        run([])
    assert err.value.error == "invalid_target"


def test_decide_when_no_rules_and_chain_beyond_global_depth_then_still_invalid_target() -> None:
    """An unknown target and a known one this actor may not reach answer the same (§5.6)."""
    with pytest.raises(InvalidTarget):
        run([], new_chain=chain("a", "b", "c"), max_depth=2)


@pytest.mark.parametrize(
    ("subject_type", "subject_value", "subject"),
    [
        ("sub", "bob", PERSON),
        # A sub rule without an issuer names an NHI: a person of that sub is not covered.
        ("sub", "alice", PERSON),
        ("issuer", "https://other-idp.example", PERSON),
        ("issuer", IDP, JOB),
        ("kind", "agent", JOB),
        ("kind", "workload", PERSON),
        ("unknown-type", "alice", PERSON),
    ],
)
def test_decide_when_subject_not_covered_then_invalid_request(
    subject_type: str, subject_value: str, subject: Subject
) -> None:
    r = rule(subject_type=subject_type, subject_value=subject_value)
    with pytest.raises(InvalidRequest) as err:
        run([r], subject=subject)
    assert err.value.error == "invalid_request"
    assert "rule_1" in err.value.reason


@pytest.mark.parametrize(
    ("subject_type", "subject_value", "subject"),
    [
        ("any", "", PERSON),
        ("issuer", IDP, PERSON),
        ("issuer", STS, JOB),
        ("sub", "batch", JOB),
        ("kind", "workload", JOB),
    ],
)
def test_decide_when_subject_covered_then_allowed(
    subject_type: str, subject_value: str, subject: Subject
) -> None:
    r = rule(subject_type=subject_type, subject_value=subject_value)
    assert run([r], subject=subject).rule is r


# -- sub rules match (issuer, sub), DESIGN §3 ------------------------------------------------
#: A person of the IdP whose sub is the name of an NHI ("batch").
NAMESAKE = replace(PERSON, sub="batch")


@pytest.mark.parametrize(
    ("value", "issuer", "subject"),
    [
        ("alice", IDP, PERSON),
        ("batch", None, JOB),
        ("batch", IDP, NAMESAKE),
    ],
)
def test_decide_when_sub_rule_names_subjects_issuer_and_sub_then_allowed(
    value: str, issuer: str | None, subject: Subject
) -> None:
    r = rule(subject_type="sub", subject_value=value, subject_issuer=issuer)
    assert run([r], subject=subject).rule is r


@pytest.mark.parametrize(
    ("value", "issuer", "subject"),
    [
        # The person is not the NHI of the same name, nor the reverse.
        ("batch", None, NAMESAKE),
        ("batch", IDP, JOB),
        # The same sub from another issuer is another subject.
        ("alice", "https://other-idp.example", PERSON),
        ("alice", IDP, NAMESAKE),
    ],
)
def test_decide_when_sub_rule_issuer_or_sub_differs_then_invalid_request(
    value: str, issuer: str | None, subject: Subject
) -> None:
    r = rule(subject_type="sub", subject_value=value, subject_issuer=issuer)
    with pytest.raises(InvalidRequest) as err:
        run([r], subject=subject)
    assert (err.value.error, err.value.reason) == (
        "invalid_request",
        "rule rule_1: subject not covered",
    )


@pytest.mark.parametrize("upstream", [None, "tool"])
def test_decide_when_upstream_differs_then_invalid_request(upstream: str | None) -> None:
    subject = replace(PERSON, upstream=upstream)
    with pytest.raises(InvalidRequest):
        run([rule(upstream_sub="web")], subject=subject, new_chain=chain("agent", "web"))


def test_decide_when_upstream_matches_then_allowed() -> None:
    subject = replace(PERSON, upstream="web")
    decision = run([rule(upstream_sub="web")], subject=subject, new_chain=chain("agent", "web"))
    assert decision.rule.id == "rule_1"


def test_decide_when_one_rule_covers_and_another_not_then_covering_rule_used() -> None:
    narrow = rule("rule_a", subject_type="sub", subject_value="bob")
    wide = rule("rule_b", scopes=frozenset({"read"}))
    assert run([narrow, wide]).rule is wide


# -- depth -------------------------------------------------------------------------------------
@pytest.mark.parametrize("limit", [1, 2, 3])
def test_decide_when_depth_equals_rule_max_then_allowed(limit: int) -> None:
    subs = [f"a{i}" for i in range(limit)]
    assert run([rule(max_depth=limit)], new_chain=chain(*subs)).rule.max_depth == limit


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_decide_when_depth_one_over_rule_max_then_invalid_request(limit: int) -> None:
    subs = [f"a{i}" for i in range(limit + 1)]
    with pytest.raises(InvalidRequest) as err:
        run([rule(max_depth=limit)], new_chain=chain(*subs))
    assert "depth" in err.value.reason


def test_decide_when_depth_equals_global_max_then_allowed() -> None:
    assert run([rule()], new_chain=chain("a", "b", "c"), max_depth=3).rule.id == "rule_1"


@pytest.mark.parametrize("rule_max", [None, 10])
def test_decide_when_depth_beyond_global_max_then_invalid_request(rule_max: int | None) -> None:
    with pytest.raises(InvalidRequest) as err:
        run([rule(max_depth=rule_max)], new_chain=chain("a", "b", "c", "d"), max_depth=3)
    assert "depth" in err.value.reason


def test_decide_when_no_act_then_depth_zero_passes_any_limit() -> None:
    assert run([rule(max_depth=1)], new_chain=Chain()).rule.id == "rule_1"


# -- scope only narrows --------------------------------------------------------------------------
def test_decide_when_requested_scope_beyond_rule_then_invalid_scope() -> None:
    with pytest.raises(InvalidScope) as err:
        run([rule()], requested=frozenset({"read", "admin"}))
    assert err.value.error == "invalid_scope"


def test_decide_when_requested_scope_within_rule_then_granted_exactly() -> None:
    assert run([rule()], requested=frozenset({"write"})).scopes == {"write"}


def test_decide_when_no_scope_requested_then_largest_allowed() -> None:
    small = rule("rule_a", scopes=frozenset({"read"}))
    large = rule("rule_b", scopes=frozenset({"read", "write", "delete"}))
    decision = run([small, large])
    assert decision.rule is large
    assert decision.scopes == {"read", "write", "delete"}


def test_decide_when_scope_requested_then_a_rule_that_fits_it_is_used() -> None:
    first = rule("rule_a", scopes=frozenset({"read"}), max_ttl=10)
    second = rule("rule_b", scopes=frozenset({"write"}), max_ttl=20)
    decision = run([first, second], requested=frozenset({"write"}))
    assert decision.rule is second
    assert decision.exp == NOW + 20


def test_decide_when_request_needs_two_rules_together_then_invalid_scope() -> None:
    first = rule("rule_a", scopes=frozenset({"read"}))
    second = rule("rule_b", scopes=frozenset({"write"}))
    with pytest.raises(InvalidScope):
        run([first, second], requested=frozenset({"read", "write"}))


def test_decide_when_subject_caps_scope_then_default_is_intersection() -> None:
    capped = replace(PERSON, scope_cap=frozenset({"read", "profile"}))
    assert run([rule()], subject=capped).scopes == {"read"}


def test_decide_when_subject_caps_scope_then_rule_scope_outside_cap_refused() -> None:
    capped = replace(PERSON, scope_cap=frozenset({"read"}))
    with pytest.raises(InvalidScope):
        run([rule()], subject=capped, requested=frozenset({"write"}))


def test_decide_when_subject_cap_is_empty_then_no_token_is_minted() -> None:
    """DESIGN §5.7: an intersection that leaves nothing is ``invalid_scope``; a token with
    no scope is never minted, whether a scope was requested or not."""
    capped = replace(PERSON, scope_cap=frozenset())
    with pytest.raises(InvalidScope) as refused:
        run([rule()], subject=capped)
    assert refused.value.reason == "no scope left: the rule's and the subject's scopes do not meet"
    with pytest.raises(InvalidScope):
        run([rule()], subject=capped, requested=frozenset({"read"}))


def test_decide_when_rule_grants_no_scope_then_no_token_is_minted() -> None:
    with pytest.raises(InvalidScope):
        run([rule(scopes=frozenset())], subject=PERSON)


def test_decide_when_no_cap_then_rule_alone_bounds_scope() -> None:
    assert run([rule()], subject=PERSON, requested=frozenset({"write"})).scopes == {"write"}


# -- life only shortens --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("default_ttl", "rule_ttl", "exps", "global_max", "expected"),
    [
        (300, None, (NOW + 600,), 3600, NOW + 300),
        (300, 60, (NOW + 600,), 3600, NOW + 60),
        (300, None, (NOW + 100,), 3600, NOW + 100),
        (300, 500, (NOW + 600, NOW + 90), 3600, NOW + 90),
        (300, None, (NOW + 600,), 200, NOW + 200),
        (300, 1, (NOW + 600,), 3600, NOW + 1),
    ],
)
def test_decide_when_lifetimes_compete_then_earliest_wins(
    default_ttl: int,
    rule_ttl: int | None,
    exps: tuple[int, ...],
    global_max: int,
    expected: int,
) -> None:
    decision = run(
        [rule(max_ttl=rule_ttl)], default_ttl=default_ttl, max_ttl=global_max, token_exps=exps
    )
    assert decision.exp == expected


@pytest.mark.parametrize("exp", [NOW, NOW - 10])
def test_decide_when_subject_token_has_no_life_left_then_invalid_request(exp: int) -> None:
    with pytest.raises(InvalidRequest):
        run([rule()], token_exps=(exp,))


@given(
    default_ttl=st.integers(1, 3600),
    rule_ttl=st.none() | st.integers(1, 7200),
    exps=st.lists(st.integers(NOW + 1, NOW + 10_000), min_size=1, max_size=2),
    global_max=st.integers(1, 7200),
)
def test_decide_when_any_lifetimes_then_exp_is_their_minimum(
    default_ttl: int, rule_ttl: int | None, exps: list[int], global_max: int
) -> None:
    decision = run(
        [rule(max_ttl=rule_ttl)],
        default_ttl=default_ttl,
        max_ttl=global_max,
        token_exps=tuple(exps),
    )
    bounds = [NOW + default_ttl, NOW + global_max, *exps]
    if rule_ttl is not None:
        bounds.append(NOW + rule_ttl)
    assert decision.exp == min(bounds)
    assert decision.exp > NOW


@given(
    rule_scopes=st.frozensets(st.sampled_from("abcde")),
    cap=st.none() | st.frozensets(st.sampled_from("abcde")),
    requested=st.none() | st.frozensets(st.sampled_from("abcdef")),
)
def test_decide_when_any_scopes_then_granted_within_rule_and_cap(
    rule_scopes: frozenset[str], cap: frozenset[str] | None, requested: frozenset[str] | None
) -> None:
    allowed = rule_scopes if cap is None else rule_scopes & cap
    subject = replace(PERSON, scope_cap=cap)
    granted = allowed if requested is None else requested
    if (requested is not None and not requested <= allowed) or not granted:
        with pytest.raises(InvalidScope):
            run([rule(scopes=rule_scopes)], subject=subject, requested=requested)
        return
    decision = run([rule(scopes=rule_scopes)], subject=subject, requested=requested)
    assert decision.scopes == granted
