"""Migration 0005 on SQLite and PostgreSQL: a registry whose NHI names already collide is not
upgraded but named pair by pair (DESIGN §3); a clean one gains the rules' subject issuer, and
the rules it already holds keep matching NHI subjects only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import inspect, text

from sts.cli import main
from sts.store.db import create_engine
from sts.store.migrate import MigrationRefused, upgrade
from tests.test_migrations import empty_url, head

__all__ = ["empty_url"]  # fixture

NHI = (
    "INSERT INTO nhi (id, client_id, kind, sub, owner, status, status_reason, scopes, grants,"
    " created_at, updated_at) VALUES (:id, :name, 'service', :sub, '', 'active', '', '',"
    " 'client_credentials', 0, 0)"
)
RESOURCE = "INSERT INTO nhi_resource (uri, nhi_id) VALUES (:uri, :id)"
RULE = (
    "INSERT INTO delegation_rule (id, actor_id, subject_type, subject_value, scopes, status,"
    " created_at) VALUES ('rule_old', 1, 'sub', 'alice', 'a', 'enabled', 0)"
)
REFUSAL = (
    "the registry breaks the one namespace of NHI names (DESIGN §3): a name in aud, sub or act "
    "must mean one NHI. Change one name of each pair, then upgrade again (nothing was "
    "changed): "
    "NHI 'data2': resource URI 'https://legacy.example.test/' is the client_id of NHI "
    "'https://legacy.example.test/'; "
    "NHI 'mal': sub 'svc' is the client_id of NHI 'svc'; "
    "NHI 'shadow': sub 'https://data.example.test/api' is the resource URI of NHI 'data'"
)


def execute(url: str, *statements: tuple[str, dict[str, object]]) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for sql, params in statements:
                conn.execute(text(sql), params)
    finally:
        engine.dispose()


def revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def rule_columns(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns("delegation_rule")}
    finally:
        engine.dispose()


def seed_collisions(url: str) -> None:
    """At 0004: 'mal' took svc's name as its sub (svc's own sub is a SPIFFE ID), 'shadow'
    took a resource URI of 'data' as its sub, and a resource URI of 'data2' is the name of an
    NHI (written straight to the database: registration never allowed these)."""
    execute(
        url,
        (NHI, {"id": 1, "name": "svc", "sub": "spiffe://example.test/svc"}),
        (NHI, {"id": 2, "name": "mal", "sub": "svc"}),
        (NHI, {"id": 3, "name": "data", "sub": "data"}),
        (RESOURCE, {"uri": "https://data.example.test/api", "id": 3}),
        (NHI, {"id": 4, "name": "shadow", "sub": "https://data.example.test/api"}),
        (NHI, {"id": 5, "name": "https://legacy.example.test/", "sub": "legacy"}),
        (NHI, {"id": 6, "name": "data2", "sub": "data2"}),
        (RESOURCE, {"uri": "https://legacy.example.test/", "id": 6}),
    )


def test_upgrade_when_nhi_names_collide_then_refused_naming_each_pair(empty_url):
    upgrade(empty_url, "0004")
    seed_collisions(empty_url)
    with pytest.raises(MigrationRefused) as err:
        upgrade(empty_url)
    assert str(err.value) == REFUSAL
    assert revision(empty_url) == "0004"
    assert "subject_issuer" not in rule_columns(empty_url)


def test_upgrade_when_collisions_fixed_then_head(empty_url):
    upgrade(empty_url, "0004")
    seed_collisions(empty_url)
    with pytest.raises(MigrationRefused):
        upgrade(empty_url)
    execute(
        empty_url,
        ("UPDATE nhi SET sub = 'mal' WHERE id = 2", {}),
        ("UPDATE nhi SET sub = 'shadow' WHERE id = 4", {}),
        ("UPDATE nhi_resource SET nhi_id = 5 WHERE nhi_id = 6", {}),
    )
    assert upgrade(empty_url) == head()


def test_upgrade_when_rules_exist_then_they_have_no_subject_issuer(empty_url):
    upgrade(empty_url, "0004")
    execute(empty_url, (NHI, {"id": 1, "name": "web", "sub": "web"}), (RULE, {}))
    assert upgrade(empty_url) == head()
    engine = create_engine(empty_url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT subject_type, subject_value, subject_issuer FROM delegation_rule")
            ).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in found] == [("sub", "alice", None)]


def test_cli_db_upgrade_when_nhi_names_collide_then_exit_1_with_the_pairs(
    empty_url, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    for name in list(os.environ):
        if name.startswith("STS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    upgrade(empty_url, "0004")
    seed_collisions(empty_url)
    env = {"STS_DATABASE_URL": empty_url, "STS_KEYS_DIR": str(tmp_path / "keys")}
    result = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"Error: {REFUSAL}\n"
