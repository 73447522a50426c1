"""The resource-server verifier: keys (JWKS cache and refresh), audience, scope, the revocation
feed, and the caller chain it exposes."""

from __future__ import annotations

import time

import jwt
import pytest
from chain_sts_client import (
    ExchangeClient,
    HttpResponse,
    InsufficientScope,
    InvalidClient,
    InvalidToken,
    JwksCache,
    PrivateKeyJwt,
    RevocationFeed,
    StaticJwks,
    StsUnavailable,
    TokenVerifier,
    VerificationUnavailable,
)

from sts.core.keys import generate_key
from sts.store import revocation
from tests.helpers import KeyPair, claims_of
from tests.sdk_fixtures import (  # noqa: F401 - fixtures
    RecordingTransport,
    chain_fixture,
    live_sts_fixture,
    person_token,
    settings_fixture,
    sts_http_fixture,
    token_for,
)

INVALID_TOKEN = {"error": "invalid_token", "error_description": "The access token is invalid."}


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def verifier_for(chain, audience, transport=None, *, feed=True, clock=None, **feed_args):
    client = chain.client(audience, transport=transport or RecordingTransport())
    metadata = client.metadata
    keys = JwksCache(metadata.jwks_uri, client.transport, clock=clock or Monotonic())
    follow = RevocationFeed.for_client(client, **feed_args) if feed else None
    return TokenVerifier(metadata.issuer, audience, keys, feed=follow)


def rejected(exc: pytest.ExceptionInfo) -> tuple[type, int, dict, str]:
    value = exc.value
    return type(value), value.status, value.body(), value.reason


def test_verify_when_token_is_for_this_service_then_the_caller_chain_is_exposed(chain, clock):
    token = token_for(chain, clock, "tool", scope="orders:read")
    caller = verifier_for(chain, "tool").verify(token, scope="orders:read")
    claims = claims_of(token)
    assert caller.sub == "alice"
    assert caller.actors == ("web", "agent")
    assert caller.immediate_caller == "agent"
    assert caller.txn == claims["txn"] and caller.jti == claims["jti"]
    assert caller.scopes == frozenset({"orders:read"})
    assert caller.summary() == {
        "sub": "alice",
        "aud": "tool",
        "scope": "orders:read",
        "act": {"sub": "agent", "act": {"sub": "web"}},
        "actors": ["web", "agent"],
        "exp": claims["exp"],
        "txn": claims["txn"],
        "client_id": "agent",
        "subject_issuer": chain.idp.issuer,
    }


def test_verify_when_token_is_for_another_service_then_invalid_token(chain, clock):
    token = token_for(chain, clock, "tool", scope="orders:read")
    with pytest.raises(InvalidToken) as caught:
        verifier_for(chain, "data").verify(token)
    assert rejected(caught) == (
        InvalidToken, 401, INVALID_TOKEN, "token not addressed to this service")
    assert caught.value.www_authenticate() == (
        'Bearer error="invalid_token", error_description="The access token is invalid."'
    )


def test_verify_when_a_required_scope_is_missing_then_insufficient_scope(chain, clock):
    token = token_for(chain, clock, "tool", scope="orders:read")
    with pytest.raises(InsufficientScope) as caught:
        verifier_for(chain, "tool").verify(token, scope="orders:read orders:write")
    assert rejected(caught) == (
        InsufficientScope,
        403,
        {"error": "insufficient_scope",
         "error_description": "The access token lacks a required scope."},
        "missing scope orders:write",
    )
    assert caught.value.www_authenticate() == (
        'Bearer error="insufficient_scope", error_description="The access token lacks a '
        'required scope.", scope="orders:write"'
    )


