"""Human output of ``sts`` shows strings that clients, tokens and administrators supplied: a
``client_id`` an unauthenticated request named, a ``sub``, a denial's target, a reason. None of
them may end a line, rewrite the terminal or forge an audit line: every printer escapes control
characters (C0, DEL, C1, the Unicode line and paragraph separators, bidi controls). ``--json``
stays JSON, the values exact.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from sts.cli import main
from sts.cli.support import handles_errors, printable
from sts.services import rules
from sts.services.errors import Invalid
from sts.store.admin import admin_store
from tests.exchange_fixtures import client_credentials, exchange
from tests.helpers import FORM, claims_of

#: A terminal reset, a forged line, and a line separator some viewers honour.
EVIL = "evil\x1b[2J\r\n2026-01-01T00:00:00Z  token.issued  allowed  admin\u2028x"
EVIL_SHOWN = r"evil\x1b[2J\r\n2026-01-01T00:00:00Z  token.issued  allowed  admin\u2028x"
#: What no line of human output may hold.
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
CLI = Path(__file__).resolve().parent.parent / "sts" / "cli"


@pytest.fixture
def sts(runtime: Any, settings: Any) -> Any:
    env = {
        "STS_DATABASE_URL": runtime.engine.url.render_as_string(hide_password=False),
        "STS_KEYS_DIR": str(settings.keys_dir),
    }

    def run(*args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(main, list(args), env=env)
        assert result.exit_code == code, (result.output, result.exception)
        assert "Traceback" not in result.output
        assert not UNSAFE.search(result.output), result.output
        return result

    return run


def lines(result: Result) -> list[str]:
    return result.stdout.split("\n")[:-1]


# -- the one function --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text, é → ü", "plain text, é → ü"),
        ("\x00\x07\x08\x0b\x0c\x1b\x1f", r"\x00\x07\x08\x0b\x0c\x1b\x1f"),
        ("a\tb\nc\rd", r"a\tb\nc\rd"),
        ("del\x7f c1\x80\x85\x9b\x9f", r"del\x7f c1\x80\x85\x9b\x9f"),
        ("line\u2028para\u2029", r"line\u2028para\u2029"),
        ("bidi\u202eoverride\u2066isolate\u200f", r"bidi\u202eoverride\u2066isolate\u200f"),
        ("back\\slash", "back\\slash"),
    ],
)
def test_printable_when_control_characters_then_escaped_on_one_line(raw, shown):
    assert printable(raw) == shown


def test_cli_when_any_printer_then_it_prints_through_the_one_function():
    """Every human line goes through ``say`` (``support.py``): no other module echoes."""
    calls = []
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                if name in {"click.echo", "click.secho", "print", "sys.stdout.write", "echo"}:
                    calls.append((path.name, node.lineno, name))
    assert {(f, n) for f, _, n in calls} == {("support.py", "click.echo")}
    functions = {
        node.name: (node.lineno, node.end_lineno)
        for node in ast.walk(ast.parse((CLI / "support.py").read_text()))
        if isinstance(node, ast.FunctionDef)
    }
    inside = {name for _, line, _ in calls for name, (start, end) in functions.items()
              if start <= line <= (end or start) and name != "wrapper"}  # fmt: skip
    assert inside == {"say", "emit", "handles_errors"}


# -- audit -------------------------------------------------------------------------------------


def test_audit_list_when_client_id_carries_control_characters_then_one_escaped_line(
    client, sts
):
    resp = client.post("/token", content_type=FORM, data={
        "grant_type": "client_credentials", "client_id": EVIL, "client_secret": "x"})  # fmt: skip
    assert resp.status_code == 401
    header, *out = lines(sts("audit", "list"))
    assert header.split() == [
        "TIME", "EVENT", "DECISION", "CLIENT", "SUBJECT", "TARGET", "TXN", "JTI", "WHAT"
    ]  # fmt: skip
    assert len(out) == 1
    assert EVIL_SHOWN in out[0]
    assert out[0].split()[1:3] == ["token.denied", "denied"]
    (event,) = json.loads(sts("audit", "list", "--json").stdout)["items"]
    assert event["client_id"] == EVIL


def test_audit_show_when_denied_target_and_revocation_reason_carry_them_then_escaped(
    client, make_nhi, sts, clock, runtime
):
    web = make_nhi("web")
    with admin_store(runtime.engine) as store:
        rules.create_rule(store, actor="web", targets=["web"], scope="a", now=clock.now(),
                          admin="t")  # fmt: skip
    root = client_credentials(client, web, audience="web")
    assert root.status_code == 200, root.json
    token = root.json["access_token"]
    denied = exchange(client, web, token, audience=EVIL)
    assert denied.status_code == 400, denied.json
    jti = claims_of(token)["jti"]
    sts("revoke", "token", jti, "--reason", f"leaked\r\n{EVIL}")

    out = lines(sts("audit", "show", "--jti", jti))
    assert [line.split()[0] for line in out] == [
        "transaction", "initiated", "executed", "hop", "denied", "revoked", "accessed:"]
    assert f"-> {EVIL_SHOWN}: " in out[4]
    assert f"(leaked\\r\\n{EVIL_SHOWN})" in out[5]


# -- registry, rules, chains -------------------------------------------------------------------


def test_nhi_show_and_list_when_owner_and_sub_carry_them_then_escaped(sts):
    sts("nhi", "create", "web", "--kind", "service", "--owner", EVIL, "--sub", "svc\u2028\x1b[31m")
    shown = lines(sts("nhi", "show", "web"))
    assert shown[2] == r"sub:       svc\u2028\x1b[31m"
    assert shown[3] == f"owner:     {EVIL_SHOWN}"
    assert len(shown) == 8  # seven fields and the secret credential
    listed = lines(sts("nhi", "list"))
    assert listed[0].endswith(r"svc\u2028\x1b[31m") and listed[1] == "(1 of 1)"
    assert json.loads(sts("nhi", "show", "web", "--json").stdout)["owner"] == EVIL


def test_rule_show_and_list_when_subject_carries_them_then_escaped(sts):
    sts("nhi", "create", "web", "--kind", "service")
    created = json.loads(sts("rule", "create", "--actor", "web", "--target", "web", "--scope",
                             "a", "--subject", f"sub:{EVIL}", "--json").stdout)  # fmt: skip
    shown = lines(sts("rule", "show", created["id"]))
    assert len(shown) == 7
    assert EVIL_SHOWN in shown[4]
    listed = lines(sts("rule", "list"))
    assert len(listed) == 2 and EVIL_SHOWN in listed[0]


def test_chain_show_and_audit_list_when_subject_carries_them_then_escaped(client, make_nhi, sts):
    web = make_nhi("web", sub="svc\u2028\x1b]0;title\x07")
    resp = client_credentials(client, web)
    assert resp.status_code == 200, resp.json
    txn = claims_of(resp.json["access_token"])["txn"]
    out = lines(sts("chain", "show", f"--txn={txn}"))
    assert len(out) == 2
    assert r"subject svc\u2028\x1b]0;title\x07 " in out[0]
    assert r"svc\u2028\x1b]0;title\x07" in lines(sts("audit", "list"))[1]


# -- errors ------------------------------------------------------------------------------------


def test_errors_when_a_refusal_quotes_them_then_one_escaped_line():
    @click.command()
    @handles_errors
    def refuse() -> None:
        raise Invalid(f"no such thing: {EVIL}")

    refused = CliRunner().invoke(refuse, [])
    assert (refused.exit_code, refused.stdout) == (2, "")
    assert refused.stderr == f"error (invalid): no such thing: {EVIL_SHOWN}\n"


def test_errors_when_usage_quotes_them_then_one_escaped_line(sts):
    usage = sts("audit", "list", "--decision", EVIL, code=2)
    assert usage.stdout == ""
    assert usage.stderr.count("\n") == 1
    assert EVIL_SHOWN in usage.stderr
