"""The ``sts`` command as administrators and scripts use it: ``--json`` output, exit codes
(0 done, 2 bad input, 1 anything else), and never a secret or its hash where it should not be.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from sqlalchemy import select

import sts.web.server
from sts.cli import main
from sts.core.keys import generate_key
from sts.core.logs import redact
from sts.core.secrets import HASH_KEY_FILE, SecretHasher, load_hash_key
from sts.core.settings import Settings
from sts.store.db import create_engine
from sts.store.migrate import upgrade
from sts.store.models import Credential, Nhi
from sts.web import create_app
from sts.web.devserver import PathOnlyRequestHandler
from sts.web.server import workers_for
from tests.helpers import KeyPair
from tests.test_migrations import PG_DB, fresh_postgres, head

KID = re.compile(r"^\d{8}T\d{6}Z-(ES256|EdDSA|RS256)-[a-z0-9]+$")
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


@dataclass
class Cli:
    """Runs ``sts`` with a database and key directory of its own."""

    database_url: str
    keys_dir: Path
    workdir: Path

    @property
    def env(self) -> dict[str, str]:
        return {"STS_DATABASE_URL": self.database_url, "STS_KEYS_DIR": str(self.keys_dir)}

    def run(self, *args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(main, list(args), env=self.env)
        assert result.exit_code == code, (redact(result.output), result.exception)
        assert "Traceback" not in result.output
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def secret_hashes(self, client_id: str) -> set[str]:
        """The stored secret hashes of an NHI."""
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return set(
                    conn.execute(
                        select(Credential.secret_hash)
                        .join(Nhi, Nhi.id == Credential.nhi_id)
                        .where(Nhi.client_id == client_id, Credential.secret_hash.is_not(None))
                    ).scalars()
                )
        finally:
            engine.dispose()

    def credentials(self, client_id: str) -> list[dict[str, Any]]:
        creds: list[dict[str, Any]] = self.json("nhi", "show", client_id)["credentials"]
        return creds

    def write_json(self, name: str, data: Any) -> Path:
        path = self.workdir / name
        path.write_text(json.dumps(data))
        return path


def _clean_environment(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    for name in list(os.environ):
        if name.startswith("STS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(workdir)  # no config/sts.toml here


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_cli(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cli]:
    """The CLI on an empty database, on SQLite and on PostgreSQL (a database of its own)."""
    _clean_environment(monkeypatch, tmp_path)
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cli.db'}"
    else:
        url = fresh_postgres(f"{PG_DB}_cli")
    yield Cli(url, tmp_path / "keys", tmp_path)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The CLI on a migrated SQLite registry."""
    _clean_environment(monkeypatch, tmp_path)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    return Cli(url, tmp_path / "keys", tmp_path)


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def create(cli: Cli, name: str = "web", *extra: str) -> dict[str, Any]:
    created: dict[str, Any] = cli.json("nhi", "create", name, "--kind", "agent", *extra)
    return created


# -- the whole administrative flow, on both backends ----------------------------------------


