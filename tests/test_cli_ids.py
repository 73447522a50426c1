"""IDs that begin with ``-``: a ``jti`` (and so a ``txn``) is random base64url, and one in 64
begins with ``-`` (one in 4096 with ``--``). Every command that takes an ID takes such an ID,
with ``--json``, ``--dry-run``, ``--reason`` and ``--help`` before or after it; the minted IDs
here are made to begin that way, so that no run depends on the draw.
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from sts.cli import main
from sts.services import rules
from sts.store.admin import admin_store
from tests.exchange_fixtures import client_credentials, exchange
from tests.helpers import claims_of


@pytest.fixture(params=["-", "--"])
def dash(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every token minted in the test gets a ``jti`` beginning with ``-`` (or ``--``)."""
    prefix: str = request.param

    def new_jti() -> str:
        return prefix + secrets.token_urlsafe(18)[len(prefix) :]

    monkeypatch.setattr("sts.oauth.rfc6749.grants.new_jti", new_jti)
    monkeypatch.setattr("sts.oauth.rfc8693.grant.new_jti", new_jti)
    yield prefix


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
        if code:
            assert result.stdout == ""
            assert len(result.stderr.splitlines()) == 1, result.stderr
        return result

    return run


class Minted:
    """web's own token (the root of the transaction) and the one web exchanged it for."""

    def __init__(self, client: Any, make_nhi: Any, runtime: Any, clock: Any) -> None:
        web = make_nhi("web", scope="a")
        make_nhi("agent", "agent")
        with admin_store(runtime.engine) as store:
            rules.create_rule(store, actor="web", targets=["agent"], scope="a", now=clock.now(),
                              admin="t")  # fmt: skip
        root = client_credentials(client, web, scope="a")
        assert root.status_code == 200, root.json
        hop = exchange(client, web, root.json["access_token"], audience="agent")
        assert hop.status_code == 200, hop.json
        self.root, self.hop = (claims_of(r.json["access_token"]) for r in (root, hop))
        self.txn = self.root["txn"]


@pytest.fixture
def minted(dash: str, client: Any, make_nhi: Any, runtime: Any, clock: Any) -> Minted:
    made = Minted(client, make_nhi, runtime, clock)
    assert made.root["jti"].startswith(dash) and made.hop["jti"].startswith(dash)
    assert made.txn == made.root["jti"]
    return made


def orders(options: list[str], id_: str) -> list[list[str]]:
    """The ID before, between and after the options."""
    return [[id_, *options], [*options, id_], *([[options[0], id_, *options[1:]]]
            if len(options) > 1 else [])]  # fmt: skip


def test_revoke_token_when_jti_begins_with_a_dash_then_dry_run_and_revoke_take_it(
    minted: Minted, sts: Any
) -> None:
    jti = minted.hop["jti"]
    for args in orders(["--dry-run", "--json"], jti):
        dry = json.loads(sts("revoke", "token", *args).stdout)
        assert (dry["target"], dry["dry_run"], dry["jtis"]) == (jti, True, [jti])
    human = sts("revoke", "token", "--dry-run", jti).stdout
    assert human.splitlines()[0] == (
        f"would revoke token {jti}: 1 live token(s) in 1 transaction(s)")  # fmt: skip
    done = json.loads(sts("revoke", "token", "--reason", "-leaked", jti, "--json").stdout)
    assert (done["target"], done["dry_run"], done["jtis"]) == (jti, False, [jti])
    story = json.loads(sts("audit", "show", "--jti", jti, "--json").stdout)
    (revoked,) = story["revocations"]
    assert (revoked["target"], revoked["reason"]) == (jti, "-leaked")


def test_revoke_txn_when_txn_begins_with_a_dash_then_it_is_revoked(
    minted: Minted, sts: Any
) -> None:
    for args in orders(["--json", "--reason", "r"], minted.txn):
        assert json.loads(sts("revoke", "txn", *args, "--dry-run").stdout)["tokens"] == 2
    done = json.loads(sts("revoke", "txn", minted.txn, "--json").stdout)
    assert sorted(done["jtis"]) == sorted([minted.root["jti"], minted.hop["jti"]])


def test_chain_show_when_jti_or_txn_begins_with_a_dash_then_the_tree(
    minted: Minted, sts: Any
) -> None:
    expected = [minted.root["jti"], minted.hop["jti"]]
    for args in [*orders(["--json"], minted.hop["jti"]), ["--txn", minted.txn, "--json"],
                 ["--json", f"--txn={minted.txn}"]]:  # fmt: skip
        (root,) = json.loads(sts("chain", "show", *args).stdout)
        assert [root["jti"], *(c["jti"] for c in root["children"])] == expected
    out = sts("chain", "show", minted.hop["jti"]).stdout
    assert out.startswith(f"txn {minted.txn}  subject web")


def test_audit_show_when_jti_or_txn_begins_with_a_dash_then_the_story(
    minted: Minted, sts: Any
) -> None:
    for args in (["--jti", minted.hop["jti"]], ["--txn", minted.txn],
                 [f"--jti={minted.hop['jti']}"]):  # fmt: skip
        story = json.loads(sts("audit", "show", *args, "--json").stdout)
        assert (story["txn"], sorted(h["jti"] for h in story["hops"])) == (
            minted.txn, sorted([minted.root["jti"], minted.hop["jti"]]))  # fmt: skip


def test_help_when_placed_after_an_id_beginning_with_a_dash_then_help(sts: Any) -> None:
    for command in (["revoke", "token"], ["chain", "show"], ["rule", "show"], ["nhi", "show"]):
        out = sts(*command, "-ORlkX", "--help").stdout
        assert out.startswith(f"Usage: main {' '.join(command)} [OPTIONS]")


COMMANDS = [
    ["revoke", "token"], ["revoke", "txn"], ["revoke", "nhi"], ["revoke", "credential"],
    ["revoke", "rule"], ["revoke", "issuer"], ["chain", "show"], ["rule", "show"],
    ["rule", "disable"], ["nhi", "show"], ["nhi", "enable"], ["nhi", "secret", "rotate"],
]  # fmt: skip


@pytest.mark.parametrize(
    ("command", "unknown"),
    [
        *itertools.product(COMMANDS, ["-ORlk3x", "--ORlk3x"]),
        (["nhi", "disable"], "-ORlk3x"),
        (["nhi", "disable"], "--ORlk3x"),
    ],
)
def test_id_commands_when_an_unknown_id_begins_with_a_dash_then_not_found_not_an_option(
    runtime: Any, sts: Any, command: list[str], unknown: str
) -> None:
    extra = ["--reason", "r"] if command == ["nhi", "disable"] else []
    refused = sts(*command, unknown, *extra, code=2)
    assert refused.stderr.startswith("error (not_found): "), refused.stderr


def test_id_commands_when_an_option_is_misspelt_after_the_id_then_refused_not_taken(
    minted: Minted, sts: Any
) -> None:
    refused = sts("revoke", "token", minted.hop["jti"], "--dryrun", code=2)
    assert refused.stderr == (
        "Error: Got unexpected extra argument (--dryrun) (see 'main revoke token --help')\n")
    assert json.loads(sts("chain", "show", minted.hop["jti"], "--json").stdout)[0][
        "children"][0]["status"] == "active"  # fmt: skip
