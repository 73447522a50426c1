"""The SDK's verifier following an SSF stream instead of the cursor feed: by POLL, and by PUSH
to a Flask service; a stream not heard from in time makes verification unavailable (503)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from chain_sts_client import ClientSecret, ExchangeClient, SsfReceiver, TokenVerifier
from chain_sts_client.errors import InvalidToken, VerificationUnavailable
from chain_sts_client.flask import ChainSts, require_token
from flask import Flask

from sts.core.settings import Settings
from sts.services import ssf as ssf_service
from tests.sdk_fixtures import LoopbackServer, live_sts_fixture, sts_http_fixture
from tests.ssf_fixtures import SsfWorld, build_ssf_world
from tests.test_ssf import revoke

__all__ = ["live_sts_fixture", "sts_http_fixture"]


@pytest.fixture(name="settings")
def settings_fixture(engine: Any, keys_dir: Any, sts_http: LoopbackServer) -> Settings:
    return Settings(
        issuer=sts_http.url,
        database_url=engine.url.render_as_string(hide_password=False),
        keys_dir=keys_dir,
        leeway=30,
        ssf_allow_http_loopback=True,
    )


@pytest.fixture
def world(live_sts: str, client: Any, runtime: Any, make_nhi: Any, clock: Any) -> SsfWorld:
    return build_ssf_world(client, runtime, make_nhi, clock)


@pytest.fixture
def rs_http() -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    yield server
    server.close()


def data_client(world: SsfWorld, live_sts: str) -> ExchangeClient:
    secret = world.nhis["data"].secret or ""
    return ExchangeClient(live_sts, ClientSecret("data", secret))


def push_worker(world: SsfWorld) -> ssf_service.PushWorker:
    rt = world.runtime
    return ssf_service.PushWorker(rt.engine, rt.settings, rt.keys, world.clock)


class Ahead:
    """A monotonic clock the test moves forward."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_verifier_when_following_a_poll_stream_then_revoked_token_refused(
    world: SsfWorld, live_sts: str, sts_http: LoopbackServer
) -> None:
    verifier = TokenVerifier.for_sts(data_client(world, live_sts), ssf="poll", max_staleness=30)
    receiver = verifier.feed
    assert isinstance(receiver, SsfReceiver)
    receiver.clock = clock = Ahead()
    receiver._last_success = clock.now
    jtis = world.chain()
    token = world.tokens[jtis[2]]
    assert verifier.verify(token).jti == jtis[2]
    revoke(world, "token", jtis[0])
    assert receiver.poll() == 1
    with pytest.raises(InvalidToken, match="token revoked"):
        verifier.verify(token)
    # the STS stops answering: once the stream is stale, nothing is vouched for
    app, sts_http.app = sts_http.app, Flask("down")
    clock.now += 31
    other = world.chain()
    with pytest.raises(VerificationUnavailable):
        verifier.verify(world.tokens[other[2]])
    sts_http.app = app
    assert verifier.verify(world.tokens[other[2]]).jti == other[2]


def test_flask_when_stream_pushes_then_revoked_token_401_and_silence_503(
    world: SsfWorld, live_sts: str, rs_http: LoopbackServer
) -> None:
    app = Flask("data")
    ext = ChainSts(
        app,
        client=data_client(world, live_sts),
        ssf="push",
        ssf_push_url=rs_http.url + "/ssf/events",
        max_staleness=30,
    )

    @app.get("/orders")
    @require_token
    def orders() -> dict[str, Any]:
        return {"ok": True}

    rs_http.app = app
    web = app.test_client()
    jtis = world.chain()

    def call(jti: str) -> Any:
        return web.get("/orders", headers={"Authorization": f"Bearer {world.tokens[jti]}"})

    assert call(jtis[2]).status_code == 200  # builds the verifier: registers the stream
    receiver = ext.sts_verifier.feed
    assert isinstance(receiver, SsfReceiver)
    receiver.stop()  # the test asks for heartbeats itself, deterministically
    world.clock.advance(1)
    push_worker(world).run_once()  # the heartbeat the background thread asked for at start
    receiver.clock = clock = Ahead()
    receiver._last_success = clock.now
    revoke(world, "token", jtis[0])
    assert push_worker(world).run_once().delivered == 1
    refused = call(jtis[2])
    assert refused.status_code == 401 and refused.json["error"] == "invalid_token"
    # no verification event answered in time: 503
    clock.now += 31
    other = world.chain()
    assert call(other[2]).status_code == 503
    world.clock.advance(1)
    receiver.poll()  # asks the STS for a verification event (the heartbeat)
    assert push_worker(world).run_once().delivered == 1
    assert call(other[2]).status_code == 200
    # a SET that is not from the STS is refused
    forged = web.post(
        "/ssf/events",
        data=b"not.a.set",
        headers={
            "Content-Type": "application/secevent+jwt",
            "Authorization": f"Bearer {receiver.push_secret}",
        },
    )
    assert (forged.status_code, forged.json) == (
        400,
        {"err": "invalid_request", "description": "the SET was not accepted"},
    )
    stranger = web.post(
        "/ssf/events", data=b"x", headers={"Content-Type": "application/secevent+jwt"}
    )
    assert stranger.status_code == 401
    ext.close()


def test_receiver_when_service_restarts_then_takes_up_its_stream_and_what_waited(
    world: SsfWorld, live_sts: str
) -> None:
    first = SsfReceiver.for_client(data_client(world, live_sts))
    jtis = world.chain()
    revoke(world, "token", jtis[0])  # while the service is down
    again = SsfReceiver.for_client(data_client(world, live_sts))
    assert again.stream_id == first.stream_id
    assert again.is_revoked(jtis[2])
    listed = world.call("data", "GET", "/ssf/stream").get_json()
    assert [s["stream_id"] for s in listed] == [first.stream_id]