def test_cli_when_admin_flow_then_every_step_succeeds(any_cli: Cli) -> None:
    cli = any_cli
    assert cli.json("db", "upgrade") == {"revision": head()}
    assert cli.json("db", "upgrade") == {"revision": head()}

    key = cli.json("keys", "generate")
    assert key["alg"] == "ES256" and KID.match(key["kid"])
    assert [k["status"] for k in cli.json("keys", "list")["items"]] == ["signing"]

    created = create(
        cli, "web", "--owner", "o", "--scope", "a b", "--resource", "https://x.test/api"
    )
    assert set(created) == {"client_id", "client_secret", "sub", "kind"}
    assert created["client_id"] == "web" and created["sub"] == "web"
    assert created["kind"] == "agent"
    secret = created["client_secret"]
    assert secret.startswith("sts_") and len(secret) >= 40

    shown = cli.json("nhi", "show", "web")
    assert shown["scope"] == "a b" and shown["owner"] == "o"
    assert shown["resources"] == ["https://x.test/api"]
    assert shown["grants"] == ["client_credentials", TOKEN_EXCHANGE]
    listed = cli.json("nhi", "list")
    assert listed["total"] == 1 and [i["client_id"] for i in listed["items"]] == ["web"]

    assert cli.json("nhi", "disable", "web", "--reason", "r")["status"] == "disabled"
    assert cli.json("nhi", "enable", "web")["status"] == "active"

    rotated = cli.json("nhi", "secret", "rotate", "web")
    assert rotated["client_secret"] != secret
    assert [c["status"] for c in cli.credentials("web")] == ["active", "active"]

    jwks = cli.write_json("idp.json", KeyPair("idp-1").jwks)
    added = cli.json(
        "issuer", "add", "https://idp.example.test", "--jwks", str(jwks), "--audience", "sts"
    )
    assert added["issuer"] == "https://idp.example.test" and added["kids"] == ["idp-1"]
    assert cli.json("issuer", "list")["items"] == [added]

    cli.run("nhi", "create", "web", "--kind", "agent", code=2)


# -- db ---------------------------------------------------------------------------------------


def test_db_upgrade_when_not_json_then_names_the_revision(tmp_path, monkeypatch):
    _clean_environment(monkeypatch, tmp_path)
    cli = Cli(f"sqlite:///{tmp_path / 'new.db'}", tmp_path / "keys", tmp_path)
    assert cli.run("db", "upgrade").stdout == f"database at revision {head()}\n"


def test_cli_when_database_unreachable_then_one_line_error_exit_1(tmp_path, monkeypatch):
    _clean_environment(monkeypatch, tmp_path)
    cli = Cli("postgresql+psycopg://nobody:pw@127.0.0.1:1/none", tmp_path / "keys", tmp_path)
    for args in (("db", "upgrade"), ("nhi", "list")):
        result = cli.run(*args, code=1)
        assert result.stderr.startswith("Error: database error: ")
        assert len(result.stderr.strip().splitlines()) == 1
        assert "pw" not in result.stderr


def test_cli_when_schema_not_migrated_then_database_error(tmp_path, monkeypatch):
    _clean_environment(monkeypatch, tmp_path)
    cli = Cli(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path / "keys", tmp_path)
    assert "database error" in cli.run("nhi", "list", code=1).stderr


# -- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_keys_generate_when_alg_then_key_file_of_that_alg(cli: Cli, alg: str) -> None:
    key = cli.json("keys", "generate", "--alg", alg)
    assert set(key) == {"kid", "alg", "created_at", "status", "signs_at"}
    # The directory's first key: nothing could sign before it, so it signs at once.
    assert (key["status"], key["signs_at"]) == ("signing", key["created_at"])
    assert key["alg"] == alg and KID.match(key["kid"]) and key["kid"].split("-")[1] == alg
    pem = cli.keys_dir / f"{key['kid']}.pem"
    assert pem.stat().st_mode & 0o777 == 0o600
    assert abs(key["created_at"] - time.time()) < 60
    assert "PRIVATE KEY" not in cli.run("keys", "list", "--json").stdout


def test_keys_generate_when_unknown_alg_then_usage_error(cli: Cli) -> None:
    assert "HS256" in cli.run("keys", "generate", "--alg", "HS256", code=2).stderr


def test_keys_generate_when_signing_alg_setting_then_it_is_the_default(cli, monkeypatch):
    monkeypatch.setenv("STS_SIGNING_ALG", "EdDSA")
    assert cli.json("keys", "generate")["alg"] == "EdDSA"


