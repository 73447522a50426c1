"""Introspection (RFC 7662), client revocation (RFC 7009) and the revocation feed (DESIGN §7)."""

from __future__ import annotations

import secrets
from typing import Any

import jwt
import pytest

from sts.oauth import feed
from sts.services import audit, nhis, rules
from sts.store.admin import admin_store
from sts.store.revocation import revoke
from tests.conftest import ISSUER, Registered
from tests.exchange_fixtures import client_credentials
from tests.helpers import FORM, KeyPair, basic, claims_of
from tests.test_revocation import (
    INVALID_CLIENT,
    Token,
    World,
    build_world,
    feed_jtis,
    introspect,
    is_active,
)

INACTIVE = {"active": False}
ACTIVE_FIELDS = {
    "active",
    "token_type",
    "iss",
    "sub",
    "aud",
    "client_id",
    "scope",
    "exp",
    "iat",
    "nbf",
    "jti",
    "txn",
    "act",
    "sub_id",
    "depth",
}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@pytest.fixture
def world(client: Any, runtime: Any, make_nhi: Any, clock: Any) -> World:
    return build_world(client, runtime, make_nhi, clock)


def post(client: Any, path: str, data: dict[str, str], headers: dict[str, str]) -> Any:
    return client.post(path, data=data, headers=headers, content_type=FORM)


def rfc7009_revoke(world: World, caller: Registered, token: str, **extra: str) -> Any:
    return post(
        world.client,
        "/revoke",
        {"token": token, **extra},
        basic(caller.client_id, caller.secret or ""),
    )


def admin_revoke(world: World, kind: str, target: str) -> None:
    with world.runtime.engine.begin() as conn:
        revoke(conn, kind, target, now=world.clock.now(), admin="test")


def expected_active(token: Token, depth: int) -> dict[str, Any]:
    claims = token.claims
    return {
        "active": True,
        "token_type": "Bearer",
        "iss": ISSUER,
        "sub": claims["sub"],
        "aud": claims["aud"],
        "client_id": claims["client_id"],
        "scope": claims["scope"],
        "exp": claims["exp"],
        "iat": claims["iat"],
        "nbf": claims["nbf"],
        "jti": claims["jti"],
        "txn": claims["txn"],
        "act": claims["act"],
        "sub_id": claims["sub_id"],
        "depth": depth,
    }


# -- RFC 7662: active --------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("as_", ["audience", "holder"])
def test_introspect_when_caller_is_audience_or_holder_then_full_active_body(
    world: World, depth: int, as_: str
) -> None:
    chain = world.chains["alice1"]
    token = chain.hops[depth - 1]
    caller = world.nhis[token.aud if as_ == "audience" else token.holder]

    resp = introspect(world.client, caller, token.token)

    assert resp.status_code == 200
    assert resp.json == expected_active(token, depth)
    assert set(resp.json) == ACTIVE_FIELDS
    assert resp.json["sub"] == "alice"
    assert resp.json["txn"] == chain.txn
    act, seen = resp.json["act"], []
    while act:
        seen.append(act["sub"])
        act = act.get("act")
    assert seen == ["tool", "agent", "web"][3 - depth :]
    for name, value in NO_STORE.items():
        assert resp.headers[name] == value


def test_introspect_when_mid_chain_token_then_fields_match_the_hop(world: World) -> None:
    token = world.chains["bob"].hops[1]

    resp = introspect(world.client, world.nhis["tool"], token.token)

    assert {k: resp.json[k] for k in ("sub", "aud", "client_id", "scope", "depth")} == {
        "sub": "bob",
        "aud": "tool",
        "client_id": "agent",
        "scope": "orders:read orders:write",
        "depth": 2,
    }
    assert resp.json["act"] == {"sub": "agent", "act": {"sub": "web"}}


def test_introspect_when_client_credentials_token_then_active_without_act(world: World) -> None:
    assert world.tool_cc is not None

    resp = introspect(world.client, world.nhis["tool"], world.tool_cc.token)

    assert resp.status_code == 200
    claims = world.tool_cc.claims
    assert "act" not in claims and "scope" not in claims  # tool has no scopes of its own
    assert resp.json == {
        "active": True,
        "token_type": "Bearer",
        **{k: claims[k] for k in ("iss", "sub", "aud", "client_id", "exp", "iat", "nbf", "jti")},
        "txn": claims["jti"],
        "depth": 0,
    }
    assert resp.json["aud"] == ISSUER
    assert resp.json["sub"] == resp.json["client_id"] == "tool"