def test_verify_when_the_sts_rotates_its_key_then_the_jwks_is_refetched_on_the_unknown_kid(
    chain, clock, runtime, settings
):
    transport, monotonic = RecordingTransport(), Monotonic()
    verifier = verifier_for(chain, "tool", transport, feed=False, clock=monotonic)
    verifier.verify(token_for(chain, clock, "tool"))
    verifier.verify(token_for(chain, clock, "tool"))
    assert transport.count("/jwks.json") == 1
    # An emergency rotation (signs at once): the verifier meets the new kid before any refresh.
    generate_key(settings.keys_dir, "ES256", now=clock.now() + 1, immediate=True)
    runtime.keys.reload()
    clock.advance(1)
    rotated = token_for(chain, clock, "tool")
    monotonic.now += 10  # the minimum interval between refreshes has passed
    assert verifier.verify(rotated).sub == "alice"
    assert transport.count("/jwks.json") == 2


def test_verify_when_unknown_kids_repeat_quickly_then_the_jwks_is_not_hammered(chain, clock):
    transport, monotonic = RecordingTransport(), Monotonic()
    verifier = verifier_for(chain, "tool", transport, feed=False, clock=monotonic)
    verifier.verify(token_for(chain, clock, "tool"))
    forged = KeyPair("made-up")
    now = int(time.time())
    token = jwt.encode(
        {"iss": chain.issuer, "aud": "tool", "sub": "alice", "iat": now, "exp": now + 60},
        forged.private, algorithm="ES256", headers={"kid": "made-up", "typ": "at+jwt"})
    for _ in range(3):
        with pytest.raises(InvalidToken) as caught:
            verifier.verify(token)
        assert rejected(caught) == (InvalidToken, 401, INVALID_TOKEN, "unknown key id")
    monotonic.now += 10
    with pytest.raises(InvalidToken):
        verifier.verify(token)
    assert transport.count("/jwks.json") == 2


def test_verify_when_token_is_forged_then_invalid_token_names_the_check(chain, clock):
    verifier = verifier_for(chain, "tool", feed=False)
    genuine = token_for(chain, clock, "tool")
    header = jwt.get_unverified_header(genuine)
    claims = claims_of(genuine)
    other = KeyPair()
    cases = [
        ("bad signature", jwt.encode(claims, other.private, algorithm="ES256", headers=header)),
        ("algorithm not allowed", jwt.encode(claims, "k" * 32, algorithm="HS256",
                                             headers={"kid": header["kid"], "typ": "at+jwt"})),
        ("algorithm not allowed", jwt.encode(claims, None, algorithm="none",
                                             headers={"kid": header["kid"], "typ": "at+jwt"})),
        ("not an access token (typ)", jwt.encode(claims, other.private, algorithm="ES256",
                                                 headers={"kid": header["kid"]})),
        ("token without key id", jwt.encode(claims, other.private, algorithm="ES256",
                                            headers={"typ": "at+jwt"})),
        ("malformed token", "not-a-jwt"),
    ]
    for reason, token in cases:
        with pytest.raises(InvalidToken) as caught:
            verifier.verify(token)
        assert rejected(caught) == (InvalidToken, 401, INVALID_TOKEN, reason)


def test_verify_when_token_expired_then_invalid_token(chain, clock):
    clock.advance(-4000)  # the STS mints as if long ago: exp is past even with the leeway
    token = token_for(chain, clock, "tool")
    with pytest.raises(InvalidToken) as caught:
        verifier_for(chain, "tool", feed=False).verify(token)
    assert rejected(caught) == (InvalidToken, 401, INVALID_TOKEN, "token expired")


def test_verify_when_token_is_from_another_issuer_then_invalid_token(chain, clock):
    person = person_token(chain, clock)
    idp_verifier = TokenVerifier(chain.idp.issuer, "web", StaticJwks(chain.idp.keys.jwks),
                                 token_type=None)
    assert idp_verifier.verify(person).sub == "alice"
    with pytest.raises(InvalidToken) as caught:
        TokenVerifier(chain.issuer, "web", StaticJwks(chain.idp.keys.jwks),
                      token_type=None).verify(person)
    assert rejected(caught) == (InvalidToken, 401, INVALID_TOKEN, "token from another issuer")