def test_keys_list_when_rotated_then_staged_signing_published_and_retired(cli: Cli) -> None:
    now = int(time.time())
    oldest = generate_key(cli.keys_dir, "ES256", now=now - 20_000)
    older = generate_key(cli.keys_dir, "RS256", now=now - 10_000)
    current = generate_key(cli.keys_dir, "ES256", now=now - 1_000)
    newest = cli.json("keys", "generate", "--alg", "EdDSA")
    assert (newest["status"], newest["signs_at"]) == ("staged", newest["created_at"] + 600)
    listed = cli.json("keys", "list")["items"]
    retire_after = 3600 + 30  # max_token_ttl + leeway
    assert [(k["kid"], k["status"], k["signs_at"], k["retires_at"]) for k in listed] == [
        # Published at once, signing once every verifier can have fetched it.
        (newest["kid"], "staged", newest["created_at"] + 600, None),
        (current.kid, "signing", current.created_at + 600, newest["signs_at"] + retire_after),
        # Published until every token it signed has expired: its successor's activation plus
        # max_token_ttl + leeway.
        (older.kid, "published", older.created_at + 600, current.created_at + 600 + retire_after),
        (oldest.kid, "retired", oldest.created_at, older.created_at + 600 + retire_after),
    ]
    human = cli.run("keys", "list").stdout.splitlines()
    assert [line.split()[3:] for line in human] == [
        ["staged", "signs", "from", iso(newest["created_at"] + 600)],
        ["signing"],
        ["published", "until", iso(current.created_at + 600 + retire_after)],
        ["retired"],
    ]


