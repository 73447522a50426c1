"""``sts admin bootstrap``: the first administrator, whose token opens the admin API."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from click.testing import CliRunner, Result

from sts.cli import main
from tests.admin_api_helpers import Api, token_for
from tests.conftest import Registered
from tests.exchange_fixtures import exchange


@pytest.fixture
def sts(settings, runtime, tmp_path, monkeypatch) -> Any:
    """Runs ``sts`` against the test app's database and key directory."""
    for name in list(os.environ):
        if name.startswith("STS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    env = {"STS_DATABASE_URL": settings.database_url, "STS_KEYS_DIR": str(settings.keys_dir)}

    def run(*args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(main, list(args), env=env)
        assert result.exit_code == code, (result.output, result.exception)
        return result

    return run


def test_admin_bootstrap_when_json_then_secret_once_and_its_token_opens_the_admin_api(client, sts):
    created = json.loads(sts("admin", "bootstrap", "ops", "--owner", "sec-team", "--json").stdout)
    assert set(created) == {"client_id", "client_secret", "scope"}
    assert created["client_id"] == "ops"
    assert created["scope"] == "sts:admin sts:audit sts:revoke"
    assert created["client_secret"].startswith("sts_")
    ops = Registered("ops", created["client_secret"], "ops")
    api = Api(client, token_for(client, ops))
    shown = api.ok("GET", "/nhis/ops")
    assert (shown["kind"], shown["owner"], shown["grants"]) == (
        "service",
        "sec-team",
        ["client_credentials"],
    )
    assert created["client_secret"] not in json.dumps(shown)
    event = api.ok("GET", "/audit/events?event=admin.nhi.create")["items"][0]
    assert event["client_id"].startswith("cli")


def test_admin_bootstrap_when_human_output_then_secret_shown_once_with_warning(client, sts):
    out = sts("admin", "bootstrap", "ops").stdout
    lines = out.splitlines()
    secret = lines[1].split()[-1]
    assert lines[0] == "client_id:     ops"
    assert lines[1] == f"client_secret: {secret}"
    assert lines[2] == "scope:         sts:admin sts:audit sts:revoke"
    assert lines[3] == "(the secret is shown only once; store it now)"
    assert out.count(secret) == 1


def test_admin_bootstrap_when_admin_tries_token_exchange_then_unauthorized_client(client, sts):
    created = json.loads(sts("admin", "bootstrap", "ops", "--json").stdout)
    ops = Registered("ops", created["client_secret"], "ops")
    resp = exchange(client, ops, token_for(client, ops))
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "unauthorized_client"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ops", "error (conflict): an NHI named 'ops' already exists\n"),
        (
            "bad name",
            "error (invalid): name must be 1-128 letters, digits, '.', '_' or '-', "
            "starting alphanumeric\n",
        ),
    ],
)
def test_admin_bootstrap_when_name_taken_or_invalid_then_exit_2(sts, name, message):
    sts("admin", "bootstrap", "ops", "--json")
    assert sts("admin", "bootstrap", name, code=2).stderr == message
