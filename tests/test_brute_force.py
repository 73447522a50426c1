"""Client authentication brute force (hardening): failures per client are throttled and
audited, throttling is shared by every STS process, and neither the answer nor the work done
tells whether a client_id exists or is throttled."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from sqlalchemy import select

from sts.core.secrets import SecretHasher
from sts.core.settings import Settings
from sts.store.models import AuditEvent, AuthFailure
from sts.web import create_app
from tests.exchange_fixtures import client_credentials
from tests.helpers import FORM, basic

LIMIT = 3
WINDOW = 60
FAILED = {"error": "invalid_client", "error_description": "Client authentication failed."}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    from dataclasses import replace

    return replace(settings, auth_failure_limit=LIMIT, auth_failure_window=WINDOW)


def _fail(client: Any, client_id: str) -> Any:
    resp = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        content_type=FORM,
        headers=basic(client_id, "sts_wrong-wrong-wrong-wrong-wrong"),
    )
    assert resp.status_code == 401 and resp.json == FAILED
    return resp


def _reasons(runtime: Any, client_id: str) -> list[str]:
    with runtime.engine.connect() as conn:
        return list(
            conn.execute(
                select(AuditEvent.reason)
                .where(AuditEvent.client_id == client_id, AuditEvent.decision == "denied")
                .order_by(AuditEvent.id)
            ).scalars()
        )


def test_secret_when_limit_reached_then_even_the_right_secret_is_refused_alike(
    client, make_nhi, runtime
):
    web = make_nhi("web")
    wrong = [_fail(client, "web") for _ in range(LIMIT)]
    resp = client_credentials(client, web)
    assert resp.status_code == 401 and resp.json == FAILED
    assert resp.data == wrong[0].data
    assert resp.headers["WWW-Authenticate"] == wrong[0].headers["WWW-Authenticate"]
    assert _reasons(runtime, "web") == ["wrong client secret"] * LIMIT + [
        "throttled: too many failed authentications"
    ]


def test_throttle_when_window_passes_then_client_may_authenticate_and_counter_clears(
    client, make_nhi, runtime, clock
):
    web = make_nhi("web")
    for _ in range(LIMIT):
        _fail(client, "web")
    clock.advance(WINDOW)
    assert client_credentials(client, web).status_code == 200
    with runtime.engine.connect() as conn:
        assert conn.execute(select(AuthFailure)).all() == []


def test_failures_when_below_limit_then_success_clears_them(client, make_nhi, runtime):
    web = make_nhi("web")
    for _ in range(LIMIT - 1):
        _fail(client, "web")
    assert client_credentials(client, web).status_code == 200
    for _ in range(LIMIT - 1):
        _fail(client, "web")
    assert client_credentials(client, web).status_code == 200


def test_unknown_client_when_failing_repeatedly_then_same_answer_and_nothing_stored(
    client, make_nhi, runtime
):
    make_nhi("web")
    known = [_fail(client, "web") for _ in range(LIMIT + 2)]
    unknown = [_fail(client, "nobody") for _ in range(LIMIT + 2)]
    assert {r.data for r in known} == {r.data for r in unknown}
    assert {r.headers["WWW-Authenticate"] for r in known} == {
        r.headers["WWW-Authenticate"] for r in unknown
    }
    with runtime.engine.connect() as conn:
        stored = conn.execute(select(AuthFailure.client_id)).scalars().all()
    assert stored == ["web"]


def test_work_when_client_unknown_wrong_or_throttled_then_one_secret_hash_each(
    client, make_nhi, monkeypatch
):
    """Timing cannot reveal whether a client exists: every path hashes the presented secret
    exactly once and compares it against at least one candidate."""
    make_nhi("web")
    calls: list[str] = []
    original = SecretHasher.hash

    def counting(self: SecretHasher, secret: str) -> str:
        calls.append(secret)
        return original(self, secret)

    monkeypatch.setattr(SecretHasher, "hash", counting)
    work = []
    for client_id in ["nobody", "web", "web", "web", "web"]:  # the last is throttled
        calls.clear()
        _fail(client, client_id)
        work.append(len(calls))
    assert work == [1, 1, 1, 1, 1]


def test_throttle_when_failures_come_through_another_replica_then_shared(
    client, make_nhi, runtime, settings
):
    web = make_nhi("web")
    other = create_app(
        settings,
        rt=runtime.__class__(
            settings, runtime.engine, runtime.keys, runtime.hasher, runtime.clock, runtime.server
        ),
    )
    for _ in range(LIMIT):
        _fail(other.test_client(), "web")
    resp = client_credentials(client, web)
    assert resp.status_code == 401 and resp.json == FAILED


def test_client_id_when_it_contains_nul_then_invalid_client_not_500(client, make_nhi, runtime):
    make_nhi("web")
    raw = base64.b64encode(b"we\x00b:sts_secret").decode()
    resp = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        content_type=FORM,
        headers={"Authorization": "Basic " + raw},
    )
    assert resp.status_code == 401 and resp.json == FAILED
    resp = client.post(
        "/token",
        content_type=FORM,
        data={"grant_type": "client_credentials", "client_id": "we\x00b", "client_secret": "x"},
    )
    assert resp.status_code == 401 and resp.json == FAILED
    assert any("\ufffd" in (c or "") for c in _audit_clients(runtime))


def _audit_clients(runtime: Any) -> list[str | None]:
    with runtime.engine.connect() as conn:
        return list(conn.execute(select(AuditEvent.client_id)).scalars())


def test_subject_token_when_issuer_contains_nul_then_invalid_request_not_500(client, make_nhi):
    web = make_nhi("web")
    token = jwt.encode(
        {"iss": "https://idp\x00.test", "sub": "a", "exp": 4_000_000_000},
        "k" * 32,
        algorithm="HS256",
    )
    header = base64.urlsafe_b64encode(json.dumps({"alg": "ES256", "kid": "x"}).encode())
    forged = header.decode().rstrip("=") + "." + token.split(".", 1)[1]
    resp = client.post(
        "/token",
        content_type=FORM,
        headers=basic(web.client_id, web.secret),
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": forged,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        },
    )
    assert resp.status_code == 400
    assert resp.json == {
        "error": "invalid_request",
        "error_description": "The subject token is invalid.",
    }