def test_verify_when_token_revoked_then_the_feed_rejects_it(chain, clock, runtime):
    token = token_for(chain, clock, "tool")
    verifier = verifier_for(chain, "tool")
    assert verifier.verify(token).sub == "alice"
    with runtime.engine.begin() as conn:
        revocation.revoke(conn, "token", claims_of(token)["jti"], now=clock.now(), admin="t")
    assert verifier.feed.poll() == 1
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token)
    assert rejected(caught) == (InvalidToken, 401, INVALID_TOKEN, "token revoked")


def test_feed_when_polling_in_the_background_then_a_revocation_is_seen_within_an_interval(
    chain, clock, runtime
):
    token = token_for(chain, clock, "tool")
    verifier = verifier_for(chain, "tool", poll_interval=0.05)
    verifier.verify(token)
    verifier.start()
    try:
        with runtime.engine.begin() as conn:
            revocation.revoke(conn, "txn", claims_of(token)["txn"], now=clock.now(), admin="t")
        deadline = time.monotonic() + 5
        while verifier.feed.revoked_count == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(InvalidToken) as caught:
            verifier.verify(token)
        assert caught.value.reason == "token revoked"
    finally:
        verifier.stop()


def test_feed_when_client_authenticates_with_a_private_key_then_it_reads_with_a_bearer_token(
    chain, clock, make_nhi, runtime
):
    keys = KeyPair("rs-1")
    make_nhi("reports", "service", jwks=keys.jwks)
    transport = RecordingTransport()
    client = ExchangeClient(chain.issuer, PrivateKeyJwt("reports", keys.private, kid="rs-1"),
                            transport=transport)
    feed = RevocationFeed.for_client(client)
    assert feed.poll() == 0
    feed_call = next(c for c in transport.calls if c.path == "/revocations")
    assert feed_call.headers["Authorization"].startswith("Bearer ")
    assert transport.count("/token", grant_type="client_credentials") == 1


def test_verify_when_the_feed_cannot_be_read_then_verification_is_unavailable(chain, clock):
    token = token_for(chain, clock, "tool")
    working = RecordingTransport()
    verifier = verifier_for(chain, "tool", working, max_staleness=60)
    clock_now = [0.0]
    verifier.feed.clock = lambda: clock_now[0]
    verifier.verify(token)

    def down(method, url, *, headers, body):
        if url.split("?")[0].endswith("/revocations"):
            raise StsUnavailable("GET /revocations failed: connection refused")
        return working(method, url, headers=headers, body=body)

    verifier.feed.transport = down
    clock_now[0] = 59.0  # still fresh enough: served from memory
    assert verifier.verify(token).sub == "alice"
    clock_now[0] = 61.0  # stale, and the feed is down: fail closed
    with pytest.raises(VerificationUnavailable) as caught:
        verifier.verify(token)
    assert rejected(caught) == (
        VerificationUnavailable,
        503,
        {"error": "temporarily_unavailable",
         "error_description": "Token verification is temporarily unavailable."},
        "revocation feed unavailable",
    )


def test_feed_when_the_sts_answers_an_oauth_error_then_the_poll_raises_it(chain):
    def refuse(method, url, *, headers, body):
        return HttpResponse(401, {}, b'{"error": "invalid_client", '
                                     b'"error_description": "Client authentication failed."}')

    feed = RevocationFeed(chain.issuer + "/revocations", lambda: "Basic eDp5", refuse)
    with pytest.raises(InvalidClient) as caught:
        feed.poll()
    assert (caught.value.status, caught.value.body) == (401, {
        "error": "invalid_client", "error_description": "Client authentication failed."})


def test_for_sts_when_built_from_a_client_then_it_verifies_for_that_client_with_the_feed(
    chain, clock, runtime
):
    verifier = TokenVerifier.for_sts(chain.client("tool"))
    token = token_for(chain, clock, "tool")
    assert (verifier.issuer, verifier.audience) == (chain.issuer, "tool")
    assert verifier.verify(token, scope="orders:read").actors == ("web", "agent")
    with runtime.engine.begin() as conn:
        revocation.revoke(conn, "token", claims_of(token)["jti"], now=clock.now(), admin="t")
    verifier.feed.poll()
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token)
    assert caught.value.reason == "token revoked"
