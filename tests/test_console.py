"""The incident console (``/console``) through a Flask test client, on both backends: the
session cookie's attributes and life, CSRF on every POST, sign-in refusals that say nothing
of which half was wrong and count toward throttling, every page refused without a session,
the chain drawn, and containment only after a preview, with the reason recorded."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from sqlalchemy import select

from sts.services import nhis
from sts.store.admin import admin_store
from sts.store.models import AuditEvent, IssuedToken, Revocation
from sts.web import create_app
from sts.web.console.drawing import chain_order, draw
from sts.web.console.session import COOKIE, Session, SessionCodec
from sts.web.console.views import CSP, CSRF_REFUSED, REFUSED
from tests.console_fixtures import FourHops, register_four_hops, run_four_hops
from tests.helpers import FORM, basic

SIGN_IN = "/console/login"
COOKIE_VALUE = r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"


@pytest.fixture
def four(runtime, clock) -> FourHops:
    return register_four_hops(runtime, clock.now())


@pytest.fixture
def chain(client, four, clock) -> tuple[str, list[str]]:
    def call(who, data):
        resp = client.post("/token", data=data, headers=basic(who.client_id, who.secret),
                           content_type=FORM)
        return resp.status_code, resp.get_json()

    return run_four_hops(call, four, clock.now())


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def sign_in(client, who, secret: str | None = None) -> Any:
    form = client.get(SIGN_IN)
    return client.post(SIGN_IN, data={"csrf": csrf_of(form.text), "client_id": who.client_id,
                                      "client_secret": who.secret if secret is None else secret})


def message_of(html: str) -> str:
    found = re.search(r'id="message" role="alert">([^<]*)<', html)
    assert found, html
    return found.group(1)


def signed_in(client, four) -> str:
    """Sign in as the administrator; the session's CSRF token."""
    resp = sign_in(client, four.admin)
    assert resp.status_code == 303, resp.text
    return csrf_of(client.get("/console/").text)


def assert_to_sign_in(resp) -> None:
    assert (resp.status_code, resp.headers["Location"], resp.data) == (303, SIGN_IN, b"")
    assert resp.headers["Content-Security-Policy"] == CSP
    assert resp.headers["Cache-Control"] == "no-store"


