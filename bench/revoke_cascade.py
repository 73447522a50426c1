"""Time revoking the root of one large transaction, on SQLite and/or PostgreSQL.

    .venv/bin/python bench/revoke_cascade.py [--size 100000] [--pg URL] [--sqlite]

Seeds a fresh database of its own (a temporary SQLite file; on PostgreSQL a database named
chain_sts_bench, created if missing, emptied before the run), then reports the number of SQL
statements and the wall time of the revoke.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy import event

from bench.seed import seed_transaction
from sts.store.db import create_engine
from sts.store.migrate import upgrade
from sts.store.models import Base
from sts.store.revocation import revoke


def run(url: str, size: int) -> dict[str, float]:
    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    now = int(time.time())
    started = time.perf_counter()
    with engine.begin() as conn:
        root, _ = seed_transaction(conn, size=size, now=now)
    seeded = time.perf_counter() - started
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    started = time.perf_counter()
    with engine.begin() as conn:
        result = revoke(conn, "token", root, now=now, admin="bench")
    elapsed = time.perf_counter() - started
    engine.dispose()
    return {
        "tokens": result.tokens,
        "statements": len(statements),
        "seed_s": round(seeded, 2),
        "revoke_s": round(elapsed, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print("sqlite", run(f"sqlite:///{Path(tmp) / 'bench.db'}", args.size))
    if not args.no_pg:
        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
            if not conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = 'chain_sts_bench'"
            ).fetchone():
                conn.execute('CREATE DATABASE "chain_sts_bench"')
        host = args.pg.split("://", 1)[1]
        print("postgresql", run(f"postgresql+psycopg://{host}/chain_sts_bench", args.size))


if __name__ == "__main__":
    main()