# -- RFC 7662: inactive ------------------------------------------------------------------------
def test_introspect_when_revoked_then_only_active_false(world: World) -> None:
    token = world.chains["alice1"].hops[1]
    admin_revoke(world, "token", token.jti)

    for name in (token.aud, token.holder):
        resp = introspect(world.client, world.nhis[name], token.token)
        assert (resp.status_code, resp.json) == (200, INACTIVE)


def test_introspect_when_ancestor_revoked_then_descendant_inactive(world: World) -> None:
    chain = world.chains["alice1"]
    admin_revoke(world, "token", chain.hops[0].jti)

    resp = introspect(world.client, world.nhis["data"], chain.hops[2].token)

    assert (resp.status_code, resp.json) == (200, INACTIVE)


@pytest.mark.parametrize(("offset", "active"), [(-1, True), (0, False), (1, False), (31, False)])
def test_introspect_when_clock_reaches_exp_then_inactive(
    world: World, offset: int, active: bool
) -> None:
    token = world.chains["alice1"].hops[2]
    world.clock.advance(token.claims["exp"] - world.clock.now() + offset)

    resp = introspect(world.client, world.nhis["data"], token.token)

    assert resp.status_code == 200
    if active:
        assert resp.json == expected_active(token, 3)
    else:
        assert resp.json == INACTIVE


def unknown_own_token(world: World) -> str:
    """Signed with the STS's own key, well formed, but never issued (no lineage)."""
    key = world.runtime.keys.ring.signing_key(world.clock.now())
    now = world.clock.now()
    claims = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": "tool",
        "client_id": "agent",
        "scope": "orders:read",
        "iat": now,
        "nbf": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(18),
        "txn": secrets.token_urlsafe(18),
    }
    return jwt.encode(
        claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": "at+jwt"}
    )


def forged_token(world: World) -> str:
    """An exact copy of a live token's claims, signed by a stranger under the STS's kid."""
    token = world.chains["alice1"].hops[1]
    kid = world.runtime.keys.ring.signing_key(world.clock.now()).kid
    return jwt.encode(
        token.claims, KeyPair().private, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"}
    )


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda w: "garbage", id="garbage"),
        pytest.param(lambda w: "a.b.c", id="three-dots"),
        pytest.param(lambda w: "x" * 5000, id="long"),
        pytest.param(unknown_own_token, id="never-issued"),
        pytest.param(forged_token, id="forged"),
        pytest.param(lambda w: w.person_token("alice"), id="another-issuer"),
    ],
)
def test_introspect_when_token_unknown_or_not_ours_then_only_active_false(
    world: World, make: Any
) -> None:
    token = make(world)

    for name in ("web", "tool"):
        resp = introspect(world.client, world.nhis[name], token)
        assert (resp.status_code, resp.json) == (200, INACTIVE)


@pytest.mark.parametrize("caller", ["web", "data"])
def test_introspect_when_caller_neither_audience_nor_holder_then_only_active_false(
    world: World, caller: str
) -> None:
    token = world.chains["alice1"].hops[1]  # aud tool, held by agent; web is upstream

    resp = introspect(world.client, world.nhis[caller], token.token)

    assert (resp.status_code, resp.json) == (200, INACTIVE)


def test_introspect_when_identity_in_chain_disabled_then_inactive_even_once_enabled(
    world: World,
) -> None:
    """Disabling is containment (DESIGN §7): the tokens the agent acted in, and the one
    addressed to it, are revoked for good; enabling it again only allows new exchanges."""
    chain = world.chains["alice1"]

    def states() -> list[bool]:
        return [is_active(world, h, frozenset({"agent"})) for h in chain.hops]

    with admin_store(world.runtime.engine) as store:
        nhis.set_nhi_status(
            store,
            "agent",
            status="disabled",
            reason="investigating",
            now=world.clock.now(),
            admin="t",
        )
    assert states() == [False, False, False]
    dead = {h.jti: h.claims["exp"] for c in world.chains.values() for h in c.hops}
    assert feed_jtis(world.client, world.nhis["data"]) == dead
    with admin_store(world.runtime.engine) as store:
        nhis.set_nhi_status(
            store, "agent", status="active", reason="", now=world.clock.now(), admin="t"
        )
    assert states() == [False, False, False]
    assert feed_jtis(world.client, world.nhis["data"]) == dead


