"""The SSF transmitter (DESIGN §11): metadata, stream management, POLL with acknowledgements
and what each receiver sees, checked by a receiver written against the specifications only."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from sts.core.settings import Settings
from sts.services import nhis, rules
from sts.services import revocation as revocation_service
from sts.services import ssf as ssf_service
from sts.store.admin import admin_store
from sts.store.models import SsfEvent, SsfOutbox, SsfStream
from sts.store.revocation import void_expired_rules
from tests.conftest import ISSUER
from tests.exchange_fixtures import exchange
from tests.helpers import FORM, basic, claims_of
from tests.sdk_fixtures import serve
from tests.ssf_fixtures import (
    POLL,
    PUSH,
    SESSION_REVOKED,
    VERIFICATION,
    SpecReceiver,
    SsfWorld,
    build_ssf_world,
    revoked_jtis,
    verify_set,
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, ssf_allow_http_loopback=True)


@pytest.fixture
def world(client: Any, runtime: Any, make_nhi: Any, clock: Any) -> SsfWorld:
    return build_ssf_world(client, runtime, make_nhi, clock)


def revoke(world: SsfWorld, kind: str, target: str, reason: str = "incident 7") -> Any:
    with admin_store(world.runtime.engine) as store:
        return revocation_service.revoke(
            store, kind, target, now=world.clock.now(), admin="ops-admin", reason=reason
        )


def poll(world: SsfWorld, who: str, stream_id: str, **body: Any) -> Any:
    return world.call(who, "POST", f"/ssf/poll/{stream_id}", body)


def poll_all(world: SsfWorld, who: str, stream: dict[str, Any]) -> list[dict[str, Any]]:
    """Poll until nothing waits, acknowledging each page; the verified SETs in order."""
    jwks, seen, ack = world.jwks(), [], []
    while True:
        resp = poll(world, who, stream["stream_id"], maxEvents=2, ack=ack)
        assert resp.status_code == 200, resp.get_json()
        page = resp.get_json()
        ack = list(page["sets"])
        for jti, set_jwt in page["sets"].items():
            claims = verify_set(set_jwt, jwks, stream["aud"])
            assert claims["jti"] == jti
            seen.append(claims)
        if not page["moreAvailable"]:
            if ack:
                assert (
                    poll(world, who, stream["stream_id"], maxEvents=0, ack=ack).status_code == 200
                )
            return seen


def count(world: SsfWorld, model: Any) -> int:
    with world.runtime.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


# -- metadata ---------------------------------------------------------------------------------
def test_metadata_when_fetched_then_ssf_transmitter_configuration(client: Any) -> None:
    resp = client.get("/.well-known/ssf-configuration")
    assert resp.status_code == 200
    assert resp.get_json() == {
        "spec_version": "1_0",
        "issuer": ISSUER,
        "jwks_uri": f"{ISSUER}/jwks.json",
        "delivery_methods_supported": [PUSH, POLL],
        "configuration_endpoint": f"{ISSUER}/ssf/stream",
        "status_endpoint": f"{ISSUER}/ssf/status",
        "verification_endpoint": f"{ISSUER}/ssf/verify",
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}],
    }


# -- stream management ------------------------------------------------------------------------
def test_create_poll_stream_when_valid_then_transmitter_fills_config(world: SsfWorld) -> None:
    config = world.create("data", {"delivery": {"method": POLL}, "description": "rs"})
    stream_id = config["stream_id"]
    assert config == {
        "stream_id": stream_id,
        "iss": ISSUER,
        "aud": "data",
        "events_supported": [SESSION_REVOKED],
        "events_requested": [SESSION_REVOKED],
        "events_delivered": [SESSION_REVOKED],
        "delivery": {"method": POLL, "endpoint_url": f"{ISSUER}/ssf/poll/{stream_id}"},
        "min_verification_interval": 1,
        "description": "rs",
    }
    got = world.call("data", "GET", f"/ssf/stream?stream_id={stream_id}")
    assert got.status_code == 200 and got.get_json() == config
    assert world.call("data", "GET", "/ssf/stream").get_json() == [config]
    assert world.call("ops", "GET", "/ssf/stream").get_json() == []


def test_update_when_patched_then_only_given_members_change(world: SsfWorld) -> None:
    config = world.create("data", {"delivery": {"method": POLL}})
    resp = world.call(
        "data", "PATCH", "/ssf/stream", {"stream_id": config["stream_id"], "description": "x"}
    )
    assert resp.status_code == 200
    assert resp.get_json() == {**config, "description": "x"}
    replaced = world.call(
        "data",
        "PUT",
        "/ssf/stream",
        {**config, "events_requested": [], "description": "none"},
    )
    assert replaced.status_code == 200, replaced.get_json()
    assert replaced.get_json()["events_delivered"] == []


def test_delete_when_own_stream_then_gone(world: SsfWorld) -> None:
    config = world.create("data", {"delivery": {"method": POLL}})
    sid = config["stream_id"]
    assert world.call("data", "DELETE", f"/ssf/stream?stream_id={sid}").status_code == 204
    assert world.call("data", "GET", f"/ssf/stream?stream_id={sid}").status_code == 404
    assert count(world, SsfStream) == 0


HTTPS_ONLY = "must use https (http only to a loopback address in development)"
NOT_FOUND = {
    "error": "not_found",
    "error_description": "No such stream.",
    "code": "stream_not_found",
}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/ssf/stream?stream_id={sid}", None),
        ("PATCH", "/ssf/stream", {"stream_id": "{sid}", "description": "mine now"}),
        ("PUT", "/ssf/stream", {"stream_id": "{sid}", "delivery": {"method": POLL}}),
        ("DELETE", "/ssf/stream?stream_id={sid}", None),
        ("GET", "/ssf/status?stream_id={sid}", None),
        ("POST", "/ssf/status", {"stream_id": "{sid}", "status": "disabled"}),
        ("POST", "/ssf/verify", {"stream_id": "{sid}"}),
        ("POST", "/ssf/poll/{sid}", {}),
    ],
)
def test_foreign_stream_when_named_then_404_and_nothing_changes(
    world: SsfWorld, method: str, path: str, body: Any
) -> None:
    config = world.create("data", {"delivery": {"method": POLL}})
    sid = config["stream_id"]
    if body is not None:
        body = {k: (v.format(sid=sid) if isinstance(v, str) else v) for k, v in body.items()}
    resp = world.call("outsider", method, path.format(sid=sid), body)
    assert (resp.status_code, resp.get_json()) == (404, NOT_FOUND)
    unknown = world.call(
        "outsider", method, path.format(sid="nope"), body and {**body, "stream_id": "nope"}
    )
    assert (unknown.status_code, unknown.get_json()) == (404, NOT_FOUND)
    # An id no stream can have (PostgreSQL text cannot hold NUL): the same 404, never a 500.
    hostile = world.call(
        "outsider", method, path.format(sid="n%00pe"), body and {**body, "stream_id": "n\x00pe"}
    )
    assert (hostile.status_code, hostile.get_json()) == (404, NOT_FOUND)
    assert world.call("data", "GET", f"/ssf/stream?stream_id={sid}").get_json() == config
    assert world.call("data", "GET", f"/ssf/status?stream_id={sid}").get_json() == {
        "stream_id": sid,
        "status": "enabled",
    }
    assert count(world, SsfEvent) == 0


def invalid(field: str, message: str) -> dict[str, Any]:
    return {
        "error": "invalid_request",
        "error_description": f"The request is invalid: {field}: {message}",
        "code": "invalid_configuration",
        "fields": [{"field": field, "message": message}],
    }


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ([], "(body)", "must be a JSON object"),
        ({}, "delivery", "is required: an object with a method"),
        ({"delivery": {"method": "urn:example:smoke-signals"}}, "delivery.method",
         "must be one of urn:ietf:rfc:8935, urn:ietf:rfc:8936"),
        ({"delivery": {"method": PUSH}}, "delivery.endpoint_url", "is required for push delivery"),
        ({"delivery": {"method": PUSH, "endpoint_url": "http://rs.example.com/events"}},
         "delivery.endpoint_url", HTTPS_ONLY),
        ({"delivery": {"method": PUSH, "endpoint_url": "ftp://rs.example.com/"}},
         "delivery.endpoint_url", "must be an absolute https URL"),
        ({"delivery": {"method": PUSH, "endpoint_url": "https://rs.example.com/#x"}},
         "delivery.endpoint_url", "must have no fragment and no user info"),
        ({"delivery": {"method": POLL, "endpoint_url": "https://rs.example.com/"}},
         "delivery.endpoint_url", "is set by the transmitter for poll"),
        ({"delivery": {"method": POLL, "colour": "red"}}, "delivery.colour",
         "is not a delivery member"),
        ({"delivery": {"method": POLL}, "events_requested": "all"}, "events_requested",
         "must be a list of event type URIs"),
        ({"delivery": {"method": POLL}, "stream_id": "mine"}, "stream_id",
         "is set by the transmitter"),
        ({"delivery": {"method": POLL}, "format": "email"}, "format",
         "is not a stream configuration member"),
        ({"delivery": {"method": POLL}, "description": 7}, "description",
         "must be a string of at most 255 characters"),
        ({"delivery": {"method": POLL}, "description": "a\x00b"}, "description",
         "must not contain NUL"),
    ],
)  # fmt: skip
def test_create_when_malformed_then_400_whole_body_and_nothing_stored(
    world: SsfWorld, body: Any, field: str, message: str
) -> None:
    resp = world.call("data", "POST", "/ssf/stream", body)
    assert (resp.status_code, resp.get_json()) == (400, invalid(field, message))
    assert count(world, SsfStream) == 0


def test_create_when_push_endpoint_unreachable_then_400_and_nothing_stored(
    world: SsfWorld,
) -> None:
    server = serve(SpecReceiver())
    url = server.url + "/events"
    server.close()  # nothing listens there any more
    resp = world.call(
        "data", "POST", "/ssf/stream", {"delivery": {"method": PUSH, "endpoint_url": url}}
    )
    assert (resp.status_code, resp.get_json()) == (
        400,
        {
            "error": "invalid_request",
            "error_description": "The push endpoint cannot be reached.",
            "code": "endpoint_unreachable",
            "fields": [
                {"field": "delivery.endpoint_url", "message": "the push endpoint cannot be reached"}
            ],
        },
    )
    assert count(world, SsfStream) == 0


def test_create_when_http_loopback_not_allowed_then_refused(world: SsfWorld, runtime: Any) -> None:
    runtime.settings = dataclasses.replace(runtime.settings, ssf_allow_http_loopback=False)
    world.client.application.extensions["sts"].settings = runtime.settings
    resp = world.call(
        "data",
        "POST",
        "/ssf/stream",
        {"delivery": {"method": PUSH, "endpoint_url": "http://127.0.0.1:9/events"}},
    )
    assert (resp.status_code, resp.get_json()) == (
        400,
        invalid(
            "delivery.endpoint_url",
            "must use https (http only to a loopback address in development)",
        ),
    )


def test_management_when_no_token_or_wrong_scope_then_401_403(world: SsfWorld) -> None:
    body = {"delivery": {"method": POLL}}
    resp = world.client.post("/ssf/stream", json=body)
    assert resp.status_code == 401
    assert resp.get_json() == {
        "error": "invalid_token",
        "error_description": "A valid bearer token of a receiver is required.",
        "code": "missing_token",
    }
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="chain-sts-ssf"'
    resp = world.call(
        "data", "POST", "/ssf/stream", body, headers=world.bearer("data", "orders:read")
    )
    assert resp.status_code == 403
    assert resp.get_json() == {
        "error": "insufficient_scope",
        "error_description": "This needs the scope ssf:manage.",
        "code": "insufficient_scope",
    }
    resp = world.call(
        "data", "POST", "/ssf/stream", data="{", headers={"Content-Type": "application/json"}
    )
    assert (resp.status_code, resp.get_json()) == (
        400,
        {
            "error": "invalid_request",
            "error_description": "The body is not JSON.",
            "code": "malformed_json",
        },
    )
    assert count(world, SsfStream) == 0


# -- events: what each receiver sees, by POLL -------------------------------------------------
def test_poll_when_chain_revoked_then_spec_receiver_sees_every_jti_addressed_to_it(
    world: SsfWorld,
) -> None:
    streams = {
        who: world.create(who, {"delivery": {"method": POLL}})
        for who in ("data", "ops", "outsider")
    }
    chains = [world.chain() for _ in range(3)]
    revoke(world, "token", chains[0][0])
    revoke(world, "txn", chains[1][0])
    revoke(world, "nhi", "agent")  # the third chain, through the agent
    seen = {who: poll_all(world, who, s) for who, s in streams.items()}
    # data is the audience of each chain's last hop; ops owns agent, the audience of the middle
    assert [j for c in seen["data"] for j in revoked_jtis(c)] == [c[2] for c in chains]
    assert [j for c in seen["ops"] for j in revoked_jtis(c)] == [c[1] for c in chains]
    assert seen["outsider"] == []
    first = seen["data"][0]
    assert first["txn"] == chains[0][0]
    assert first["sub_id"] == {"format": "jwt_id", "iss": ISSUER, "jti": chains[0][2]}
    assert first["events"] == {
        SESSION_REVOKED: {
            "event_timestamp": world.clock.now(),
            "initiating_entity": "admin",
            "reason_admin": {"en": "incident 7"},
        }
    }
    # acknowledged: nothing waits any more
    again = poll(world, "data", streams["data"]["stream_id"])
    assert again.get_json() == {"sets": {}, "moreAvailable": False}


def test_poll_when_admin_grants_all_subjects_then_every_revoked_token_in_one_set(
    world: SsfWorld,
) -> None:
    stream = world.create("outsider", {"delivery": {"method": POLL}})
    with world.runtime.engine.begin() as conn:
        ssf_service.grant_all_subjects(conn, stream["stream_id"], True, world.clock.now(), "root")
    chain = world.chain()
    revoke(world, "token", chain[0])
    (event,) = poll_all(world, "outsider", stream)
    assert event["sub_id"] == {
        "format": "aliases",
        "identifiers": [{"format": "jwt_id", "iss": ISSUER, "jti": j} for j in sorted(chain)],
    }
    assert event["txn"] == chain[0]


def test_poll_when_client_revokes_its_own_token_then_initiator_is_user(world: SsfWorld) -> None:
    stream = world.create("data", {"delivery": {"method": POLL}})
    chain = world.chain()
    resp = world.client.post(
        "/revoke",
        data={"token": world.tokens[chain[1]]},
        headers=basic("web", world.nhis["web"].secret or ""),
        content_type=FORM,
    )
    assert resp.status_code == 200
    (event,) = poll_all(world, "data", stream)
    assert event["events"][SESSION_REVOKED]["initiating_entity"] == "user"


def test_disable_when_nhi_or_rule_disabled_then_events_written(world: SsfWorld) -> None:
    stream = world.create("data", {"delivery": {"method": POLL}})
    chains = [world.chain(), world.chain()]
    with admin_store(world.runtime.engine) as store:
        nhis.set_nhi_status(
            store,
            "agent",
            status="disabled",
            reason="compromised",
            now=world.clock.now(),
            admin="root",
        )
    seen = poll_all(world, "data", stream)
    assert sorted(j for c in seen for j in revoked_jtis(c)) == sorted(c[2] for c in chains)
    assert seen[0]["events"][SESSION_REVOKED]["reason_admin"] == {"en": "disabled: compromised"}


def test_revoke_when_many_tokens_then_one_outbox_row_per_stream(world: SsfWorld) -> None:
    world.create("data", {"delivery": {"method": POLL}})
    world.create("ops", {"delivery": {"method": POLL}})
    world.create("outsider", {"delivery": {"method": POLL}})
    for _ in range(5):
        world.chain()
    revoke(world, "nhi", "web")
    assert count(world, SsfOutbox) == 2  # data and ops see some; outsider none


def test_poll_when_paused_then_kept_and_delivered_once_enabled(world: SsfWorld) -> None:
    stream = world.create("data", {"delivery": {"method": POLL}})
    sid = stream["stream_id"]
    resp = world.call(
        "data", "POST", "/ssf/status", {"stream_id": sid, "status": "paused", "reason": "maint"}
    )
    assert resp.get_json() == {"stream_id": sid, "status": "paused", "reason": "maint"}
    chain = world.chain()
    revoke(world, "token", chain[0])
    assert poll(world, "data", sid).get_json() == {"sets": {}, "moreAvailable": False}
    world.call("data", "POST", "/ssf/status", {"stream_id": sid, "status": "enabled"})
    assert [j for c in poll_all(world, "data", stream) for j in revoked_jtis(c)] == [chain[2]]


def test_verification_when_requested_then_event_with_state(world: SsfWorld) -> None:
    stream = world.create("data", {"delivery": {"method": POLL}})
    sid = stream["stream_id"]
    resp = world.call("data", "POST", "/ssf/verify", {"stream_id": sid, "state": "abc"})
    assert resp.status_code == 204
    again = world.call("data", "POST", "/ssf/verify", {"stream_id": sid, "state": "abc"})
    assert (again.status_code, again.get_json()) == (
        429,
        {
            "error": "too_many_requests",
            "error_description": "Verification was requested too recently.",
            "code": "too_many_requests",
        },
    )
    (event,) = poll_all(world, "data", stream)
    assert event["events"] == {VERIFICATION: {"state": "abc"}}
    assert event["sub_id"] == {"format": "opaque", "id": sid}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"maxEvents": -1}, "maxEvents", "must be a non-negative integer"),
        ({"maxEvents": "ten"}, "maxEvents", "must be a non-negative integer"),
        ({"ack": "x"}, "ack", "must be a list of SET jti values"),
        ({"setErrs": {"x": "bad"}}, "setErrs", "must map SET jti values to error objects"),
        ({"returnImmediately": "yes"}, "returnImmediately", "must be true or false"),
        ({"wait": 5}, "wait", "is not a poll member"),
    ],
)
def test_poll_when_malformed_then_400(world: SsfWorld, body: Any, field: str, message: str) -> None:
    stream = world.create("data", {"delivery": {"method": POLL}})
    resp = world.call("data", "POST", f"/ssf/poll/{stream['stream_id']}", body)
    assert (resp.status_code, resp.get_json()) == (400, invalid(field, message))


def test_rule_expiry_when_swept_then_voided_tokens_become_events_once(world: SsfWorld) -> None:
    stream = world.create("ops", {"delivery": {"method": POLL}})
    expires = datetime.fromtimestamp(world.clock.now() + 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with admin_store(world.runtime.engine) as store:
        rules.create_rule(
            store,
            actor="agent",
            targets=["ops"],
            scope="orders:read",
            expires=expires,
            now=world.clock.now(),
            admin="t",
        )
    chain = world.chain()
    resp = exchange(world.client, world.nhis["agent"], world.tokens[chain[1]], audience="ops")
    to_ops = claims_of(resp.get_json()["access_token"])
    with world.runtime.engine.begin() as conn:
        assert void_expired_rules(conn, world.clock.now()) == []
    world.clock.advance(61)
    with world.runtime.engine.begin() as conn:
        (result,) = void_expired_rules(conn, world.clock.now())
        assert result.jtis == [to_ops["jti"]]
        assert void_expired_rules(conn, world.clock.now()) == []
    seen = poll_all(world, "ops", stream)
    assert [revoked_jtis(c) for c in seen] == [[to_ops["jti"]]]
    assert seen[0]["events"][SESSION_REVOKED] == {
        "event_timestamp": world.clock.now(),
        "initiating_entity": "policy",
        "reason_admin": {"en": "rule expired"},
    }