def test_keys_generate_when_production_then_key_directory_ready_for_nhi_create(cli, monkeypatch):
    monkeypatch.setenv("STS_ENV", "production")
    monkeypatch.setenv("STS_ALLOW_SQLITE_IN_PRODUCTION", "true")
    monkeypatch.setenv("STS_ISSUER", "https://sts.example.test")
    assert (
        "credential hashing key missing"
        in cli.run("nhi", "create", "web", "--kind", "agent", code=1).stderr
    )
    cli.json("keys", "generate")
    assert (cli.keys_dir / HASH_KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert create(cli)["client_secret"]
    before = (cli.keys_dir / HASH_KEY_FILE).read_bytes()
    cli.json("keys", "generate")
    assert (cli.keys_dir / HASH_KEY_FILE).read_bytes() == before  # never replaced


def test_keys_list_when_no_key_directory_then_error(cli: Cli) -> None:
    assert "key directory does not exist" in cli.run("keys", "list", code=1).stderr


# -- nhi --------------------------------------------------------------------------------------


def test_nhi_create_when_secret_then_only_its_hash_is_stored(cli: Cli) -> None:
    secret = create(cli)["client_secret"]
    hasher = SecretHasher(load_hash_key(cli.keys_dir, create=False))
    assert cli.secret_hashes("web") == {hasher.hash(secret)}
    assert (cli.keys_dir / HASH_KEY_FILE).stat().st_mode & 0o777 == 0o600


def test_nhi_create_when_human_output_then_secret_shown_once_with_warning(cli: Cli) -> None:
    out = cli.run("nhi", "create", "web", "--kind", "service").stdout
    assert out.startswith("client_id:     web\nclient_secret: sts_")
    assert "shown only once" in out


def test_nhi_create_when_sub_and_grant_then_recorded(cli: Cli) -> None:
    created = create(cli, "job", "--sub", "spiffe://example.test/job", "--grant", "token-exchange")
    assert created["sub"] == "spiffe://example.test/job"
    assert cli.json("nhi", "show", "job")["grants"] == [TOKEN_EXCHANGE]


def test_nhi_create_when_jwks_then_no_secret_created(cli: Cli) -> None:
    jwks = cli.write_json("client.json", KeyPair("c-1").jwks)
    created = cli.json("nhi", "create", "pk", "--kind", "workload", "--jwks", str(jwks))
    assert created == {"client_id": "pk", "client_secret": None, "sub": "pk", "kind": "workload"}
    [cred] = cli.credentials("pk")
    assert cred["type"] == "jwks" and cred["kids"] == ["c-1"]
    assert cli.secret_hashes("pk") == set()
    assert (
        "client_secret"
        not in cli.run("nhi", "create", "pk2", "--kind", "workload", "--jwks", str(jwks)).stdout
    )


def test_nhi_create_when_jwks_uri_then_no_secret_created(cli: Cli) -> None:
    created = create(cli, "pk", "--jwks-uri", "https://pk.example.test/jwks.json")
    assert created["client_secret"] is None
    [cred] = cli.credentials("pk")
    assert cred["type"] == "jwks_uri" and cred["jwks_uri"] == "https://pk.example.test/jwks.json"


def test_nhi_create_when_jwks_holds_private_key_then_refused(cli: Cli) -> None:
    pair = KeyPair("c-1")
    jwks = pair.jwks
    jwks["keys"][0]["d"] = "c2VjcmV0"
    path = cli.write_json("private.json", jwks)
    result = cli.run("nhi", "create", "pk", "--kind", "workload", "--jwks", str(path), code=2)
    assert "public keys only" in result.stderr
    cli.run("nhi", "show", "pk", code=2)


def test_nhi_create_when_duplicate_name_then_exit_2_with_message(cli: Cli) -> None:
    create(cli)
    result = cli.run("nhi", "create", "web", "--kind", "service", code=2)
    assert result.stderr == "error (conflict): an NHI with this name exists with other attributes\n"
    assert result.stdout == ""
    assert cli.json("nhi", "list")["total"] == 1


def test_nhi_create_when_sub_taken_then_exit_2(cli: Cli) -> None:
    create(cli)
    assert (
        "conflict"
        in cli.run("nhi", "create", "other", "--kind", "agent", "--sub", "web", code=2).stderr
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("web", "--kind", "robot"), "Invalid value for '--kind'"),
        (("web",), "Missing option '--kind'"),
        (("bad name", "--kind", "agent"), "name must be"),
        (("-web", "--kind", "agent"), "No such option"),
        (("w" * 129, "--kind", "agent"), "name must be"),
        (("web", "--kind", "agent", "--scope", 'a"b'), "scope must be"),
        (("web", "--kind", "agent", "--scope", "a  b"), "scope must be"),
        (("web", "--kind", "agent", "--grant", "password"), "unknown grant"),
        (("web", "--kind", "agent", "--resource", "not a uri"), "resource"),
        (("web", "--kind", "agent", "--resource", "https://x.test/#f"), "resource"),
        (("web", "--kind", "agent", "--jwks-uri", "ftp://x.test/jwks"), "jwks_uri"),
    ],
)
def test_nhi_create_when_bad_input_then_exit_2_and_nothing_created(cli, args, message):
    result = cli.run("nhi", "create", *args, "--json", code=2)
    assert message in result.stderr
    assert result.stdout == ""
    assert cli.json("nhi", "list")["total"] == 0


def test_nhi_show_when_json_then_never_secret_nor_hash(cli: Cli) -> None:
    secret = create(cli)["client_secret"]
    cli.json("nhi", "secret", "rotate", "web")
    hashes = cli.secret_hashes("web")
    assert len(hashes) == 2
    for args in (
        ("nhi", "show", "web"),
        ("nhi", "show", "web", "--json"),
        ("nhi", "list"),
        ("nhi", "list", "--json"),
    ):
        out = cli.run(*args).stdout
        assert secret not in out and not any(h in out for h in hashes)
        assert "hmac-sha256" not in out and "sts_" not in out
    shown = cli.json("nhi", "show", "web")
    assert set(shown) == {
        "client_id",
        "kind",
        "sub",
        "owner",
        "status",
        "status_reason",
        "scope",
        "grants",
        "resources",
        "credentials",
        "created_at",
    }
    assert all("secret_hash" not in c for c in shown["credentials"])


def test_nhi_show_when_unknown_then_exit_2_not_found(cli: Cli) -> None:
    assert (
        cli.run("nhi", "show", "nobody", code=2).stderr
        == "error (not_found): no NHI named 'nobody'\n"
    )