def test_introspect_when_rule_disabled_then_tokens_it_minted_inactive(world: World) -> None:
    chain = world.chains["alice1"]
    with admin_store(world.runtime.engine) as store:
        rules.disable_rule(store, world.rules["tool"], now=world.clock.now(), admin="t")

    assert [is_active(world, h) for h in chain.hops] == [True, True, False]


def test_introspect_when_client_secret_post_then_same_answer_as_basic(world: World) -> None:
    token = world.chains["alice1"].hops[1]
    tool = world.nhis["tool"]

    resp = post(
        world.client,
        "/introspect",
        {"token": token.token, "client_id": tool.client_id, "client_secret": tool.secret or ""},
        {},
    )

    assert (resp.status_code, resp.json) == (200, expected_active(token, 2))


def test_introspect_when_basic_and_body_secret_together_then_400(world: World) -> None:
    token = world.chains["alice1"].hops[1]
    tool = world.nhis["tool"]

    resp = post(
        world.client,
        "/introspect",
        {"token": token.token, "client_id": tool.client_id, "client_secret": tool.secret or ""},
        basic(tool.client_id, tool.secret or ""),
    )

    assert resp.status_code == 400 and resp.json["error"] == "invalid_request"


def test_introspect_when_caller_disabled_then_401(world: World) -> None:
    token = world.chains["alice1"].hops[1]
    with admin_store(world.runtime.engine) as store:
        nhis.set_nhi_status(
            store, "tool", status="disabled", reason="x", now=world.clock.now(), admin="t"
        )

    resp = introspect(world.client, world.nhis["tool"], token.token)

    assert (resp.status_code, resp.json) == (401, INVALID_CLIENT)


# -- RFC 7662: refused requests ----------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="none"),
        pytest.param(basic("tool", "wrong"), id="wrong-secret"),
        pytest.param(basic("nobody", "wrong"), id="unknown-client"),
    ],
)
@pytest.mark.parametrize("path", ["/introspect", "/revoke"])
def test_endpoint_when_caller_unauthenticated_then_401_invalid_client(
    world: World, headers: dict[str, str], path: str
) -> None:
    token = world.chains["alice1"].hops[1]

    resp = post(world.client, path, {"token": token.token}, headers)

    assert (resp.status_code, resp.json) == (401, INVALID_CLIENT)
    assert is_active(world, token)


@pytest.mark.parametrize("path", ["/introspect", "/revoke"])
@pytest.mark.parametrize(
    "data",
    [pytest.param({}, id="missing"), pytest.param({"token": ""}, id="empty")],
)
def test_endpoint_when_token_missing_then_400_invalid_request(
    world: World, path: str, data: dict[str, str]
) -> None:
    tool = world.nhis["tool"]

    resp = post(world.client, path, data, basic(tool.client_id, tool.secret or ""))

    assert (resp.status_code, resp.json) == (
        400,
        {"error": "invalid_request", "error_description": "Missing token."},
    )


@pytest.mark.parametrize("path", ["/introspect", "/revoke"])
def test_endpoint_when_token_repeated_then_400_invalid_request(world: World, path: str) -> None:
    token = world.chains["alice1"].hops[1]
    agent = world.nhis["agent"]

    resp = world.client.post(
        path,
        data=f"token={token.token}&token={token.token}",
        headers=basic(agent.client_id, agent.secret or ""),
        content_type=FORM,
    )

    assert resp.status_code == 400
    assert resp.json["error"] == "invalid_request"
    assert is_active(world, token)