# -- the session cookie ----------------------------------------------------------------------
def test_sign_in_form_when_served_then_pre_session_cookie_is_strict_and_page_is_self_contained(
    client,
):
    resp = client.get(SIGN_IN)
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    (cookie,) = resp.headers.getlist("Set-Cookie")
    assert re.fullmatch(
        rf"sts_console={COOKIE_VALUE}; Expires=[^;]+; Max-Age=1800; Secure; HttpOnly; "
        r"Path=/console; SameSite=Strict", cookie), cookie
    assert resp.headers["Content-Security-Policy"] == (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'")
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Cache-Control"] == "no-store"
    # Nothing from anywhere else, and no script at all.
    assert "<script" not in resp.text
    assert re.findall(r'(?:href|src)="([^"]+)"', resp.text) == [
        "/console/static/console.css", "/console/"]
    css = client.get("/console/static/console.css")
    assert css.status_code == 200 and "url(" not in css.text and "@import" not in css.text


def test_sign_in_when_admin_credentials_then_15_minute_session_cookie(client, four, clock):
    resp = sign_in(client, four.admin)
    assert (resp.status_code, resp.headers["Location"], resp.data) == (303, "/console/", b"")
    (cookie,) = resp.headers.getlist("Set-Cookie")
    assert re.fullmatch(
        rf"sts_console={COOKIE_VALUE}; Expires=[^;]+; Max-Age=900; Secure; HttpOnly; "
        r"Path=/console; SameSite=Strict", cookie), cookie
    page = client.get("/console/")
    assert page.status_code == 200
    assert '<strong id="admin">ops</strong>' in page.text
    clock.advance(899)
    assert client.get("/console/").status_code == 200
    clock.advance(1)  # the server ends the session, whatever the browser keeps
    assert_to_sign_in(client.get("/console/"))


def test_session_cookie_when_served_over_plain_http_issuer_then_not_secure(settings, runtime,
                                                                           four):
    plain = dataclasses.replace(settings, issuer="http://127.0.0.1:8000")
    client = create_app(plain, rt=dataclasses.replace(runtime, settings=plain)).test_client()
    (cookie,) = client.get(SIGN_IN).headers.getlist("Set-Cookie")
    assert "Secure" not in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_session_codec_when_tampered_expired_or_other_key_then_no_session():
    codec, other = SessionCodec(b"k" * 32), SessionCodec(b"j" * 32)
    session = Session("ops", frozenset({"sts:admin"}), "c" * 43, 1000)
    value = codec.encode(session)
    assert codec.decode(value, 999) == session
    assert codec.decode(value, 1000) is None  # over
    assert other.decode(value, 999) is None  # another key
    payload, signature = value.split(".")
    forged = Session("intruder", frozenset({"sts:admin"}), "c" * 43, 1000)
    assert codec.decode(codec.encode(forged).split(".")[0] + "." + signature, 999) is None
    for bad in ("", "x", "a.b.c", payload + ".", "." + signature, "é.é", "x" * 3000):
        assert codec.decode(bad, 999) is None
    with pytest.raises(ValueError):
        SessionCodec(b"short")


def test_session_when_cookie_forged_then_sign_in_again(client, four):
    signed_in(client, four)
    value = client.get_cookie(COOKIE, path="/console").value
    payload, signature = value.split(".")
    client.set_cookie(COOKIE, payload + "." + signature[::-1], path="/console")
    assert_to_sign_in(client.get("/console/"))


def test_session_when_admin_nhi_disabled_then_sign_in_again(client, four, runtime, clock):
    signed_in(client, four)
    with admin_store(runtime.engine) as store:
        nhis.set_nhi_status(store, "ops", status="disabled", reason="left", now=clock.now(),
                             admin="test")
    assert_to_sign_in(client.get("/console/"))


# -- every page refused without a session ----------------------------------------------------
@pytest.mark.parametrize("pre_session", [False, True], ids=["no cookie", "sign-in form cookie"])
def test_console_routes_when_no_session_then_each_redirects_to_sign_in(app, client, pre_session):
    if pre_session:  # the sign-in form's cookie names no administrator: not a session
        client.get(SIGN_IN)
    rules = [r for r in app.url_map.iter_rules()
             if r.endpoint.startswith("console.") and r.endpoint
             not in ("console.static", "console.sign_in_form", "console.sign_in")]
    assert {r.endpoint for r in rules} == {
        "console.recent", "console.transaction", "console.nhi_tokens", "console.revoke_form",
        "console.revoke_preview", "console.revoke", "console.sign_out"}
    for rule in rules:
        path = rule.rule.replace("<txn>", "t1").replace("<name>", "web")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            resp = client.open(path, method=method, data={"csrf": "x", "kind": "token",
                                                          "target": "t1", "reason": "r"})
            assert_to_sign_in(resp)


# -- refused sign-ins -------------------------------------------------------------------------
def test_sign_in_when_refused_then_same_answer_whichever_half_was_wrong(client, four, runtime):
    wrong_secret = sign_in(client, four.admin, secret="sts_" + "x" * 43)
    unknown = sign_in(client, dataclasses.replace(four.admin, client_id="nobody"))
    not_admin = sign_in(client, four.nhis["web"])
    empty = sign_in(client, four.admin, secret="")
    for resp in (wrong_secret, unknown, not_admin, empty):
        assert resp.status_code == 401
        assert message_of(resp.text) == REFUSED
        assert "Set-Cookie" not in resp.headers
        assert client.get_cookie(COOKIE, path="/console").value.count(".") == 1
    assert REFUSED == "Sign-in refused: these credentials do not identify an administrator."
    assert_to_sign_in(client.get("/console/"))
    assert sign_in(client, four.admin).status_code == 303
    with runtime.engine.connect() as conn:
        denied = conn.execute(select(AuditEvent.client_id, AuditEvent.reason).where(
            AuditEvent.event == "token.denied").order_by(AuditEvent.id)).all()
        signed = conn.execute(select(AuditEvent.client_id).where(
            AuditEvent.event == "admin.console.sign_in")).all()
    assert [tuple(d) for d in denied] == [("ops", "wrong client secret"),
                                          ("nobody", "unknown client")]
    assert [tuple(s) for s in signed] == [("ops",)]


def test_sign_in_when_failures_reach_the_limit_then_even_the_right_secret_is_refused(
    client, four, settings
):
    for _ in range(settings.auth_failure_limit):
        assert sign_in(client, four.admin, secret="sts_" + "x" * 43).status_code == 401
    resp = sign_in(client, four.admin)
    assert resp.status_code == 401
    assert message_of(resp.text) == REFUSED


def test_sign_in_when_nhi_holds_only_audit_scope_then_reads_but_may_not_revoke(client, four,
                                                                              chain):
    txn, jtis = chain
    assert sign_in(client, four.auditor).status_code == 303
    page = client.get(f"/console/txn/{txn}")
    assert page.status_code == 200 and "Revoke" not in page.text
    resp = client.get(f"/console/revoke?kind=token&target={jtis[0]}")
    assert resp.status_code == 403
    assert message_of(resp.text) == (
        "Your administrator&#39;s scopes do not allow this (it needs sts:admin or sts:revoke).")


# -- CSRF -------------------------------------------------------------------------------------
def test_post_when_csrf_missing_or_wrong_then_403_and_nothing_changes(client, four, chain,
                                                                    runtime):
    txn, _ = chain
    first = client.get(SIGN_IN)
    for form in ({}, {"csrf": "wrong"}):
        resp = client.post(SIGN_IN, data={**form, "client_id": "ops",
                                          "client_secret": four.admin.secret})
        assert resp.status_code == 403
        assert message_of(resp.text) == CSRF_REFUSED
        assert "Set-Cookie" not in resp.headers
    client.post(SIGN_IN, data={"csrf": csrf_of(first.text), "client_id": "ops",
                               "client_secret": four.admin.secret})
    good = csrf_of(client.get("/console/").text)
    assert good != csrf_of(first.text)  # a new token with the session
    revoke = {"kind": "txn", "target": txn, "reason": "incident 7", "confirm": "yes"}
    for path in ("/console/revoke", "/console/revoke/preview", "/console/logout"):
        for form in (revoke, {**revoke, "csrf": "wrong"}, {**revoke, "csrf": csrf_of(first.text)}):
            resp = client.post(path, data=form)
            assert resp.status_code == 403, path
            assert message_of(resp.text) == CSRF_REFUSED
    with runtime.engine.connect() as conn:
        assert conn.execute(select(Revocation)).all() == []
        assert conn.execute(select(IssuedToken.jti).where(
            IssuedToken.revoked_at.is_not(None))).all() == []
    assert client.get("/console/").status_code == 200  # still signed in
    out = client.post("/console/logout", data={"csrf": good})
    assert (out.status_code, out.headers["Location"]) == (303, SIGN_IN)
    assert re.match(r"sts_console=; Expires=Thu, 01 Jan 1970", out.headers["Set-Cookie"])
    assert_to_sign_in(client.get("/console/"))


# -- pages ------------------------------------------------------------------------------------
def test_transaction_page_when_four_hops_then_chain_drawn_in_order(client, four, chain):
    txn, jtis = chain
    signed_in(client, four)
    page = client.get(f"/console/txn/{txn}")
    assert page.status_code == 200
    boxes = re.findall(r'<g class="box (\w+)" data-name="([^"]+)">', page.text)
    assert boxes == [("person", "alice"), ("service", "web"), ("agent", "agent"),
                     ("workload", "tool"), ("service", "data")]
    arrows = re.findall(r'data-hop="(\d*)" data-state="(\w+)"', page.text)
    assert arrows == [("1", "live"), ("2", "live"), ("3", "live"), ("4", "live")]
    cards = re.findall(r'<h3>Hop (\d): (\w+) → (\w+) <span class="badge (\w+)">', page.text)
    assert cards == [("1", "web", "web", "live"), ("2", "web", "agent", "live"),
                     ("3", "agent", "tool", "live"), ("4", "tool", "data", "live")]
    assert page.text.count("<p class=\"muted\">None reported.</p>") == 4
    for jti in jtis:
        assert f"<code>{jti}</code>" in page.text


def test_drawing_when_first_actor_is_not_the_initiator_then_it_gets_a_box():
    audit = {"initiated_by": {"subject": "alice", "issuer": "https://idp"},
             "hops": [{"actor": a, "target": t, "status": s} for a, t, s in
                      [("web", "agent", "active"), ("agent", "tool", "void"),
                       ("tool", "data", "expired")]]}
    drawing = draw(audit, {"web": "service", "agent": "agent", "tool": "workload"})
    assert [(b.name, b.role) for b in drawing.boxes] == [
        ("alice", "person"), ("web", "service"), ("agent", "agent"), ("tool", "workload"),
        ("data", "nhi")]
    assert [(a.hop, a.state) for a in drawing.arrows] == [
        (None, "live"), (1, "live"), (2, "revoked"), (3, "expired")]


def test_chain_order_when_issued_in_the_same_second_then_parents_first():
    hops = [{"jti": j, "parent_jti": p, "issued_at": 5} for j, p in
            [("a", "c"), ("b", None), ("c", "b"), ("d", "b"), ("e", "a")]]
    assert [h["jti"] for h in chain_order(hops)] == ["b", "c", "a", "e", "d"]


def test_recent_when_filtered_then_only_matching_transactions(client, four, chain):
    txn, _ = chain
    signed_in(client, four)
    for query, listed in [("", True), ("person=alice", True), ("person=bob", False),
                          ("nhi=agent", True), ("nhi=ops", False), ("resource=data", True),
                          ("resource=nowhere", False), ("decision=allowed", True),
                          ("decision=denied", False),
                          ("since=2000-01-01T00:00&until=2999-01-01T00:00", True),
                          ("until=2000-01-01T00:00", False)]:
        page = client.get(f"/console/?{query}")
        assert page.status_code == 200
        assert (f'href="/console/txn/{txn}"' in page.text) is listed, query
    for query, message in [
        ("decision=maybe", "Decision must be one of allowed, denied."),
        ("since=yesterday", "Since must be a date and time (YYYY-MM-DDTHH:MM, UTC)."),
        ("since=2026-01-02T00:00&until=2026-01-01T00:00", "The window ends before it starts."),
    ]:
        page = client.get(f"/console/?{query}")
        assert (page.status_code, message_of(page.text)) == (400, message)


def test_nhi_page_when_tokens_live_then_listed_and_unknown_nhi_404(client, four, chain):
    _, jtis = chain
    signed_in(client, four)
    page = client.get("/console/nhi/agent")
    assert page.status_code == 200
    assert sorted(re.findall(r"<td><code>([\w-]+)</code></td>", page.text)) == sorted(jtis[1:3])
    missing = client.get("/console/nhi/nobody")
    assert (missing.status_code, message_of(missing.text)) == (
        404, "No NHI named &#39;nobody&#39;.")
    gone = client.get("/console/txn/nothing-here")
    assert (gone.status_code, message_of(gone.text)) == (404, "No tokens in this transaction.")


# -- containment ------------------------------------------------------------------------------
def test_revoke_when_previewed_then_confirmed_then_dead_hops_and_reason_recorded(
    client, four, chain, runtime
):
    txn, jtis = chain
    csrf = signed_in(client, four)
    form = {"csrf": csrf, "kind": "token", "target": jtis[1], "back": txn}
    no_reason = client.post("/console/revoke/preview", data={**form, "reason": "  "})
    assert (no_reason.status_code, message_of(no_reason.text)) == (
        400, "A reason is required: it is recorded with the revocation.")
    unknown = client.post("/console/revoke/preview", data={**form, "kind": "nhi",
                                                           "target": "nobody", "reason": "x"})
    assert (unknown.status_code, message_of(unknown.text)) == (
        404, "No NHI named &#39;nobody&#39;.")
    wrong_kind = client.post("/console/revoke/preview", data={**form, "kind": "issuer",
                                                              "reason": "x"})
    assert (wrong_kind.status_code, message_of(wrong_kind.text)) == (
        400, "Kind must be one of token, txn, nhi, rule.")
    preview = client.post("/console/revoke/preview", data={**form, "reason": "incident 7"})
    assert preview.status_code == 200
    assert re.findall(r'id="(tokens|transactions)">(\d+)<', preview.text) == [
        ("tokens", "3"), ("transactions", "1")]
    assert sorted(re.findall(r"<li><code>([\w-]+)</code></li>", preview.text)) == sorted(jtis[1:])
    unconfirmed = client.post("/console/revoke", data={**form, "reason": "incident 7"})
    assert (unconfirmed.status_code, message_of(unconfirmed.text)) == (
        400, "Confirm the revocation after its preview.")
    with runtime.engine.connect() as conn:  # a preview changes nothing
        assert conn.execute(select(Revocation)).all() == []
    done = client.post("/console/revoke", data={**form, "reason": "incident 7", "confirm": "yes"})
    assert done.status_code == 200
    assert re.findall(r'id="tokens">(\d+)<', done.text) == ["3"]
    with runtime.engine.connect() as conn:
        (row,) = conn.execute(select(Revocation.kind, Revocation.target, Revocation.reason,
                                     Revocation.revoked_by)).all()
        events = conn.execute(select(AuditEvent.event, AuditEvent.client_id).where(
            AuditEvent.event.like("admin.revoke.%")).order_by(AuditEvent.id)).all()
    assert tuple(row) == ("token", jtis[1], "incident 7", "ops")
    assert [tuple(e) for e in events] == [("admin.revoke.token.dry_run", "ops"),
                                          ("admin.revoke.token", "ops")]
    page = client.get(f"/console/txn/{txn}")
    arrows = re.findall(r'data-hop="(\d*)" data-state="(\w+)"', page.text)
    assert arrows == [("1", "live"), ("2", "revoked"), ("3", "revoked"), ("4", "revoked")]
    assert "by ops (administrator): incident 7" in page.text
    agent = client.get("/console/nhi/agent").text
    assert re.findall(r"<td><code>([\w-]+)</code></td>", agent) == []


def test_transaction_page_when_hops_carry_reports_then_data_touched_under_each(
    client, four, chain, monkeypatch
):
    from sts.services import audit
    from sts.web.console import views

    txn, jtis = chain
    shown = audit.show

    def with_reports(store, **kwargs):
        found = shown(store, **kwargs)
        for hop in found["hops"]:
            hop["reports"] = [{"jti": hop["jti"], "resource": "orders/42", "action": "read",
                               "data_classes": ["pii", "payment"], "records": 3, "bytes": 512,
                               "destination": None, "outcome": "ok", "at": 1_800_000_000}
                              ] if hop["jti"] == jtis[3] else []
        return found

    monkeypatch.setattr(views.audit, "show", with_reports)
    signed_in(client, four)
    page = client.get(f"/console/txn/{txn}").text
    assert page.count('<p class="muted">None reported.</p>') == 3
    rows = re.findall(r'<table class="reports">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert rows == ["<tr><td>orders/42</td><td>read</td><td>pii, payment</td><td>3</td>"
                    "<td>512</td><td>-</td><td>ok</td><td>2027-01-15 08:00:00 UTC</td></tr>"]
    assert page.index('id="hop-4"') < page.index('class="reports"')


@pytest.mark.parametrize("in_ci", [False, True])
def test_browser_tests_when_chromium_missing_then_skip_locally_and_fail_in_ci(monkeypatch,
                                                                           in_ci):
    from tests import test_console_browser as browser_tests

    monkeypatch.setattr(browser_tests, "chromium_path", lambda: None)
    monkeypatch.setattr(browser_tests, "IN_CI", in_ci)
    outcome = pytest.fail.Exception if in_ci else pytest.skip.Exception
    with pytest.raises(outcome) as raised:
        browser_tests._requirements()
    reason = "chromium is not installed (apt-get install -y chromium)"
    assert str(raised.value.msg) == (
        f"the console's browser tests must run in CI: {reason}" if in_ci
        else f"browser tests skipped: {reason}")