def test_nhi_list_when_filtered_and_paged_then_matching_items(cli: Cli) -> None:
    for name, kind in (("a", "agent"), ("b", "service"), ("c", "agent")):
        cli.json("nhi", "create", name, "--kind", kind)
    cli.json("nhi", "disable", "c", "--reason", "r")
    agents = cli.json("nhi", "list", "--kind", "agent")
    assert agents["total"] == 2 and [i["client_id"] for i in agents["items"]] == ["a", "c"]
    active = cli.json("nhi", "list", "--status", "active")
    assert [i["client_id"] for i in active["items"]] == ["a", "b"]
    page = cli.json("nhi", "list", "--limit", "1", "--offset", "1")
    assert page["total"] == 3 and [i["client_id"] for i in page["items"]] == ["b"]
    assert cli.run("nhi", "list").stdout.splitlines()[-1] == "(3 of 3)"


def test_nhi_disable_when_reason_then_disabled_and_enable_restores(cli: Cli) -> None:
    create(cli)
    disabled = cli.json("nhi", "disable", "web", "--reason", "key leaked")
    assert (disabled["status"], disabled["status_reason"]) == ("disabled", "key leaked")
    assert cli.json("nhi", "show", "web")["status"] == "disabled"
    assert cli.run("nhi", "enable", "web").stdout == "web enabled\n"
    shown = cli.json("nhi", "show", "web")
    assert (shown["status"], shown["status_reason"]) == ("active", "")


def test_nhi_disable_when_no_reason_then_refused(cli: Cli) -> None:
    create(cli)
    cli.run("nhi", "disable", "web", code=2)
    assert "reason is required" in cli.run("nhi", "disable", "web", "--reason", " ", code=2).stderr
    assert cli.json("nhi", "show", "web")["status"] == "active"


def test_nhi_disable_when_unknown_then_exit_2(cli: Cli) -> None:
    assert "not_found" in cli.run("nhi", "disable", "nobody", "--reason", "r", code=2).stderr


def test_nhi_secret_rotate_when_grace_then_old_secret_expires_later(cli: Cli) -> None:
    first = create(cli)["client_secret"]
    before = int(time.time())
    rotated = cli.json("nhi", "secret", "rotate", "web", "--grace", "600")
    assert set(rotated) == {"client_id", "credential_id", "client_secret", "grace"}
    assert rotated["client_id"] == "web" and rotated["grace"] == 600
    assert rotated["client_secret"] != first
    by_id = {c["id"]: c for c in cli.credentials("web")}
    new = by_id.pop(rotated["credential_id"])
    [old] = by_id.values()
    assert new["status"] == "active" and new["expires_at"] is None
    assert old["status"] == "active" and before + 600 <= old["expires_at"] <= time.time() + 600
    hasher = SecretHasher(load_hash_key(cli.keys_dir, create=False))
    assert cli.secret_hashes("web") == {hasher.hash(first), hasher.hash(rotated["client_secret"])}


def test_nhi_secret_rotate_when_grace_zero_then_old_secret_revoked(cli: Cli) -> None:
    create(cli)
    rotated = cli.json("nhi", "secret", "rotate", "web", "--grace", "0")
    statuses = {c["id"]: c["status"] for c in cli.credentials("web")}
    assert statuses.pop(rotated["credential_id"]) == "active"
    assert list(statuses.values()) == ["revoked"]


def test_nhi_secret_rotate_when_unknown_then_exit_2(cli: Cli) -> None:
    assert "not_found" in cli.run("nhi", "secret", "rotate", "nobody", code=2).stderr


# -- issuer -----------------------------------------------------------------------------------