@pytest.mark.parametrize(
    ("path", "name"), [("/introspect", "introspection"), ("/revoke", "revocation")]
)
def test_endpoint_when_get_then_400_invalid_request(world: World, path: str, name: str) -> None:
    token = world.chains["alice1"].hops[1]
    agent = world.nhis["agent"]

    resp = world.client.get(
        f"{path}?token={token.token}", headers=basic(agent.client_id, agent.secret or "")
    )

    assert (resp.status_code, resp.json) == (
        400,
        {
            "error": "invalid_request",
            "error_description": f"The {name} endpoint accepts POST only.",
        },
    )
    assert is_active(world, token)


# -- RFC 7009 ----------------------------------------------------------------------------------
@pytest.mark.parametrize("hint", [None, "access_token"])
def test_rfc7009_when_holder_revokes_then_200_empty_and_token_and_descendants_inactive(
    world: World, hint: str | None
) -> None:
    chain = world.chains["alice1"]
    token = chain.hops[1]
    extra = {"token_type_hint": hint} if hint else {}

    resp = rfc7009_revoke(world, world.nhis[token.holder], token.token, **extra)

    assert (resp.status_code, resp.json) == (200, {})
    assert resp.headers["Cache-Control"] == "no-store"
    assert not is_active(world, chain.hops[1])
    assert not is_active(world, chain.hops[2])
    assert is_active(world, chain.hops[0])
    assert all(is_active(world, h) for h in world.chains["alice2"].hops)
    assert set(feed_jtis(world.client, world.nhis["data"])) == {h.jti for h in chain.hops[1:]}
    with admin_store(world.runtime.engine) as store:
        story = audit.show(store, now=world.clock.now(), txn=chain.txn)
    assert [(r["kind"], r["target"], r["revoked_by"]) for r in story["revocations"]] == [
        ("token", token.jti, "agent")
    ]


def test_rfc7009_when_holder_revokes_its_client_credentials_token_then_inactive(
    world: World,
) -> None:
    assert world.tool_cc is not None

    resp = rfc7009_revoke(world, world.nhis["tool"], world.tool_cc.token)

    assert (resp.status_code, resp.json) == (200, {})
    assert not is_active(world, world.tool_cc)
    assert set(feed_jtis(world.client, world.nhis["data"])) == {world.tool_cc.jti}


@pytest.mark.parametrize("caller", ["tool", "web", "data"])
def test_rfc7009_when_another_client_revokes_then_200_empty_and_nothing_changes(
    world: World, caller: str
) -> None:
    token = world.chains["alice1"].hops[1]  # held by agent

    resp = rfc7009_revoke(world, world.nhis[caller], token.token)

    assert (resp.status_code, resp.json) == (200, {})
    assert introspect(world.client, world.nhis["tool"], token.token).json == expected_active(
        token, 2
    )
    assert is_active(world, world.chains["alice1"].hops[2])
    assert feed_jtis(world.client, world.nhis["data"]) == {}


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda w: "garbage", id="garbage"),
        pytest.param(unknown_own_token, id="never-issued"),
        pytest.param(forged_token, id="forged"),
        pytest.param(lambda w: w.person_token("alice"), id="another-issuer"),
    ],
)
def test_rfc7009_when_token_unknown_then_200_empty_and_nothing_changes(
    world: World, make: Any
) -> None:
    resp = rfc7009_revoke(world, world.nhis["agent"], make(world))

    assert (resp.status_code, resp.json) == (200, {})
    assert feed_jtis(world.client, world.nhis["data"]) == {}


def test_rfc7009_when_token_already_revoked_then_200_empty(world: World) -> None:
    token = world.chains["alice1"].hops[1]
    agent = world.nhis["agent"]
    assert rfc7009_revoke(world, agent, token.token).json == {}

    resp = rfc7009_revoke(world, agent, token.token)

    assert (resp.status_code, resp.json) == (200, {})
    assert set(feed_jtis(world.client, world.nhis["data"])) == {
        h.jti for h in world.chains["alice1"].hops[1:]
    }


def test_rfc7009_when_token_expired_then_200_empty_and_not_listed(world: World) -> None:
    token = world.chains["alice1"].hops[2]
    world.clock.advance(token.claims["exp"] - world.clock.now())

    resp = rfc7009_revoke(world, world.nhis["tool"], token.token)

    assert (resp.status_code, resp.json) == (200, {})
    assert feed_jtis(world.client, world.nhis["data"]) == {}


