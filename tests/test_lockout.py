"""Brute-force throttling cannot be turned against a client (DESIGN §5.1).

Client ids are public (they travel in every token's ``client_id`` and ``act``), so failures
are counted per client *and source*, only for a method the client really has, and a correct
credential from a source that has not failed is never throttled. Unknown, wrong and throttled
still answer the same bytes.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_network
from typing import Any

import pytest

from sts.core.settings import Settings
from sts.web.source import request_source
from tests.helpers import FORM, KeyPair, basic
from tests.test_client_auth import TOKEN_ENDPOINT, jwt_form

LIMIT = 3
FAILED = {"error": "invalid_client", "error_description": "Client authentication failed."}
STRANGER, VICTIM, PROXY = "203.0.113.9", "198.51.100.1", "10.0.0.1"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, auth_failure_limit=LIMIT, trusted_proxies=f"{PROXY}/32")


def token(client: Any, headers: dict[str, str], peer: str, **form: str) -> Any:
    data = {"grant_type": "client_credentials", **form}
    return client.post(
        "/token", data=data, headers=headers, content_type=FORM, environ_base={"REMOTE_ADDR": peer}
    )


def fail(client: Any, client_id: str, peer: str, forwarded: str | None = None) -> None:
    headers = basic(client_id, "sts_wrong-wrong-wrong-wrong-wrong")
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    resp = token(client, headers, peer)
    assert (resp.status_code, resp.json) == (401, FAILED)


def test_lockout_when_a_stranger_fails_from_its_address_then_the_client_still_gets_tokens(
    client, make_nhi
):
    web = make_nhi("web")
    for _ in range(LIMIT + 2):
        fail(client, "web", STRANGER)
    ok = token(client, basic("web", web.secret), VICTIM)
    assert ok.status_code == 200, ok.json
    # From the address that failed, even the right secret is throttled, with the same bytes.
    throttled = token(client, basic("web", web.secret), STRANGER)
    assert (throttled.status_code, throttled.json) == (401, FAILED)


def test_lockout_when_secrets_are_guessed_for_a_key_only_client_then_nothing_is_counted(
    client, make_nhi, clock
):
    keys = KeyPair("k1")
    make_nhi("agent", kind="agent", jwks=keys.jwks)
    for _ in range(LIMIT + 2):
        fail(client, "agent", STRANGER)
    assertion = keys.assertion("agent", TOKEN_ENDPOINT, clock.now())
    resp = client.post(
        "/token",
        data=jwt_form(assertion),
        content_type=FORM,
        environ_base={"REMOTE_ADDR": STRANGER},
    )
    assert resp.status_code == 200, resp.json


def test_lockout_when_behind_a_trusted_proxy_then_failures_count_for_the_forwarded_address(
    client, make_nhi
):
    web = make_nhi("web")
    for _ in range(LIMIT):
        fail(client, "web", PROXY, forwarded=STRANGER)
    victim = token(client, {**basic("web", web.secret), "X-Forwarded-For": VICTIM}, PROXY)
    assert victim.status_code == 200, victim.json
    stranger = token(client, {**basic("web", web.secret), "X-Forwarded-For": STRANGER}, PROXY)
    assert (stranger.status_code, stranger.json) == (401, FAILED)


def test_lockout_when_an_untrusted_peer_forges_x_forwarded_for_then_its_own_address_counts(
    client, make_nhi
):
    web = make_nhi("web")
    for _ in range(LIMIT):
        fail(client, "web", STRANGER, forwarded=VICTIM)
    victim = token(client, basic("web", web.secret), VICTIM)
    assert victim.status_code == 200, victim.json


def test_lockout_when_a_resource_server_is_targeted_then_it_still_polls_the_feed(
    client, make_nhi
):
    data = make_nhi("data")
    for _ in range(LIMIT + 1):
        fail(client, "data", STRANGER)
    resp = client.get(
        "/revocations",
        headers=basic("data", data.secret),
        environ_base={"REMOTE_ADDR": VICTIM},
    )
    assert resp.status_code == 200, resp.json


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        (STRANGER, None, STRANGER),
        (STRANGER, VICTIM, STRANGER),  # not a trusted proxy: its header is not believed
        (PROXY, VICTIM, VICTIM),
        (PROXY, f"{STRANGER}, {VICTIM}", VICTIM),  # the hop the proxy saw, not the client's say
        (PROXY, f"{VICTIM}, 10.0.0.1", VICTIM),  # trusted hops are skipped from the right
        (PROXY, "not-an-address", PROXY),
        (PROXY, f"{VICTIM}, junk", PROXY),
        (PROXY, None, PROXY),
        ("", VICTIM, ""),
        ("::1", None, "::1"),
    ],
)
def test_request_source_when_forwarded_then_only_trusted_proxies_are_believed(
    peer: str, forwarded: str | None, expected: str
) -> None:
    environ = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        environ["HTTP_X_FORWARDED_FOR"] = forwarded
    assert request_source(environ, [ip_network("10.0.0.0/8")]) == expected


def test_settings_when_trusted_proxies_malformed_then_refused() -> None:
    from sts.core.settings import SettingsError

    with pytest.raises(SettingsError, match="STS_TRUSTED_PROXIES"):
        Settings(trusted_proxies="10.0.0.0/8, proxy.example").validate()


def test_lockout_when_a_disabled_client_retries_with_its_secret_then_enabling_lets_it_in(
    client, make_nhi, runtime, clock
):
    from sts.services import nhis
    from sts.store.admin import admin_store

    web = make_nhi("web")
    with admin_store(runtime.engine) as store:
        nhis.set_nhi_status(store, "web", status="disabled", reason="t", now=clock.now(), admin="t")
    for _ in range(LIMIT + 1):
        refused = token(client, basic("web", web.secret), VICTIM)
        assert (refused.status_code, refused.json) == (401, FAILED)
    with admin_store(runtime.engine) as store:
        nhis.set_nhi_status(store, "web", status="active", reason="t", now=clock.now(), admin="t")
    ok = token(client, basic("web", web.secret), VICTIM)
    assert ok.status_code == 200, ok.json
