"""The exchange client: discovery, token exchange, caching, typed OAuth errors."""

from __future__ import annotations

import pytest
from chain_sts_client import (
    ClientSecret,
    ExchangeClient,
    InvalidClient,
    InvalidScope,
    InvalidTarget,
    PrivateKeyJwt,
    StsUnavailable,
)
from chain_sts_client.discovery import metadata_url

from tests.helpers import KeyPair, claims_of
from tests.sdk_fixtures import (  # noqa: F401 - fixtures
    RecordingTransport,
    chain_fixture,
    live_sts_fixture,
    person_token,
    settings_fixture,
    sts_http_fixture,
)

INVALID_TARGET = {
    "error": "invalid_target",
    "error_description": "The requested target is unknown or not allowed.",
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_exchange_when_rule_allows_then_token_for_the_audience_is_returned(chain, clock):
    transport = RecordingTransport()
    web = chain.client("web", transport=transport)
    issued = web.exchange(person_token(chain, clock), audience="agent", scope="orders:read")
    claims = claims_of(issued.access_token)
    assert (claims["sub"], claims["aud"], claims["client_id"]) == ("alice", "agent", "web")
    assert claims["act"] == {"sub": "web"}
    assert issued.scope == "orders:read"
    assert issued.issued_token_type == "urn:ietf:params:oauth:token-type:access_token"
    assert issued.expires_at - issued.issued_at == 300
    assert issued.access_token not in repr(issued)
    # Discovered once, then the token endpoint.
    assert [c.path for c in transport.calls] == ["/.well-known/oauth-authorization-server",
                                                 "/token"]


def test_exchange_when_same_inputs_twice_then_the_sts_is_asked_once(chain, clock):
    transport = RecordingTransport()
    web = chain.client("web", transport=transport)
    subject = person_token(chain, clock)
    first = web.exchange(subject, audience="agent", scope="orders:read")
    again = web.exchange(subject, audience="agent", scope="orders:read")
    reordered = web.exchange(subject, audience="agent", scope=" orders:read ")
    assert again is first and reordered is first
    assert len(transport.exchanges()) == 1


def test_exchange_when_audience_scope_or_subject_differs_then_each_is_exchanged(chain, clock):
    transport = RecordingTransport()
    agent = chain.client("agent", transport=transport)
    subject = chain.client("web").exchange(person_token(chain, clock), audience="agent")
    incoming = subject.access_token
    to_tool = agent.exchange(incoming, audience="tool", scope="orders:read")
    to_data = agent.exchange(incoming, audience="data", scope="orders:read")
    wider = agent.exchange(incoming, audience="tool", scope="orders:read orders:write")
    assert [claims_of(t.access_token)["aud"] for t in (to_tool, to_data, wider)] == [
        "tool", "data", "tool"]
    assert [c.form["audience"] for c in transport.exchanges()] == ["tool", "data", "tool"]
    other = chain.client("web").exchange(person_token(chain, clock), audience="agent")
    agent.exchange(other.access_token, audience="tool", scope="orders:read")
    assert len(transport.exchanges()) == 4


def test_exchange_when_cached_token_nears_expiry_then_a_new_one_is_fetched(chain, clock):
    transport, fake = RecordingTransport(), FakeClock()
    web = chain.client("web", transport=transport, clock=fake, refresh_margin=30)
    subject = person_token(chain, clock)
    first = web.exchange(subject, audience="agent")
    fake.now += 300 - 31  # still more than the margin left: cached
    assert web.exchange(subject, audience="agent") is first
    fake.now += 1  # within 30 s of expiry: refreshed
    second = web.exchange(subject, audience="agent")
    assert second is not first
    assert len(transport.exchanges()) == 2


def test_exchange_when_use_cache_false_then_the_sts_is_asked_again(chain, clock):
    transport = RecordingTransport()
    web = chain.client("web", transport=transport)
    subject = person_token(chain, clock)
    web.exchange(subject, audience="agent")
    web.exchange(subject, audience="agent", use_cache=False)
    assert len(transport.exchanges()) == 2


def test_exchange_when_target_not_allowed_then_invalid_target_is_raised_and_not_cached(
    chain, clock
):
    transport = RecordingTransport()
    web = chain.client("web", transport=transport)
    subject = person_token(chain, clock)
    for _ in range(2):
        with pytest.raises(InvalidTarget) as caught:
            web.exchange(subject, audience="data")
        assert (caught.value.status, caught.value.body) == (400, INVALID_TARGET)
        assert str(caught.value) == (
            "invalid_target: The requested target is unknown or not allowed."
        )
    assert len(transport.exchanges()) == 2


def test_exchange_when_scope_beyond_the_rule_then_invalid_scope_is_raised(chain, clock):
    web = chain.client("web")
    with pytest.raises(InvalidScope) as caught:
        web.exchange(person_token(chain, clock), audience="agent", scope="orders:delete")
    assert (caught.value.status, caught.value.body) == (400, {
        "error": "invalid_scope",
        "error_description": "The requested scope exceeds what is allowed.",
    })


def test_exchange_when_secret_is_wrong_then_invalid_client_is_raised(chain, clock):
    web = ExchangeClient(chain.issuer, ClientSecret("web", "sts_wrong"))
    with pytest.raises(InvalidClient) as caught:
        web.exchange(person_token(chain, clock), audience="agent")
    assert (caught.value.status, caught.value.body) == (401, {
        "error": "invalid_client",
        "error_description": "Client authentication failed.",
    })
    assert "sts_wrong" not in str(caught.value)


def test_exchange_when_client_uses_private_key_jwt_then_token_is_issued(
    chain, clock, make_nhi, runtime
):
    keys = KeyPair("svc-1")
    make_nhi("reporter", "service", jwks=keys.jwks, scope="reports:read")
    reporter = ExchangeClient(
        chain.issuer, PrivateKeyJwt("reporter", keys.private, kid="svc-1", clock=clock.now)
    )
    first = reporter.client_credentials(scope="reports:read")
    assert claims_of(first.access_token)["client_id"] == "reporter"
    assert reporter.client_credentials(scope="reports:read") is first
    # Every assertion is new (the STS refuses a replayed jti).
    second = reporter.client_credentials(scope="reports:read", use_cache=False)
    assert claims_of(second.access_token)["jti"] != claims_of(first.access_token)["jti"]


def test_discovery_when_metadata_names_another_issuer_then_sts_unavailable(chain, clock):
    web = ExchangeClient(chain.issuer + "/", ClientSecret("web", chain.secrets["web"]))
    with pytest.raises(StsUnavailable) as caught:
        web.exchange(person_token(chain, clock), audience="agent")
    assert str(caught.value) == "metadata issuer differs from the configured issuer"


def test_exchange_when_sts_unreachable_then_sts_unavailable_names_no_secret():
    web = ExchangeClient("http://127.0.0.1:9", ClientSecret("web", "sts_secret"))
    with pytest.raises(StsUnavailable) as caught:
        web.exchange("a.b.c", audience="agent")
    message = str(caught.value)
    assert message.startswith(
        "GET http://127.0.0.1:9/.well-known/oauth-authorization-server failed: "
    )
    assert "sts_secret" not in message


def test_metadata_url_when_issuer_has_a_path_then_well_known_goes_before_it():
    assert metadata_url("https://sts.example.com") == (
        "https://sts.example.com/.well-known/oauth-authorization-server"
    )
    assert metadata_url("https://example.com/tenant/") == (
        "https://example.com/.well-known/oauth-authorization-server/tenant"
    )
    with pytest.raises(ValueError, match="not an absolute http"):
        metadata_url("file:///etc/passwd")


def test_client_secret_when_it_has_reserved_characters_then_basic_is_form_encoded():
    assert ClientSecret("a:b", "s p+").basic_authorization() == "Basic YSUzQWI6cyUyMHAlMkI="
    assert "s p+" not in repr(ClientSecret("a:b", "s p+"))