# -- the revocation feed -----------------------------------------------------------------------
def get_feed(world: World, headers: dict[str, str], since: str = "") -> Any:
    return world.client.get(f"/revocations?since={since}", headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_feed_when_basic_or_sts_bearer_then_lists_revoked_jtis_with_exp(world: World) -> None:
    assert world.tool_cc is not None
    chain = world.chains["alice1"]
    admin_revoke(world, "token", chain.hops[1].jti)
    data = world.nhis["data"]
    expected = sorted(
        ({"jti": h.jti, "exp": h.claims["exp"]} for h in chain.hops[1:]),
        key=lambda item: item["jti"],
    )

    by_basic = get_feed(world, basic(data.client_id, data.secret or ""))
    by_bearer = get_feed(world, bearer(world.tool_cc.token))

    for resp in (by_basic, by_bearer):
        assert resp.status_code == 200, resp.json
        assert resp.headers["Cache-Control"] == "no-store"
        assert resp.json["revoked"] == expected
        assert resp.json["more"] is False
    assert by_basic.json == by_bearer.json


def test_feed_when_bearer_from_client_credentials_of_another_nhi_then_works(
    world: World,
) -> None:
    resp = client_credentials(world.client, world.nhis["data"])
    token = resp.json["access_token"]
    assert claims_of(token)["aud"] == ISSUER

    resp = get_feed(world, bearer(token))

    assert (resp.status_code, resp.json) == (200, {"revoked": [], "next": "", "more": False})


def client_credentials_for_data(world: World) -> str:
    resp = client_credentials(world.client, world.nhis["tool"], audience="data")
    assert resp.status_code == 200, resp.json
    return str(resp.json["access_token"])


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda w: {}, id="none"),
        pytest.param(lambda w: basic("data", "wrong"), id="wrong-secret"),
        pytest.param(lambda w: bearer("garbage"), id="garbage-bearer"),
        pytest.param(lambda w: bearer(""), id="empty-bearer"),
        pytest.param(lambda w: bearer(w.chains["alice1"].hops[0].token), id="exchanged-depth-1"),
        pytest.param(lambda w: bearer(w.chains["alice1"].hops[2].token), id="exchanged-depth-3"),
        pytest.param(lambda w: bearer(client_credentials_for_data(w)), id="aud-not-sts"),
        pytest.param(lambda w: bearer(w.person_token("alice")), id="another-issuer"),
        pytest.param(lambda w: bearer(unknown_own_token(w)), id="never-issued"),
        pytest.param(lambda w: {"Authorization": "Digest abc"}, id="other-scheme"),
    ],
)
def test_feed_when_caller_not_acceptable_then_401_invalid_client(
    world: World, headers: Any
) -> None:
    admin_revoke(world, "txn", world.chains["bob"].txn)

    resp = get_feed(world, headers(world))

    assert (resp.status_code, resp.json) == (401, INVALID_CLIENT)


def test_feed_when_bearer_token_revoked_then_401(world: World) -> None:
    assert world.tool_cc is not None
    admin_revoke(world, "token", world.tool_cc.jti)

    resp = get_feed(world, bearer(world.tool_cc.token))

    assert (resp.status_code, resp.json) == (401, INVALID_CLIENT)


def test_feed_when_bearer_token_expired_then_401(world: World) -> None:
    assert world.tool_cc is not None
    world.clock.advance(world.tool_cc.claims["exp"] - world.clock.now())

    resp = get_feed(world, bearer(world.tool_cc.token))

    assert (resp.status_code, resp.json) == (401, INVALID_CLIENT)


