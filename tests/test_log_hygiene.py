"""Secrets in logs (DESIGN §6, §9; STYLE 10): no record of the ``sts`` loggers, as its call site
made it (before the formatter's redaction), and no audit row carries a token, a client secret,
a PEM block or a client assertion, whatever a client sends and wherever it puts it.

The session-wide check lives in ``tests/conftest.py`` (every record of the whole run is
checked; a leak fails the session). Here the same check is driven on purpose: successes and
every kind of denial, with real tokens and secrets, in the right places and in the wrong ones.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sts.core import logs
from sts.services import issuers, rules
from sts.store.admin import admin_store
from sts.store.models import AuditEvent
from sts.store.revocation import revoke
from tests.conftest import ISSUER, LEAK_PATTERNS, leaks
from tests.exchange_fixtures import ACCESS_TOKEN, PersonIdp, client_credentials, exchange
from tests.helpers import FORM, KeyPair, basic, claims_of

ROOT = Path(__file__).resolve().parent.parent
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def record(msg: str = "event", **extra: Any) -> logging.LogRecord:
    rec = logging.makeLogRecord({"name": "sts.test", "msg": msg, "levelno": logging.INFO})
    rec.__dict__.update(extra)
    return rec


def audit_texts(runtime: Any) -> list[str]:
    with runtime.engine.connect() as conn:
        rows = conn.execute(select(AuditEvent)).all()
    return [json.dumps(dict(r._mapping), default=str) for r in rows]


def secret_shaped(texts: list[str]) -> list[str]:
    return [m.group(0) for t in texts for p in LEAK_PATTERNS.values() for m in p.finditer(t)]


# -- the detector ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "kind"),
    [
        ({"msg": "token eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ3ZWIifQ.c2ln"}, "jwt"),
        ({"reason": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ3ZWIifQ."}, "jwt"),
        ({"client_id": "sts_kVSuCxlRo-RgJrBeFZc-hInvsRts6M48IfhHc7eN7fk"}, "client secret"),
        ({"detail": {"key": "-----BEGIN PRIVATE KEY-----\nMIGH..."}}, "pem"),
        ({"form": "client_assertion=abcdefghijklmnop"}, "client assertion"),
        ({"params": {"client_assertion": "abcdefghijklmnop"}}, "client assertion"),
    ],
)
def test_leak_detector_when_record_carries_secret_shape_then_flagged(extra, kind):
    rec = record(extra.pop("msg", "event"), **extra)
    assert [f.split(":")[0] for f in leaks(rec)] == [kind]


def test_leak_detector_when_exception_text_carries_a_token_then_flagged():
    try:
        raise ValueError("bad token eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ3ZWIifQ.c2ln")
    except ValueError:
        rec = record(exc_info=sys.exc_info())
    assert {f.split(":")[0] for f in leaks(rec)} == {"jwt"}


def test_leak_detector_when_record_has_ids_reasons_and_scopes_then_clean():
    rec = record("token denied", event="token.denied", error="invalid_request",
                 reason="subject token: signature verification failed", client_id="web",
                 request_id="3f2a9c", chain=("agent", "web"), scope="orders:read",
                 jti="Qx2-8fH_kq0a1b2c3d4e5f6g", issuer=ISSUER)
    assert leaks(rec) == []


def test_log_hygiene_plugin_when_a_test_logs_a_token_then_session_fails(tmp_path):
    """The plugin turns a leak in any test into a failed run, naming the test and the kind."""
    test = tmp_path / "test_leaky.py"
    test.write_text(
        "import logging\n\n"
        "def test_leaky():\n"
        "    token = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ3In0.c2ln'\n"
        "    logging.getLogger('sts.web').warning('oops %s', token)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider",
         str(test)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stdout
    assert "1 passed" in proc.stdout
    assert "log hygiene" in proc.stdout
    assert "test_leaky.py::test_leaky" in proc.stdout and "jwt: eyJhbGciOiJFUzI1NiJ9" in proc.stdout


# -- the STS, driven with real tokens and secrets ------------------------------------------


@pytest.fixture
def world(runtime, make_nhi, clock):
    idp, keys = PersonIdp(), KeyPair("jwt-client-1")
    nhis = {
        "web": make_nhi("web", "service", scope="orders:read"),
        "agent": make_nhi("agent", "agent"),
        "tool": make_nhi("tool", "workload"),
        "signer": make_nhi("signer", "service", jwks=keys.jwks),
    }
    with admin_store(runtime.engine) as store:
        issuers.add_issuer(store, issuer=idp.issuer, jwks=idp.keys.jwks, audiences=["web"],
                            algorithms=["ES256"], scope_mode="rule", now=clock.now(), admin="t")
        rules.create_rule(store, actor="web", targets=["agent"], scope="orders:read",
                          now=clock.now(), admin="t")
        rules.create_rule(store, actor="agent", targets=["tool"], scope="orders:read",
                          now=clock.now(), admin="t")
    return idp, keys, nhis


def test_logs_when_exchanges_succeed_and_fail_with_real_tokens_then_no_record_carries_one(
    client, runtime, clock, world, sts_log_records
):
    idp, keys, nhis = world
    web, agent, signer = nhis["web"], nhis["agent"], nhis["signer"]
    root = client_credentials(client, web).json["access_token"]
    hop = exchange(client, web, root, audience="agent").json["access_token"]
    person = idp.token("alice", "web", clock.now())
    answers = [
        # successes
        exchange(client, agent, hop, audience="tool"),
        exchange(client, web, person, audience="agent"),
        # denials with real tokens: wrong audience binding, bad signature, no rule, bad actor
        exchange(client, web, hop, audience="tool"),
        exchange(client, agent, hop[:-4] + "AAAA", audience="tool"),
        exchange(client, agent, hop, audience="web"),
        exchange(client, agent, hop, audience="tool", actor_token=root,
                 actor_token_type=ACCESS_TOKEN),
        exchange(client, agent, hop, audience="tool", actor_token=hop),
        exchange(client, agent, hop, subject_type="urn:example:unknown"),
        exchange(client, agent, idp.token("alice", "web", clock.now() - 7200), audience="tool"),
        # client authentication failures, with secrets and tokens
        client.post("/token", data={"grant_type": "client_credentials"}, content_type=FORM,
                    headers=basic("web", agent.secret)),
        client.post("/token", data={"grant_type": "client_credentials", "client_id": "web",
                                    "client_secret": hop}, content_type=FORM),
        client.post("/token", data={"grant_type": "client_credentials",
                                    "client_assertion_type": ASSERTION_TYPE,
                                    "client_assertion": hop}, content_type=FORM),
        # refused before the pipeline: the body carries a token
        client.post("/token", data={"subject_token": hop, "x": "y" * 70000}, content_type=FORM),
        client.post("/token", data=f"subject_token={hop}&\xff".encode("latin-1"),
                    content_type=FORM),
        client.get(f"/token?subject_token={hop}&client_secret={web.secret}"),
        # introspection and revocation of real tokens
        client.post("/introspect", data={"token": hop}, content_type=FORM,
                    headers=basic("agent", agent.secret)),
        client.post("/introspect", data={"token": hop}, content_type=FORM,
                    headers=basic("agent", web.secret)),
        client.post("/revoke", data={"token": root}, content_type=FORM,
                    headers=basic("agent", agent.secret)),
        client.post("/revoke", data={"token": root}, content_type=FORM,
                    headers=basic("web", web.secret)),
    ]
    # A replayed client assertion, and a revoked subject token.
    assertion = keys.assertion("signer", f"{ISSUER}/token", clock.now())
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion}
    answers += [client.post("/token", data=form, content_type=FORM) for _ in range(2)]
    with runtime.engine.begin() as conn:
        revoke(conn, "token", claims_of(hop)["jti"], now=clock.now(), admin="t", reason="test")
    answers.append(exchange(client, agent, hop, audience="tool"))
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == 6 and 500 not in statuses, statuses
    assert signer.client_id == "signer"
    events = {getattr(r, "event", None) for r in sts_log_records}
    assert {"token.denied", "request.refused", "introspection.denied"} <= events, events
    assert [f for r in sts_log_records for f in leaks(r)] == []
    assert secret_shaped(audit_texts(runtime)) == []
    # The formatter's output is clean as well (it redacts, but it has nothing to redact).
    formatter = logs.JsonFormatter()
    assert not any("[jwt]" in formatter.format(r) or "[secret]" in formatter.format(r)
                   for r in sts_log_records)


@pytest.mark.parametrize(
    "misplaced",
    ["client_id", "basic_user", "scope", "audience", "grant_type"],
)
def test_logs_when_client_puts_its_secret_or_a_token_in_the_wrong_field_then_not_logged(
    client, runtime, clock, world, sts_log_records, misplaced
):
    """A client that swaps its id and secret, or pastes a token where a name belongs, must
    not find it in the STS's logs or audit trail (the attempted value is kept only when it
    cannot be a credential)."""
    _idp, _keys, nhis = world
    web = nhis["web"]
    token = client_credentials(client, web).json["access_token"]
    for value in (web.secret, token):
        if misplaced == "client_id":
            resp = client.post("/token", data={"grant_type": "client_credentials",
                                               "client_id": value, "client_secret": "web"},
                               content_type=FORM)
        elif misplaced == "basic_user":
            resp = client.post("/token", data={"grant_type": "client_credentials"},
                               content_type=FORM, headers=basic(value, "web"))
        else:
            resp = client.post("/token", data={"grant_type": "client_credentials",
                                               misplaced: value},
                               content_type=FORM, headers=basic("web", web.secret))
        assert 400 <= resp.status_code < 500, resp.json
    assert [f for r in sts_log_records for f in leaks(r)] == []
    assert secret_shaped(audit_texts(runtime)) == []
