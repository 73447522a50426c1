"""Lifecycle symmetry in the ``sts`` command: what can be created can be shown, changed,
disabled and removed; creates are idempotent as the admin API's are; enums are checked; the
registry round-trips through a document. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from sts.cli import main
from tests.exchange_fixtures import client_credentials
from tests.helpers import KeyPair

IDP = "https://idp.example.test"


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


def js(sts: Any, *args: str) -> Any:
    return json.loads(sts(*args, "--json").stdout)


def test_version_and_short_help(sts: Any) -> None:
    assert sts("--version").stdout == "sts (Chain STS) 0.1.0\n"
    assert sts("-h").stdout.startswith("Usage: main [OPTIONS] COMMAND [ARGS]...")
    assert "registry" in sts("-h").stdout
    assert sts("nhi", "create", "-h").stdout.startswith("Usage: main nhi create")
    # An ID may begin with "-h": where a command takes one, it is the ID, not help.
    assert sts("revoke", "token", "-hXYZ", code=2).stderr.startswith("error (not_found)")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nhi", "create", "bot", "--kind", "robot"], "Invalid value for '--kind': 'robot'"),
        (["nhi", "list", "--kind", "robot"], "Invalid value for '--kind': 'robot'"),
        (["audit", "list", "--event", "token.denid"], "unknown event 'token.denid'"),
        (["nhi", "update", "web", "--kind", "robot"], "Invalid value for '--kind': 'robot'"),
    ],
)
def test_enum_options_when_unknown_value_then_one_line_exit_2(
    sts: Any, args: list[str], message: str
) -> None:
    assert message in sts(*args, code=2).stderr


def test_creates_when_repeated_then_answered_like_the_api_and_never_duplicated(sts: Any) -> None:
    first = js(sts, "nhi", "create", "web", "--kind", "service")
    again = js(sts, "nhi", "create", "web", "--kind", "service")
    assert again == {**first, "client_secret": None}  # the secret is shown only once
    assert "nothing changed" in sts("nhi", "create", "web", "--kind", "service").stdout
    js(sts, "nhi", "create", "api", "--kind", "service")
    rule = ["rule", "create", "--actor", "web", "--target", "api", "--scope", "orders:read"]
    assert js(sts, *rule) == js(sts, *rule)
    assert js(sts, "rule", "list")["total"] == 1
    listed = [js(sts, "nhi", "list"), js(sts, "rule", "list"), js(sts, "issuer", "list"),
              js(sts, "audit", "list"), js(sts, "keys", "list")]  # fmt: skip
    assert all(set(shape) >= {"items", "total"} for shape in listed)


def test_nhi_update_and_delete_when_rules_and_live_tokens_then_refused_until_resolved(
    sts: Any, client: Any
) -> None:
    web = js(sts, "nhi", "create", "web", "--kind", "service")
    js(sts, "nhi", "create", "api", "--kind", "service")
    updated = js(sts, "nhi", "update", "web", "--scope", "b a", "--resource",
                 "https://web.example.test", "--owner", "team")  # fmt: skip
    assert (updated["scope"], updated["resources"], updated["owner"]) == (
        "a b", ["https://web.example.test"], "team")  # fmt: skip
    assert updated["changed"] == ["owner", "scope", "resources"]
    assert js(sts, "nhi", "update", "web", "--scope", "a b")["changed"] == []
    rule = js(sts, "rule", "create", "--actor", "api", "--target", "web", "--scope", "a")
    refused = sts("nhi", "delete", "web", code=2)
    assert refused.stderr == (
        f"error (conflict): rules name this NHI ({rule['id']}); delete or change them first\n"
    )
    assert js(sts, "rule", "delete", rule["id"]) == {
        "id": rule["id"], "deleted": True, "revoked_tokens": 0}  # fmt: skip
    token = client_credentials(client, type("W", (), {"client_id": "web",
                                                      "secret": web["client_secret"]})())
    assert token.status_code == 200
    live = sts("nhi", "delete", "web", code=2)
    assert live.stderr == (
        "error (conflict): 1 live token(s) involve this NHI; revoke them first (--revoke)\n"
    )
    assert js(sts, "nhi", "delete", "web", "--revoke") == {
        "client_id": "web", "deleted": True, "revoked_tokens": 1}  # fmt: skip
    assert sts("nhi", "show", "web", code=2).stderr == "error (not_found): no NHI named 'web'\n"
    events = js(sts, "audit", "list", "--event", "admin.nhi.delete")["items"]
    assert [e["event"] for e in events] == ["admin.nhi.delete"]


def test_rule_update_enable_and_issuer_lifecycle(sts: Any, tmp_path: Path) -> None:
    for name in ("web", "api", "db"):
        js(sts, "nhi", "create", name, "--kind", "service")
    rule = js(sts, "rule", "create", "--actor", "web", "--target", "api", "--scope", "a")
    changed = js(sts, "rule", "update", rule["id"], "--target", "db", "--scope", "a b",
                 "--max-depth", "2")  # fmt: skip
    assert (changed["targets"], changed["scope"], changed["max_depth"], changed["changed"]) == (
        ["db"], "a b", 2, True)  # fmt: skip
    assert js(sts, "rule", "disable", rule["id"])["status"] == "disabled"
    assert js(sts, "rule", "enable", rule["id"])["status"] == "enabled"

    first, second = tmp_path / "k1.json", tmp_path / "k2.json"
    first.write_text(json.dumps(KeyPair("idp-1").jwks))
    second.write_text(json.dumps(KeyPair("idp-2").jwks))
    js(sts, "issuer", "add", IDP, "--jwks", str(first))
    assert js(sts, "issuer", "show", IDP)["kids"] == ["idp-1"]
    rotated = js(sts, "issuer", "update", IDP, "--jwks", str(second), "--audience", "web")
    assert (rotated["kids"], rotated["audiences"], rotated["changed"]) == (
        ["idp-2"], ["web"], ["jwks", "audiences"])  # fmt: skip
    assert js(sts, "issuer", "disable", IDP, "--reason", "breach")["status"] == "revoked"
    assert js(sts, "issuer", "enable", IDP)["status"] == "active"
    assert js(sts, "issuer", "remove", IDP) == {
        "issuer": IDP, "removed": True, "revoked_tokens": 0}  # fmt: skip
    assert sts("issuer", "show", IDP, code=2).stderr == (
        "error (not_found): no such trusted issuer\n"
    )


def test_registry_export_and_apply_when_round_trip_then_no_changes(
    sts: Any, tmp_path: Path
) -> None:
    js(sts, "nhi", "create", "web", "--kind", "service")
    js(sts, "nhi", "create", "api", "--kind", "agent", "--scope", "x")
    js(sts, "rule", "create", "--actor", "web", "--target", "api", "--scope", "x")
    document = tmp_path / "registry.yaml"
    assert sts("registry", "export", "-o", str(document)).stdout == (
        f"registry written to {document}\n"
    )
    assert "secret" not in document.read_text()
    assert sts("registry", "export").stdout == document.read_text()
    assert sts("registry", "apply", "-f", str(document), "--prune").stdout == (
        "No changes: the registry matches the document.\n"
    )
    changed = document.read_text().replace("scope: x\n  grants", "scope: x y\n  grants", 1)
    document.write_text(changed)
    plan = sts("registry", "apply", "-f", str(document), "--dry-run").stdout
    assert plan == "~ nhi api (scope)\nPlan (would apply): 0 to create, 1 to change, 0 to remove.\n"
    assert js(sts, "nhi", "show", "api")["scope"] == "x"
    applied = js(sts, "registry", "apply", "-f", str(document))
    assert applied["changes"] == [
        {"action": "update", "kind": "nhi", "name": "api", "fields": ["scope"]}]  # fmt: skip
    assert js(sts, "nhi", "show", "api")["scope"] == "x y"

    document.write_text(changed.replace("kind: agent", "kind: robot"))
    refused = sts("registry", "apply", "-f", str(document), code=2)
    line = changed.splitlines().index("  kind: agent") + 1
    assert refused.stderr == (
        f"error (invalid_document): line {line}: kind must be one of service, agent, workload\n"
    )