def test_feed_when_more_than_a_page_then_paging_collects_exactly_the_revoked_set(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed, "FEED_PAGE", 2)
    admin_revoke(world, "txn", world.chains["alice1"].txn)
    admin_revoke(world, "token", world.chains["bob"].hops[2].jti)
    admin_revoke(world, "txn", world.chains["alice2"].txn)
    expected = (
        world.chains["alice1"].jtis
        | world.chains["alice2"].jtis
        | {world.chains["bob"].hops[2].jti}
    )
    data = world.nhis["data"]
    auth = basic(data.client_id, data.secret or "")

    pages, seen, since = [], [], ""
    while True:
        resp = get_feed(world, auth, since)
        assert resp.status_code == 200, resp.json
        pages.append(resp.json)
        seen.extend(item["jti"] for item in resp.json["revoked"])
        since = resp.json["next"]
        if not resp.json["more"]:
            break
        assert len(pages) < 10

    assert [len(p["revoked"]) for p in pages] == [2, 2, 2, 1]
    assert len(seen) == len(set(seen)) and set(seen) == expected
    # Revocation order: alice1's transaction, then bob's token, then alice2's transaction.
    assert set(seen[:3]) == world.chains["alice1"].jtis
    assert seen[3] == world.chains["bob"].hops[2].jti
    # Caught up: the last cursor returns nothing more, until the next revocation.
    assert get_feed(world, auth, since).json == {"revoked": [], "next": since, "more": False}
    admin_revoke(world, "token", world.chains["bob"].hops[1].jti)
    resp = get_feed(world, auth, since)
    assert [item["jti"] for item in resp.json["revoked"]] == [world.chains["bob"].hops[1].jti]
    assert resp.json["more"] is False


def test_feed_when_exactly_a_page_left_then_more_is_false(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed, "FEED_PAGE", 3)
    admin_revoke(world, "txn", world.chains["alice1"].txn)
    data = world.nhis["data"]

    resp = get_feed(world, basic(data.client_id, data.secret or ""))

    assert len(resp.json["revoked"]) == 3 and resp.json["more"] is False


def test_feed_when_revoked_tokens_expire_then_they_leave_the_feed_after_the_verifier_leeway(
    world: World,
) -> None:
    """DESIGN §7: a revoked token stays on the feed until its ``exp`` plus the largest leeway
    a verifier may apply (``STS_VERIFIER_LEEWAY``, 60 s by default): the SDK accepts a token
    up to 30 s past its ``exp``, so the feed must still list it then."""
    chain = world.chains["alice1"]
    admin_revoke(world, "txn", chain.txn)
    data = world.nhis["data"]
    assert set(feed_jtis(world.client, data)) == chain.jtis
    grace = world.runtime.settings.verifier_leeway
    assert grace == 60

    last = chain.hops[2].claims["exp"]
    world.clock.advance(last + 30 - world.clock.now())  # past exp, within the SDK's leeway
    assert set(feed_jtis(world.client, data)) == chain.jtis
    world.clock.advance(last + grace - world.clock.now())  # the last hop's grace is over
    assert set(feed_jtis(world.client, data)) == {chain.hops[0].jti, chain.hops[1].jti}

    world.clock.advance(max(h.claims["exp"] for h in chain.hops) + grace - world.clock.now())
    assert feed_jtis(world.client, data) == {}


@pytest.mark.parametrize(
    "cursor",
    [
        "abc",
        "-1.x",
        ".x",
        "1e3.x",
        "%20.x",
        "1" * 200,
        "9" * 129,
        "\u00b2.x",
        "\u00b9",
        "9" * 40 + ".x",
        "2147483648.x",
        "1.a%00b",
        "1.a%0Ab",
        "1.\u00e9",
    ],
)
def test_feed_when_cursor_malformed_then_400_invalid_request(world: World, cursor: str) -> None:
    data = world.nhis["data"]

    resp = get_feed(world, basic(data.client_id, data.secret or ""), cursor)

    assert (resp.status_code, resp.json) == (
        400,
        {"error": "invalid_request", "error_description": "Malformed cursor."},
    )


@pytest.mark.parametrize("cursor", ["0", "0.", "2147483647.x", "\u0661\u0662.x"])
def test_feed_when_cursor_is_digits_then_answers_without_error(world: World, cursor: str) -> None:
    data = world.nhis["data"]

    resp = get_feed(world, basic(data.client_id, data.secret or ""), cursor)

    assert resp.status_code in (200, 400), resp.json
    if resp.status_code == 400:
        assert resp.json == {"error": "invalid_request", "error_description": "Malformed cursor."}
    else:
        assert resp.json["revoked"] == [] and resp.json["more"] is False
