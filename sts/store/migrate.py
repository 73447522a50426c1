"""Run the Alembic migrations in ``migrations/`` against a database URL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from sts.store.db import create_engine, normalize_url


def _root() -> Path:
    """Where ``alembic.ini`` and ``migrations/`` are: beside the ``sts`` package in a source
    checkout, else the working directory (an installed wheel: the image runs in ``/app``)."""
    for candidate in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (candidate / "alembic.ini").is_file() and (candidate / "migrations").is_dir():
            return candidate
    return Path(__file__).resolve().parents[2]


ROOT = _root()
MIGRATIONS = ROOT / "migrations"


class MigrationRefused(Exception):
    """The registry holds data a migration cannot carry forward; the message says what an
    operator must fix before upgrading again. Nothing was changed."""


def alembic_config(url: str, connection: Connection | None = None) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url: str, revision: str = "head") -> str:
    """Migrate to ``revision`` and return the revision the database is at."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(url, conn), revision)
            current = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    return current or "base"
