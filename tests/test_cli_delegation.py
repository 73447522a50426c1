"""``sts rule`` and ``sts chain`` as administrators and incident responders use them.

Each test gets its own SQLite registry and key directory. The chain tests mint real tokens with
the app built on the same settings, then read the lineage back through the command line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask.testing import FlaskClient

from sts.cli import main
from sts.core.settings import Settings
from sts.web import create_app
from tests.exchange_fixtures import client_credentials, exchange
from tests.helpers import claims_of

EXPIRES = "2099-01-01T00:00:00Z"


class Cli:
    def __init__(self, tmp: Path) -> None:
        self.env = {
            "STS_DATABASE_URL": f"sqlite:///{tmp / 'sts.db'}",
            "STS_KEYS_DIR": str(tmp / "keys"),
        }
        self.secrets: dict[str, str] = {}

    def run(self, *args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(main, list(args), env=self.env)
        assert result.exit_code == code, (result.output, result.exception)
        assert "Traceback" not in result.output
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def fails(self, *args: str) -> str:
        """Run a command that must be refused as bad input: exit 2, one line on stderr."""
        result = self.run(*args, code=2)
        assert result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1
        return result.stderr

    def nhi(self, name: str, kind: str = "service", scope: str = "") -> None:
        created = self.json("nhi", "create", name, "--kind", kind, "--scope", scope)
        self.secrets[name] = created["client_secret"]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path)
    cli.run("db", "upgrade")
    for name, kind in [("web", "service"), ("agent", "agent"), ("tool", "workload")]:
        cli.nhi(name, kind)
    return cli


# -- rule create ------------------------------------------------------------------------------
def test_rule_create_when_every_option_given_then_json_names_them_all(cli: Cli) -> None:
    created = cli.json(
        "rule", "create", "--actor", "web", "--target", "agent", "--target", "tool",
        "--scope", "b a", "--subject", "kind:agent", "--upstream", "tool", "--max-depth", "3",
        "--max-ttl", "60", "--expires", EXPIRES, "--require-dpop",
    )  # fmt: skip
    assert created["id"].startswith("rule_")
    assert {k: v for k, v in created.items() if k not in {"id", "created_at"}} == {
        "actor": "web",
        "targets": ["agent", "tool"],
        "scope": "a b",
        "subject": "kind:agent",
        "subject_issuer": None,
        "upstream": "tool",
        "max_depth": 3,
        "max_ttl": 60,
        "expires_at": int(datetime(2099, 1, 1, tzinfo=UTC).timestamp()),
        "require_dpop": True,
        "status": "enabled",
    }
    assert abs(created["created_at"] - datetime.now(UTC).timestamp()) < 60


def test_rule_create_when_defaults_then_any_subject_and_no_limits(cli: Cli) -> None:
    created = cli.json("rule", "create", "--actor", "web", "--target", "agent", "--scope", "a")
    assert created["subject"] == "any"
    assert created["upstream"] is None
    assert (created["max_depth"], created["max_ttl"], created["expires_at"]) == (None, None, None)
    assert created["require_dpop"] is False


def test_rule_create_when_target_is_star_then_any_target(cli: Cli) -> None:
    created = cli.json("rule", "create", "--actor", "agent", "--target", "*", "--scope", "a")
    assert created["targets"] == ["*"]


@pytest.mark.parametrize(
    ("subject", "shown"),
    [("alice", "sub:alice"), ("sub:alice", "sub:alice"),
     ("issuer:https://idp.example.test", "issuer:https://idp.example.test"),
     ("kind:workload", "kind:workload"), ("any", "any")],
)  # fmt: skip
def test_rule_create_when_subject_forms_then_normalised(cli: Cli, subject: str, shown: str) -> None:
    created = cli.json(
        "rule", "create", "--actor", "web", "--target", "agent", "--scope", "a",
        "--subject", subject,
    )  # fmt: skip
    assert created["subject"] == shown


def test_rule_create_when_human_output_then_every_field_shown(cli: Cli) -> None:
    out = cli.run(
        "rule", "create", "--actor", "web", "--target", "agent", "--scope", "a",
        "--max-depth", "2", "--expires", EXPIRES,
    ).stdout  # fmt: skip
    assert "actor:    web" in out
    assert "targets:  agent" in out
    assert "max depth 2, max ttl -, expires 2099-01-01T00:00:00Z" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--actor", "nobody", "--target", "agent"], "actor 'nobody' is not a registered NHI"),
        (["--actor", "web", "--target", "nowhere"], "target 'nowhere' is not a registered NHI"),
        (["--actor", "web", "--target", "agent", "--target", "nowhere"], "'nowhere'"),
        (["--actor", "web", "--target", "agent", "--upstream", "ghost"], "upstream 'ghost'"),
    ],
)
def test_rule_create_when_unknown_nhi_then_exit_2_naming_it(
    cli: Cli, args: list[str], message: str
) -> None:
    err = cli.fails("rule", "create", *args, "--scope", "a")
    assert "not_found" in err
    assert message in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--subject", "kind:robot"], "subject kind must be one of"),
        (["--subject", "kind:"], "needs a value"),
        (["--subject", ""], "subject must be"),
        (["--expires", "next tuesday"], "expires must be an ISO 8601 date-time"),
        (["--expires", "2099-01-01T00:00:00"], "time zone"),
        (["--expires", "2001-01-01T00:00:00Z"], "expires must be in the future"),
        (["--max-depth", "0"], "max depth"),
        (["--max-depth", "33"], "max depth"),
        (["--max-ttl", "0"], "max ttl"),
        (["--scope", "a  b"], "scope"),
        (["--scope", 'a "b"'], "scope"),
    ],
)
def test_rule_create_when_bad_value_then_exit_2_and_nothing_created(
    cli: Cli, extra: list[str], message: str
) -> None:
    args = ["--actor", "web", "--target", "agent", "--scope", "a", *extra]
    err = cli.fails("rule", "create", *args)
    assert "error (invalid)" in err
    assert message in err
    assert cli.json("rule", "list")["total"] == 0


def test_rule_create_when_option_is_not_a_number_then_usage_error(cli: Cli) -> None:
    result = cli.run(
        "rule", "create", "--actor", "web", "--target", "agent", "--scope", "a",
        "--max-depth", "three", code=2,
    )  # fmt: skip
    assert "Invalid value for '--max-depth'" in result.output


# -- rule list / show / disable ------------------------------------------------------------
def test_rule_list_when_rules_exist_then_items_and_total(cli: Cli) -> None:
    first = cli.json("rule", "create", "--actor", "web", "--target", "agent", "--scope", "a")
    second = cli.json("rule", "create", "--actor", "agent", "--target", "*", "--scope", "b")
    listed = cli.json("rule", "list")
    assert listed["total"] == 2
    assert {r["id"] for r in listed["items"]} == {first["id"], second["id"]}
    assert listed["items"] == sorted(listed["items"], key=lambda r: (r["created_at"], r["id"]))
    assert next(r for r in listed["items"] if r["id"] == first["id"]) == first
    assert cli.json("rule", "list", "--actor", "agent")["items"] == [second]
    assert cli.json("rule", "list", "--limit", "1")["total"] == 2
    assert len(cli.json("rule", "list", "--limit", "1")["items"]) == 1


def test_rule_list_when_none_then_empty(cli: Cli) -> None:
    assert cli.json("rule", "list") == {"items": [], "total": 0}
    assert "(0 of 0)" in cli.run("rule", "list").stdout


def test_rule_show_when_known_then_same_as_created(cli: Cli) -> None:
    created = cli.json(
        "rule", "create", "--actor", "web", "--target", "agent", "--scope", "a",
        "--max-ttl", "60",
    )  # fmt: skip
    assert cli.json("rule", "show", created["id"]) == created
    assert created["id"] in cli.run("rule", "show", created["id"]).stdout


def test_rule_show_when_unknown_then_exit_2(cli: Cli) -> None:
    assert "error (not_found)" in cli.fails("rule", "show", "rule_0000")


def test_rule_disable_when_enabled_then_status_disabled_everywhere(cli: Cli) -> None:
    created = cli.json("rule", "create", "--actor", "web", "--target", "agent", "--scope", "a")
    disabled = cli.json("rule", "disable", created["id"], "--reason", "incident 42")
    assert disabled == {**created, "status": "disabled"}
    assert cli.json("rule", "show", created["id"])["status"] == "disabled"
    assert cli.json("rule", "list", "--status", "disabled")["items"] == [disabled]
    assert cli.json("rule", "list", "--status", "enabled")["total"] == 0


def test_rule_disable_when_unknown_then_exit_2(cli: Cli) -> None:
    assert "error (not_found)" in cli.fails("rule", "disable", "rule_0000")


# -- chain show -----------------------------------------------------------------------------
class MintedChain:
    """A transaction minted through the app: batch's own token for web, exchanged by web for
    agent (and separately for tool), then by agent for tool."""

    def __init__(self, cli: Cli, http: FlaskClient) -> None:
        cli.nhi("batch", "workload", scope="a b")
        self.rules = {
            "web": cli.json("rule", "create", "--actor", "web", "--target", "agent",
                            "--target", "tool", "--scope", "a b"),
            "agent": cli.json("rule", "create", "--actor", "agent", "--target", "tool",
                              "--scope", "a", "--upstream", "web"),
        }  # fmt: skip
        ids = {n: _Who(n, s) for n, s in cli.secrets.items()}
        root = client_credentials(http, ids["batch"], audience="web")
        assert root.status_code == 200, root.json
        web_agent = exchange(http, ids["web"], root.json["access_token"], audience="agent")
        web_tool = exchange(http, ids["web"], root.json["access_token"], audience="tool",
                            scope="b")  # fmt: skip
        agent_tool = exchange(http, ids["agent"], web_agent.json["access_token"],
                              audience="tool", scope="a")  # fmt: skip
        for resp in (web_agent, web_tool, agent_tool):
            assert resp.status_code == 200, resp.json
        self.root, self.web_agent, self.web_tool, self.agent_tool = (
            claims_of(r.json["access_token"]) for r in (root, web_agent, web_tool, agent_tool)
        )
        self.txn = self.root["txn"]


class _Who:
    def __init__(self, client_id: str, secret: str) -> None:
        self.client_id, self.secret = client_id, secret


@pytest.fixture
def app_client(cli: Cli) -> FlaskClient:
    """The app on the very settings the command line reads (same database, same keys)."""
    return create_app(Settings.load(environ=cli.env)).test_client()


@pytest.fixture
def chain(cli: Cli, app_client: FlaskClient) -> MintedChain:
    return MintedChain(cli, app_client)


def _walk(nodes: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for node in nodes:
        yield node
        yield from _walk(node["children"])


def test_chain_show_when_txn_then_json_tree_of_every_hop(cli: Cli, chain: MintedChain) -> None:
    roots = cli.json("chain", "show", "--txn", chain.txn)
    assert [r["jti"] for r in roots] == [chain.root["jti"]]
    root = roots[0]
    assert (root["actor"], root["grant_type"], root["rule_id"]) == (
        "batch", "client_credentials", None)  # fmt: skip
    assert sorted(c["jti"] for c in root["children"]) == sorted(
        [chain.web_agent["jti"], chain.web_tool["jti"]]
    )
    via_agent = next(c for c in root["children"] if c["jti"] == chain.web_agent["jti"])
    assert [c["jti"] for c in via_agent["children"]] == [chain.agent_tool["jti"]]
    last = via_agent["children"][0]
    assert {k: last[k] for k in ("actor", "target", "scope", "rule_id", "status", "chain")} == {
        "actor": "agent",
        "target": "tool",
        "scope": "a",
        "rule_id": chain.rules["agent"]["id"],
        "status": "active",
        "chain": ["agent", "web"],
    }
    assert last["children"] == []
    nodes = list(_walk(roots))
    assert len(nodes) == 4
    for node in nodes:
        assert node["txn"] == chain.txn
        assert node["subject"] == "batch"
        assert node["parent_jti"] in {None, *(n["jti"] for n in nodes)}


def test_chain_show_when_jti_then_ancestors_and_descendants_only(
    cli: Cli, chain: MintedChain
) -> None:
    roots = cli.json("chain", "show", chain.web_agent["jti"])
    assert [n["jti"] for n in _walk(roots)] == [
        chain.root["jti"], chain.web_agent["jti"], chain.agent_tool["jti"]]  # fmt: skip
    leaf = cli.json("chain", "show", chain.agent_tool["jti"])
    assert [n["jti"] for n in _walk(leaf)] == [
        chain.root["jti"], chain.web_agent["jti"], chain.agent_tool["jti"]]  # fmt: skip


def test_chain_show_when_human_then_each_hop_with_actor_target_scope_rule_status(
    cli: Cli, chain: MintedChain
) -> None:
    out = cli.run("chain", "show", "--txn", chain.txn).stdout
    lines = out.splitlines()
    assert lines[0].startswith(f"txn {chain.txn}  subject batch")
    hops = {
        chain.root["jti"]: ("batch -> ", "[a b]", "rule -", "active"),
        chain.web_agent["jti"]: ("web -> agent", "[a b]", f"rule {chain.rules['web']['id']}",
                                 "active"),
        chain.web_tool["jti"]: ("web -> tool", "[b]", f"rule {chain.rules['web']['id']}",
                                "active"),
        chain.agent_tool["jti"]: ("agent -> tool", "[a]", f"rule {chain.rules['agent']['id']}",
                                  "active"),
    }  # fmt: skip
    assert len(lines) == 1 + len(hops)
    for jti, parts in hops.items():
        (line,) = [ln for ln in lines[1:] if jti in ln]
        for part in parts:
            assert part in line, (part, line)
    deepest = next(ln for ln in lines[1:] if chain.agent_tool["jti"] in ln)
    child = next(ln for ln in lines[1:] if chain.web_agent["jti"] in ln)
    assert deepest.index(chain.agent_tool["jti"]) > child.index(chain.web_agent["jti"])


def test_chain_show_when_rule_disabled_then_tree_still_readable(
    cli: Cli, chain: MintedChain
) -> None:
    cli.json("rule", "disable", chain.rules["agent"]["id"])
    roots = cli.json("chain", "show", chain.agent_tool["jti"])
    assert [n["jti"] for n in _walk(roots)][-1] == chain.agent_tool["jti"]


@pytest.mark.parametrize(
    "args",
    [[], ["jti_x", "--txn", "txn_x"], ["no-such-jti"], ["--txn", "no-such-txn"]],
)
def test_chain_show_when_nothing_or_both_or_unknown_then_exit_2(
    cli: Cli, chain: MintedChain, args: list[str]
) -> None:
    cli.fails("chain", "show", *args)
