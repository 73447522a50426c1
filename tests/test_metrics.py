"""``/metrics`` (DESIGN §13): counts that match what happened, read back with
``prometheus_client``'s own parser, and who may read them."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sts.core.settings import Settings, SettingsError
from sts.runtime import build_runtime
from sts.services import revocation
from sts.store.admin import admin_store
from sts.web import create_app
from tests.admin_api_helpers import bootstrap, token_for
from tests.exchange_fixtures import client_credentials, exchange
from tests.helpers import FORM, basic, claims_of

METRICS_TOKEN = "m" * 40
UNAUTHORIZED = {
    "error": "invalid_token",
    "error_description": "A bearer token with an admin scope, or the metrics token, is required.",
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(scrape: dict[Any, float], name: str, **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


def app_with(settings: Settings, clock: Any, engine: Any, **changes: Any) -> Any:
    changed = dataclasses.replace(settings, **changes).validate()
    return create_app(changed, rt=build_runtime(changed, clock, engine=engine)).test_client()


def scrape(client: Any, token: str = METRICS_TOKEN) -> dict[Any, float]:
    resp = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.content_type.startswith("text/plain; version=0.0.4")
    return samples(resp.get_data(as_text=True))


def test_metrics_when_a_mix_of_exchanges_denials_and_revocations_then_counts_match(
    settings: Settings, clock: Any, engine: Any, make_nhi: Any, runtime: Any
) -> None:
    client = app_with(settings, clock, engine, metrics_token=METRICS_TOKEN)
    web = make_nhi("web")
    before = scrape(client)

    issued = [client_credentials(client, web) for _ in range(3)]
    assert [r.status_code for r in issued] == [200, 200, 200]
    for _ in range(2):
        wrong = client.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers=basic("web", "sts_" + "x" * 40),
            content_type=FORM,
        )
        assert wrong.status_code == 401
    denied = exchange(client, web, issued[0].get_json()["access_token"], audience="nowhere")
    assert denied.get_json()["error"] == "invalid_target"
    unknown = client.post("/token", data={"grant_type": "password"}, content_type=FORM)
    assert unknown.status_code in (400, 401)
    unknown_error = unknown.get_json()["error"]
    jti = claims_of(issued[1].get_json()["access_token"])["jti"]
    with admin_store(engine) as store:
        revocation.revoke(store, "token", jti, now=clock.now(), admin="test")

    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "sts_requests_total"
    assert delta(requests, endpoint="token", grant="client_credentials", outcome="success",
                 error="") == 3
    assert delta(requests, endpoint="token", grant="client_credentials", outcome="refused",
                 error="invalid_client") == 2
    assert delta(requests, endpoint="token", grant="token_exchange", outcome="refused",
                 error="invalid_target") == 1
    assert delta(requests, endpoint="token", grant="other", outcome="refused",
                 error=unknown_error) == 1
    assert delta("sts_request_duration_seconds_count", endpoint="token",
                 grant="client_credentials") == 5
    assert delta("sts_revocations_total", kind="token") == 1
    assert delta("sts_revoked_tokens_total", kind="token") == 1
    assert delta("sts_revocation_cascade_tokens_count") == 1
    assert delta("sts_db_round_trips_total", via="sqlalchemy") + delta(
        "sts_db_round_trips_total", via="prepared"
    ) > 0
    age = value(after, "sts_signing_key_age_seconds")
    assert ("sts_signing_key_age_seconds", ()) in after and 0 <= age < 120


def test_metrics_when_protected_then_only_an_admin_bearer_or_the_metrics_token_reads(
    settings: Settings, clock: Any, engine: Any, runtime: Any
) -> None:
    client = app_with(settings, clock, engine, metrics_token=METRICS_TOKEN)
    refused = client.get("/metrics")
    assert (refused.status_code, refused.get_json()) == (401, UNAUTHORIZED)
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    wrong = client.get("/metrics", headers={"Authorization": "Bearer " + "n" * 40})
    assert (wrong.status_code, wrong.get_json()) == (401, UNAUTHORIZED)
    scrape(client)  # the static token
    admin = bootstrap(runtime, clock)
    scrape(client, token_for(client, admin))  # an administrator's bearer token


def test_metrics_when_off_then_404_and_when_open_then_anyone(
    settings: Settings, clock: Any, engine: Any
) -> None:
    off = app_with(settings, clock, engine, metrics="off").get("/metrics")
    assert (off.status_code, off.get_json()) == (
        404,
        {"error": "not_found", "error_description": "Not Found"},
    )
    opened = app_with(settings, clock, engine, metrics="open").get("/metrics")
    assert opened.status_code == 200 and b"sts_requests" in opened.data


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"metrics": "public"}, "STS_METRICS must be 'protected', 'open' or 'off'"),
        ({"metrics_token": "short"}, "STS_METRICS_TOKEN must be at least 32 characters"),
        ({"metrics_listen": "9100"}, "STS_METRICS_LISTEN must be host:port"),
    ],
)
def test_metrics_settings_when_malformed_then_refused(
    changes: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings(**changes).validate()  # type: ignore[arg-type]


WORKER = """
from sts.core import metrics
metrics.record_request("token", "client_credentials", 200, "", 0.01)
metrics.record_revocation("nhi", 4)
"""
SCRAPE = """
import sys
from sts.core import metrics
sys.stdout.write(metrics.exposition().decode())
"""


def test_metrics_when_multiprocess_then_every_worker_is_counted_and_dead_ones_kept(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):  # two workers, each gone after its requests
        subprocess.run([sys.executable, "-c", WORKER], env=env, check=True)
    out = subprocess.run(
        [sys.executable, "-c", SCRAPE], env=env, check=True, capture_output=True, text=True
    ).stdout
    scrape = samples(out)
    assert value(scrape, "sts_requests_total", endpoint="token", grant="client_credentials",
                 outcome="success", error="") == 2
    assert value(scrape, "sts_revoked_tokens_total", kind="nhi") == 8
    assert value(scrape, "sts_revocation_cascade_tokens_count") == 2


def test_metrics_when_a_listener_is_configured_then_it_serves_without_a_token(
    settings: Settings, clock: Any, engine: Any
) -> None:
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = app_with(settings, clock, engine, metrics="off", metrics_listen=f"127.0.0.1:{port}")
    client_credentials(client, type("Nobody", (), {"client_id": "x", "secret": "y"})())
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        body = resp.read().decode()
    assert value(samples(body), "sts_requests_total", endpoint="token",
                 grant="client_credentials", outcome="refused", error="invalid_client") >= 1
    assert "sts_signing_key_age_seconds" in body


def test_metrics_when_a_stream_has_not_taken_its_revocations_then_backlog_and_lag_show(
    settings: Settings, clock: Any, engine: Any, make_nhi: Any, runtime: Any, client: Any
) -> None:
    """SSF delivery (DESIGN §11, §13): each stream's backlog and the age of its oldest
    revocation not yet taken, read from the registry when scraped."""
    from tests.ssf_fixtures import build_ssf_world

    world = build_ssf_world(client, runtime, make_nhi, clock)
    stream = world.create("data", {"delivery": {"method": "urn:ietf:rfc:8936"}})
    labels = {"stream": stream["stream_id"], "receiver": "data"}
    metrics_client = app_with(settings, clock, engine, metrics_token=METRICS_TOKEN)
    quiet = scrape(metrics_client)
    assert value(quiet, "sts_ssf_backlog_events", **labels) == 0
    assert value(quiet, "sts_ssf_lag_seconds", **labels) == 0

    root = world.chain()[0]
    with admin_store(engine) as store:
        revocation.revoke(store, "token", root, now=clock.now(), admin="test")
    clock.advance(7)
    waiting = scrape(metrics_client)
    assert value(waiting, "sts_ssf_backlog_events", **labels) >= 1
    assert value(waiting, "sts_ssf_lag_seconds", **labels) == 7
