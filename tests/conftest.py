"""Shared fixtures: every test that touches the registry runs on SQLite and on PostgreSQL.

PostgreSQL: a database of the suite's own (``STS_TEST_PG_DB``, default ``chain_sts_test``) on
``STS_TEST_PG_URL`` (default the local server, user ``postgres``), created if missing,
migrated once per run, emptied after each test. Without a reachable server the PostgreSQL
variants are skipped — unless ``CI`` is set, where that is a failure.
"""

from __future__ import annotations

import logging
import os
import re
import time
import traceback
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

from sts.core.clock import FrozenClock
from sts.core.settings import Settings
from sts.runtime import Runtime, build_runtime
from sts.services import nhis
from sts.store.admin import admin_store
from sts.store.db import create_engine
from sts.store.migrate import upgrade
from sts.store.models import Base
from sts.web import create_app

PG_URL = os.environ.get("STS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432")
PG_DB = os.environ.get("STS_TEST_PG_DB", "chain_sts_test")
ISSUER = "https://sts.example.test"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _pg_database_url() -> str | None:
    """Create the suite's database if needed and empty it, so every session migrates from
    scratch (a schema left by another revision history never passes for the current one);
    ``None`` if PostgreSQL is unreachable. Only this database of the suite's own is reset."""
    try:
        with psycopg.connect(f"{PG_URL}/postgres", autocommit=True, connect_timeout=3) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (PG_DB,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{PG_DB}"')
        with psycopg.connect(f"{PG_URL}/{PG_DB}", autocommit=True, connect_timeout=3) as conn:
            conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
            conn.execute("CREATE SCHEMA public")
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
        with admin_store(runtime.engine) as store:
            view, secret = nhis.create_nhi(store, runtime.hasher, name=name, kind=kind,
                                               now=clock.now(), admin="test", **kwargs)
        return Registered(view.client_id, secret, view.sub)

    return make


# -- log hygiene: no token or secret in any record of the ``sts`` loggers --------------------
#
# A handler on the ``sts`` logger sees every record as the call site made it, before the JSON
# formatter's redaction (DESIGN §9: structured logs never contain tokens or secrets; redaction
# is only the second line of defence). Records that carry something shaped like a JWT, a
# client secret, a PEM block or a client assertion fail the whole session at its end.

LEAK_PATTERNS = {
    "jwt": re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"),
    "client secret": re.compile(r"sts_[A-Za-z0-9_-]{20,}"),
    "pem": re.compile(r"-----BEGIN [A-Z0-9 ]+-----"),
    "client assertion": re.compile(r"client_assertion['\"]?\s*[:=]\s*['\"]?[A-Za-z0-9_.-]{8,}"),
}
_RECORD_BASICS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def record_texts(record: logging.LogRecord) -> list[str]:
    """Everything a formatter could write: the message, every extra, the exception."""
    try:
        texts = [record.getMessage()]
    except Exception:  # a call site with bad %-args still must not hide a leak
        texts = [str(record.msg), repr(record.args)]
    texts += [f"{key}={value!r}" for key, value in record.__dict__.items()
              if key not in _RECORD_BASICS]
    if record.exc_info and record.exc_info[1] is not None:
        texts.append("".join(traceback.format_exception(*record.exc_info)))
    if record.exc_text:
        texts.append(record.exc_text)
    if record.stack_info:
        texts.append(record.stack_info)
    return texts


def leaks(record: logging.LogRecord) -> list[str]:
    """``kind: excerpt`` for each secret-shaped value in the record (empty when clean)."""
    found = []
    for chunk in record_texts(record):
        for kind, pattern in LEAK_PATTERNS.items():
            found += [f"{kind}: {m.group(0)[:60]}" for m in pattern.finditer(chunk)]
    return found


class LogHygiene(logging.Handler):
    """Checks every ``sts`` record; keeps the offending ones, and all records while a test
    listens (:meth:`listen`)."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.checked = 0
        self.offences: list[str] = []
        self._listeners: list[list[logging.LogRecord]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.checked += 1
        for listener in self._listeners:
            listener.append(record)
        found = leaks(record)
        if found:
            test = os.environ.get("PYTEST_CURRENT_TEST", "(outside a test)")
            self.offences.append(f"{test}: {record.name} {record.msg!r}: {'; '.join(found)}")

    def listen(self) -> list[logging.LogRecord]:
        records: list[logging.LogRecord] = []
        self._listeners.append(records)
        return records

    def stop(self, records: list[logging.LogRecord]) -> None:
        self._listeners.remove(records)


LOG_HYGIENE = LogHygiene()


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger("sts").addHandler(LOG_HYGIENE)
    logging.getLogger("chain_sts_client").addHandler(LOG_HYGIENE)  # the service SDK


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not LOG_HYGIENE.offences:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{len(LOG_HYGIENE.offences)} log record(s) of the sts loggers carry a token or "
             "secret (before redaction):", *LOG_HYGIENE.offences[:50]]
    if reporter is not None:
        reporter.write_sep("=", "log hygiene", red=True)
        for line in lines:
            reporter.write_line(line)
    else:
        print("\n".join(lines))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def sts_log_records() -> Iterator[list[logging.LogRecord]]:
    """Every record of the ``sts`` loggers emitted during the test, unredacted."""
    records = LOG_HYGIENE.listen()
    yield records
    LOG_HYGIENE.stop(records)
