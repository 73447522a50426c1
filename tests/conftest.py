"""Shared fixtures: every test that touches the registry runs on SQLite and on PostgreSQL.

PostgreSQL: a database of the suite's own (``STS_TEST_PG_DB``, default ``chain_sts_test``) on
``STS_TEST_PG_URL`` (default the local server, user ``postgres``), created if missing,
migrated once per run, emptied after each test. Without a reachable server the PostgreSQL
variants are skipped — unless ``CI`` is set, where that is a failure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from sts import registry
from sts.clock import FrozenClock
from sts.migrate import upgrade
from sts.runtime import Runtime, build_runtime
from sts.settings import Settings
from sts.store.db import create_engine
from sts.store.models import Base
from sts.web import create_app

PG_URL = os.environ.get("STS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432")
PG_DB = os.environ.get("STS_TEST_PG_DB", "chain_sts_test")
ISSUER = "https://sts.example.test"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _pg_database_url() -> str | None:
    """Create the suite's database if needed; ``None`` if PostgreSQL is unreachable."""
    try:
        with psycopg.connect(f"{PG_URL}/postgres", autocommit=True, connect_timeout=3) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (PG_DB,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{PG_DB}"')
    except psycopg.OperationalError as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI but unreachable: {exc}")
        return None
    return f"postgresql+psycopg://{PG_URL.split('://', 1)[1]}/{PG_DB}"


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = _pg_database_url()
    if url is None:
        pytest.skip("PostgreSQL not reachable (set CI=true to make this a failure)")
    return url


@pytest.fixture(scope="session")
def _engines() -> Iterator[dict[str, Any]]:
    engines: dict[str, Any] = {}
    yield engines
    for engine in engines.values():
        engine.dispose()


def _engine_for(backend: str, request: pytest.FixtureRequest, engines: dict[str, Any]) -> Engine:
    if backend not in engines:
        if backend == "sqlite":
            path = request.getfixturevalue("tmp_path_factory").mktemp("sqlite") / "sts.db"
            url = f"sqlite:///{path}"
        else:
            url = request.getfixturevalue("pg_url")
        upgrade(url)
        engines[backend] = create_engine(url, hide_parameters=True)
    engine: Engine = engines[backend]
    return engine


def empty_database(engine: Engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, _engines: dict[str, Any]) -> Iterator[Engine]:
    """A migrated, empty registry, on each backend in turn."""
    eng = _engine_for(request.param, request, _engines)
    yield eng
    empty_database(eng)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(int(time.time()))


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def settings(engine: Engine, keys_dir: Path) -> Settings:
    return Settings(issuer=ISSUER, database_url=engine.url.render_as_string(hide_password=False),
                    keys_dir=keys_dir, leeway=30)


@pytest.fixture
def runtime(settings: Settings, clock: FrozenClock, engine: Engine) -> Runtime:
    return build_runtime(settings, clock, engine=engine)


@pytest.fixture
def app(settings: Settings, runtime: Runtime) -> Flask:
    return create_app(settings, rt=runtime)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass
class Registered:
    client_id: str
    secret: str | None
    sub: str


@pytest.fixture
def make_nhi(runtime: Runtime, clock: FrozenClock) -> Any:
    """Register an NHI through the service layer; returns its client_id and secret."""

    def make(name: str, kind: str = "service", **kwargs: Any) -> Registered:
        with runtime.engine.begin() as conn:
            view, secret = registry.create_nhi(conn, runtime.hasher, name=name, kind=kind,
                                               now=clock.now(), admin="test", **kwargs)
        return Registered(view.client_id, secret, view.sub)

    return make
