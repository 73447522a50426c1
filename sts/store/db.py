"""Engine construction and database-fault classification."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import create_engine as _create_engine
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import StaticPool

from sts.core import metrics


def normalize_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever driver the URL names (or omits)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        if database in ("", ":memory:"):
            kwargs.setdefault("poolclass", StaticPool)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = _create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        event.listen(engine, "before_cursor_execute", _count_statement)
        return engine
    kwargs.setdefault("pool_pre_ping", False)
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 5)
    kwargs.setdefault("pool_timeout", 5)
    kwargs.setdefault("connect_args", {"connect_timeout": 5})
    engine = _create_engine(url, **kwargs)
    event.listen(engine, "before_cursor_execute", _count_statement)
    return engine


def _count_statement(*_args: Any) -> None:
    metrics.DB_ROUND_TRIPS.labels("sqlalchemy").inc()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy own BEGIN (pysqlite's implicit transactions are off).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    # One writer at a time, decided at BEGIN: no upgrade deadlocks between readers.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def database_host(url: str) -> str:
    """Where the database is, for a log line: ``host:port`` (PostgreSQL) or ``sqlite``;
    never the user name or the password."""
    try:
        parsed = make_url(url)
    except Exception:
        return "unparsable URL"
    if parsed.get_backend_name() == "sqlite":
        return "sqlite"
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"


def is_database_error(exc: BaseException) -> bool:
    """An error the database or its driver raised (not a bug in our own code)."""
    return isinstance(exc, (DBAPIError, psycopg.Error))


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the database cannot serve now (answer 503, not 500): it is
    unreachable, or gave up on a statement (lock or statement timeout, cancellation). The hot
    path runs statements on the psycopg cursor itself, so its errors arrive unwrapped too."""
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)