def test_issuer_add_when_jwks_file_then_listed(cli: Cli) -> None:
    jwks = cli.write_json("idp.json", KeyPair("idp-1").jwks)
    added = cli.json(
        "issuer",
        "add",
        "https://idp.example.test",
        "--jwks",
        str(jwks),
        "--audience",
        "sts",
        "--audience",
        "api",
        "--alg",
        "ES256",
        "--scope-mode",
        "cap",
    )
    assert {k: v for k, v in added.items() if k != "created_at"} == {
        "issuer": "https://idp.example.test",
        "jwks_uri": None,
        "kids": ["idp-1"],
        "algorithms": ["ES256"],
        "audiences": ["sts", "api"],
        "scope_mode": "cap",
        "status": "active",
    }
    uri = cli.json(
        "issuer",
        "add",
        "https://other.example.test",
        "--jwks-uri",
        "https://other.example.test/jwks",
    )
    assert uri["jwks_uri"] == "https://other.example.test/jwks" and uri["audiences"] == []
    assert cli.json("issuer", "list")["items"] == [added, uri]
    assert cli.run("issuer", "list").stdout == (
        "https://idp.example.test  active  inline JWKS\n"
        "https://other.example.test  active  https://other.example.test/jwks\n"
    )


def test_issuer_add_when_jwks_holds_private_key_then_refused(cli: Cli) -> None:
    jwks = KeyPair("idp-1").jwks
    jwks["keys"][0]["d"] = "c2VjcmV0"
    path = cli.write_json("private.json", jwks)
    result = cli.run(
        "issuer",
        "add",
        "https://idp.example.test",
        "--jwks",
        str(path),
        "--audience",
        "sts",
        code=2,
    )
    assert "public keys only" in result.stderr
    assert cli.json("issuer", "list")["items"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("https://idp.example.test",), "exactly one of"),
        (("https://idp.example.test", "--jwks-uri", "http//x"), "jwks_uri"),
        (("https://idp.example.test", "--jwks-uri", "https://x.test/j", "--alg", "HS256"), "HS256"),
        (("idp", "--jwks-uri", "https://x.test/j"), "absolute URI"),
    ],
)
def test_issuer_add_when_bad_input_then_exit_2(cli: Cli, args, message) -> None:
    assert message in cli.run("issuer", "add", *args, code=2).stderr
    assert cli.json("issuer", "list")["items"] == []


def test_issuer_add_when_not_json_file_then_exit_2(cli: Cli) -> None:
    path = cli.workdir / "idp.json"
    path.write_text("not json")
    assert (
        "not JSON"
        in cli.run("issuer", "add", "https://idp.example.test", "--jwks", str(path), code=2).stderr
    )


def test_issuer_add_when_repeated_then_same_answer_and_other_settings_exit_2(cli: Cli) -> None:
    args = ("issuer", "add", "https://idp.example.test", "--jwks-uri", "https://x.test/j")
    first = cli.json(*args)
    assert cli.json(*args) == first  # idempotent, as the admin API's 200
    assert cli.run(*args).stdout.endswith("already trusted with these settings: nothing changed\n")
    other = cli.run(*args[:-1], "https://y.test/j", code=2)
    assert other.stderr == (
        "error (conflict): this issuer is already trusted with other settings\n"
    )
    assert cli.json("issuer", "list")["items"] == [first]


# -- serve (what `make run` runs) -------------------------------------------------------------


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replaces the blocking servers with a recorder of what they would serve: the issuer the
    workers would read from the environment, and the server's own settings."""
    calls: list[dict[str, Any]] = []
    monkeypatch.delenv("STS_ISSUER", raising=False)  # serve sets it for its workers: undone

    class Recorder:
        def __init__(self, settings: Settings, host: str, port: int) -> None:
            self.call = {"server": "granian", "host": host, "port": port,
                         "workers": workers_for(settings)}  # fmt: skip

        def serve(self) -> None:
            app = create_app(Settings.load())
            metadata = app.test_client().get("/.well-known/oauth-authorization-server").json
            calls.append({"issuer": metadata["issuer"], **self.call})

    def run(app: Flask, **kwargs: Any) -> None:
        metadata = app.test_client().get("/.well-known/oauth-authorization-server").json
        calls.append({"issuer": metadata["issuer"], "server": "werkzeug", **kwargs})

    monkeypatch.setattr(sts.web.server, "production_server", Recorder)
    monkeypatch.setattr(Flask, "run", run)
    return calls


