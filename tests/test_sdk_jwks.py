"""The one JWKS cache (``chain_sts_client.jwks``) that services and the STS share: documents
by URI kept for a while, a refresh on an unknown kid at most once per interval, no fetch for
an interval after a failure, and a refusal for anything that is not a JWK Set."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from chain_sts_client import JwksCache, VerificationUnavailable
from chain_sts_client.errors import InvalidToken, StsUnavailable
from chain_sts_client.jwks import MAX_JWKS_BYTES, JwksDocuments, JwksUnavailable
from chain_sts_client.transport import HttpResponse

from tests.helpers import KeyPair

URI = "https://keys.example.test/jwks.json"


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Publisher:
    """A transport serving one JWKS, counting requests; ``answer`` overrides the next ones."""

    def __init__(self, jwks: Mapping[str, object]) -> None:
        self.jwks = jwks
        self.answer: HttpResponse | None = None
        self.down = False
        self.requests = 0

    def __call__(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None
    ) -> HttpResponse:
        self.requests += 1
        if self.down:
            raise StsUnavailable(f"{method} {url} failed: connection refused")
        return self.answer or HttpResponse(200, {}, json.dumps(self.jwks).encode())


@pytest.fixture
def keys() -> KeyPair:
    return KeyPair("k-1")


@pytest.fixture
def publisher(keys: KeyPair) -> Publisher:
    return Publisher(keys.jwks)


def documents(publisher: Publisher, clock: Monotonic) -> JwksDocuments:
    return JwksDocuments(publisher, ttl=300, min_refresh=10, clock=clock)


def test_documents_when_fresh_then_served_without_fetching_and_refresh_is_rate_limited(publisher):
    clock = Monotonic()
    cache = documents(publisher, clock)
    assert cache.get(URI) == publisher.jwks
    assert cache.get(URI, refresh=True) == publisher.jwks  # too soon after the fetch
    assert publisher.requests == 1
    clock.now += 10
    cache.get(URI, refresh=True)
    assert (publisher.requests, cache.fetches) == (2, 2)
    clock.now += 300
    cache.get(URI)  # expired
    assert publisher.requests == 3


def test_documents_when_a_fetch_fails_then_the_last_good_set_serves_and_no_fetch_for_an_interval(
    publisher,
):
    clock = Monotonic()
    cache = documents(publisher, clock)
    good = cache.get(URI)
    clock.now += 300
    publisher.down = True
    for _ in range(3):
        assert cache.get(URI) == good
    assert publisher.requests == 2
    clock.now += 10
    publisher.down = False
    cache.get(URI)
    assert (publisher.requests, cache.fetches) == (3, 2)


def test_documents_when_never_fetched_and_down_then_the_failure_repeats_without_fetching(
    publisher,
):
    clock = Monotonic()
    cache = documents(publisher, clock)
    publisher.down = True
    with pytest.raises(JwksUnavailable, match="connection refused"):
        cache.get(URI)
    with pytest.raises(JwksUnavailable, match="fetch failed recently"):
        cache.get(URI)
    assert publisher.requests == 1


@pytest.mark.parametrize(
    ("uri", "answer", "reason"),
    [
        ("file:///etc/jwks.json", None, "jwks_uri must be http(s)"),
        (URI, HttpResponse(500, {}, b"{}"), "fetch failed: HTTP 500"),
        (URI, HttpResponse(302, {"Location": "https://elsewhere.test/"}), "fetch failed: HTTP 302"),
        (URI, HttpResponse(200, {}, b"not json"), "JWKS is not JSON"),
        (URI, HttpResponse(200, {}, b"[" * 100_000), "JWKS is not JSON"),
        (URI, HttpResponse(200, {}, b'{"keys": {}}'), "JWKS has no keys array"),
        (URI, HttpResponse(200, {}, b'{"keys": []}' + b" " * MAX_JWKS_BYTES), "JWKS too large"),
    ],
)
def test_documents_when_the_answer_is_not_a_jwk_set_then_unavailable(
    publisher, uri, answer, reason
):
    publisher.answer = answer
    with pytest.raises(JwksUnavailable) as caught:
        documents(publisher, Monotonic()).get(uri)
    assert str(caught.value) == reason
    assert isinstance(caught.value, StsUnavailable)


def test_key_source_when_the_keys_cannot_be_had_then_verification_unavailable(publisher):
    clock = Monotonic()
    source = JwksCache(URI, publisher, clock=clock)
    publisher.down = True
    for _ in range(2):
        with pytest.raises(VerificationUnavailable) as caught:
            source.key("k-1", "ES256")
        assert caught.value.reason == "signing keys unavailable"
    assert publisher.requests == 1
    clock.now += 10
    publisher.down = False
    assert source.key("k-1", "ES256").key_id == "k-1"
    assert source.fetches == 1


def test_key_source_when_the_publisher_goes_down_then_known_keys_still_verify(publisher):
    clock = Monotonic()
    source = JwksCache(URI, publisher, max_age=60, clock=clock)
    source.key("k-1", "ES256")
    publisher.down = True
    clock.now += 60
    assert source.key("k-1", "ES256").key_id == "k-1"
    with pytest.raises(InvalidToken, match="unknown key id"):
        source.key("k-2", "ES256")  # no second fetch while the last one failed recently
    assert publisher.requests == 2


def test_key_source_when_a_key_names_another_algorithm_then_invalid_token(publisher):
    source = JwksCache(URI, publisher, clock=Monotonic())
    with pytest.raises(InvalidToken, match="key does not match the token's algorithm"):
        source.key("k-1", "RS256")
