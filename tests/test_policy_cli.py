"""``sts policy explain``: the AuthZEN question from the command line, through the same
service and evaluator, on both backends; one-line errors for bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from sts.cli import main
from sts.services import issuers, rules
from sts.store.admin import admin_store
from sts.store.models import AuditEvent
from tests.conftest import ISSUER
from tests.exchange_fixtures import PersonIdp, exchange


@pytest.fixture
def world(runtime: Any, make_nhi: Any, clock: Any) -> dict[str, Any]:
    idp = PersonIdp()
    nhis = {name: make_nhi(name) for name in ("web", "agent", "tool")}
    with admin_store(runtime.engine) as store:
        issuers.add_issuer(
            store,
            issuer=idp.issuer,
            jwks=idp.keys.jwks,
            audiences=["web"],
            now=clock.now(),
            admin="test",
            scope_mode="cap",
        )
        web = rules.create_rule(
            store,
            actor="web",
            targets=["agent"],
            scope="orders:read orders:write",
            subject=f"issuer:{idp.issuer}",
            max_ttl=120,
            now=clock.now(),
            admin="test",
        )
        agent = rules.create_rule(
            store,
            actor="agent",
            targets=["tool"],
            scope="orders:read",
            upstream="web",
            now=clock.now(),
            admin="test",
        )
    return {"idp": idp, "nhis": nhis, "rules": {"web": web["id"], "agent": agent["id"]}}


@pytest.fixture
def sts(runtime: Any, settings: Any) -> Any:
    env = {
        "STS_DATABASE_URL": runtime.engine.url.render_as_string(hide_password=False),
        "STS_KEYS_DIR": str(settings.keys_dir),
        "STS_ISSUER": ISSUER,
    }

    def run(*args: str, code: int = 0, stdin: str | None = None) -> Result:
        result = CliRunner().invoke(main, list(args), env=env, input=stdin)
        assert result.exit_code == code, (result.output, result.exception)
        assert "Traceback" not in result.output
        return result

    return run


def test_policy_explain_when_allowed_then_rule_scope_lifetime_and_hops(sts, world, runtime):
    idp, rule = world["idp"], world["rules"]["agent"]
    out = sts(
        "policy",
        "explain",
        "--actor",
        "agent",
        "--subject",
        f"{idp.issuer}:alice",
        "--target",
        "tool",
        "--scope",
        "orders:read",
        "--chain",
        "web",
    ).stdout
    assert out.splitlines() == [
        f"decision:  ALLOWED by rule {rule}",
        "scope:     orders:read",
        "lifetime:  300 s",
        f"subject:   alice (issuer {idp.issuer})",
        "actor:     agent",
        "target:    tool",
        "chain:     1:web  2:agent  (hop numbers: 1 = first hop)",
        f"rules:     {rule}",
    ]
    with runtime.engine.connect() as conn:
        event = conn.execute(select(AuditEvent).where(AuditEvent.event == "policy.evaluated")).one()
    assert event.client_id.startswith("cli") and event.decision == "done"
    assert (event.subject, event.target, event.rule_id) == ("alice", "tool", rule)


def test_policy_explain_when_denied_then_the_precise_reason_and_json(sts, world):
    idp, rule = world["idp"], world["rules"]["web"]
    out = sts(
        "policy",
        "explain",
        "--actor",
        "web",
        "--subject",
        "alice",
        "--subject-issuer",
        idp.issuer,
        "--target",
        "agent",
        "--scope",
        "orders:delete",
    ).stdout
    assert out.splitlines()[:3] == [
        "decision:  DENIED (invalid_scope)",
        "reason:    requested scope exceeds the rule's and the subject's scope",
        "answer:    invalid_scope: The requested scope exceeds what is allowed.",
    ]
    data = json.loads(
        sts(
            "policy",
            "explain",
            "--actor",
            "web",
            "--subject",
            f"{idp.issuer}:alice",
            "--target",
            "agent",
            "--scope",
            "orders:delete",
            "--json",
        ).stdout
    )
    assert data == {
        "decision": False,
        "actor": "web",
        "subject": "alice",
        "subject_issuer": idp.issuer,
        "target": "agent",
        "chain": ["web"],
        "rule_id": None,
        "scope": None,
        "expires_in": None,
        "error": "invalid_scope",
        "error_description": "The requested scope exceeds what is allowed.",
        "reason": "requested scope exceeds the rule's and the subject's scope",
        "rules_weighed": [rule],
    }


def test_policy_explain_when_no_scope_then_the_largest_allowed(sts, world):
    idp = world["idp"]
    data = json.loads(
        sts(
            "policy",
            "explain",
            "--actor",
            "web",
            "--subject",
            f"{idp.issuer}:alice",
            "--target",
            "agent",
            "--json",
        ).stdout
    )
    assert (data["decision"], data["scope"], data["expires_in"]) == (
        True,
        "orders:read orders:write",
        120,
    )


def test_policy_explain_when_nhi_subject_then_judged_as_a_chain_rooted_here(sts, world):
    # No rule lets web act for the NHI web toward agent (its rule covers the IdP's people).
    data = json.loads(
        sts(
            "policy",
            "explain",
            "--actor",
            "web",
            "--subject",
            "web",
            "--target",
            "agent",
            "--scope",
            "orders:read",
            "--json",
        ).stdout
    )
    assert (data["decision"], data["subject"], data["subject_issuer"], data["error"]) == (
        False,
        "web",
        ISSUER,
        "invalid_request",
    )
    assert data["reason"] == f"rule {world['rules']['web']}: subject not covered"


def test_policy_explain_with_a_subject_token_then_as_the_token_endpoint_answers(
    sts, world, client, clock
):
    idp = world["idp"]
    person = idp.token("alice", "web", clock.now(), scope="orders:read")
    hop = exchange(client, world["nhis"]["web"], person, audience="agent").get_json()
    data = json.loads(
        sts(
            "policy",
            "explain",
            "--actor",
            "agent",
            "--subject-token",
            hop["access_token"],
            "--target",
            "tool",
            "--scope",
            "orders:read",
            "--json",
        ).stdout
    )
    assert (data["decision"], data["chain"], data["subject"]) == (True, ["web", "agent"], "alice")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--actor", "web", "--target", "agent"],
            "error (invalid): give exactly one of --subject or --subject-token",
        ),
        (
            ["--actor", "web", "--target", "agent", "--subject", "a", "--subject-token", "t"],
            "error (invalid): give exactly one of --subject or --subject-token",
        ),
        (
            ["--actor", "web", "--target", "agent", "--subject-token", "t", "--chain", "a"],
            "error (invalid): a subject token carries its own chain",
        ),
        (
            ["--actor", "web", "--target", "agent", "--subject", "a", "--scope", "a  b"],
            "error (invalid): scope: must be space-delimited scope tokens",
        ),
        (
            ["--actor", "web", "--target", "agent", "--subject", "a", "--chain", "web,,agent"],
            "error (invalid): chain: must be 1-2048 characters",
        ),
        (
            ["--actor", "we\x1bb", "--target", "agent", "--subject", "a"],
            "error (invalid): actor: must not contain control characters",
        ),
    ],
)
def test_policy_explain_when_bad_input_then_one_line_and_exit_2(sts, world, args, message):
    result = sts("policy", "explain", *args, code=2)
    assert result.stdout == ""
    assert result.stderr.splitlines() == [message]


def test_policy_explain_when_option_missing_then_one_line_usage_error(sts):
    result = sts("policy", "explain", "--target", "agent", code=2)
    assert len(result.stderr.splitlines()) == 1
    assert "--actor" in result.stderr


def test_policy_explain_when_subject_token_on_stdin_then_read_from_there(sts, world, clock):
    person = world["idp"].token("alice", "web", clock.now(), scope="orders:read")
    data = json.loads(
        sts(
            "policy",
            "explain",
            "--actor",
            "web",
            "--subject-token",
            "-",
            "--target",
            "agent",
            "--scope",
            "orders:read",
            "--json",
            stdin=person + "\n",
        ).stdout
    )
    assert (data["decision"], data["subject"], data["chain"]) == (True, "alice", ["web"])
    result = sts(
        "policy",
        "explain",
        "--actor",
        "web",
        "--subject-token",
        "-",
        "--target",
        "agent",
        code=2,
        stdin="",
    )
    assert result.stderr.splitlines() == ["error (invalid): subject token: empty"]