@pytest.mark.parametrize("how", ["--demo", "STS_DEMO_REGISTRY"])
def test_serve_when_demo_then_migrated_seeded_and_issuer_follows_port(
    tmp_path, monkeypatch, served, how
):
    _clean_environment(monkeypatch, tmp_path)
    cli = Cli(f"sqlite:///{tmp_path / 'var' / 'sts.db'}", tmp_path / "keys", tmp_path)
    args = ["serve", "--port", "8123"]
    if how == "--demo":
        args.append("--demo")
    else:
        monkeypatch.setenv("STS_DEMO_REGISTRY", "true")
    out = cli.run(*args).stdout
    assert "secrets in var/demo-credentials.json" in out
    assert "Chain STS http://127.0.0.1:8123 listening on http://127.0.0.1:8123 (1 worker)" in out
    assert served == [
        {"issuer": "http://127.0.0.1:8123", "server": "granian", "host": "127.0.0.1",
         "port": 8123, "workers": 1}
    ]  # fmt: skip
    saved = tmp_path / "var" / "demo-credentials.json"
    assert saved.stat().st_mode & 0o777 == 0o600
    secrets = json.loads(saved.read_text())
    assert sorted(secrets) == ["agent", "data", "tool", "web"]
    assert not any(secret in out for secret in secrets.values())
    # A second start reuses the registry and keeps the saved secrets.
    cli.run(*args)
    assert json.loads(saved.read_text()) == secrets
    assert cli.json("nhi", "list")["total"] == 4


def test_serve_when_dev_server_then_werkzeug_threaded_with_path_only_log(
    tmp_path, monkeypatch, served
):
    _clean_environment(monkeypatch, tmp_path)
    cli = Cli(f"sqlite:///{tmp_path / 'sts.db'}", tmp_path / "keys", tmp_path)
    out = cli.run("serve", "--port", "8124", "--dev-server").stdout
    assert "listening on http://127.0.0.1:8124 (development server)" in out
    assert served == [
        {"issuer": "http://127.0.0.1:8124", "server": "werkzeug", "host": "127.0.0.1",
         "port": 8124, "threaded": True, "request_handler": PathOnlyRequestHandler}
    ]  # fmt: skip


def test_serve_when_postgresql_then_two_workers_per_cpu_unless_set(tmp_path, monkeypatch, served):
    _clean_environment(monkeypatch, tmp_path)
    cli = Cli(f"sqlite:///{tmp_path / 'sts.db'}", tmp_path / "keys", tmp_path)
    monkeypatch.setenv("STS_HTTP_WORKERS", "3")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    ran = cli.run("serve", "--port", "8125")
    assert "(3 workers)" in ran.stdout
    # Several workers without a metrics directory: /metrics would count one; say so.
    assert "set PROMETHEUS_MULTIPROC_DIR" in ran.stderr
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert "PROMETHEUS_MULTIPROC_DIR" not in cli.run("serve", "--port", "8125").stderr
    assert served[-1]["workers"] == 3
    cpus = len(os.sched_getaffinity(0))
    assert workers_for(Settings(database_url="postgresql+psycopg://h/db")) == 2 * cpus
    assert workers_for(Settings(database_url="sqlite:///x.db")) == 1


def test_serve_when_demo_in_production_then_refused(tmp_path, monkeypatch, served):
    _clean_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("STS_ENV", "production")
    monkeypatch.setenv("STS_ALLOW_SQLITE_IN_PRODUCTION", "true")
    monkeypatch.setenv("STS_ISSUER", "https://sts.example.test")
    cli = Cli(f"sqlite:///{tmp_path / 'sts.db'}", tmp_path / "keys", tmp_path)
    assert "development only" in cli.run("serve", "--demo", code=1).stderr
    assert served == []
