"""Bulk loader for the scale scenario: 1,000,000 NHIs, 100,000 rules, 10,000,000 lineage rows.

PostgreSQL ``COPY`` in large chunks with the secondary indexes of the big tables dropped and
rebuilt afterwards (from the schema's own definitions, so the schema ends exactly as migrated),
with a progress bar per table. The rows are synthetic but shaped like real ones: NHIs of
every kind, rules with targets, and lineage rows forming chains of up to five hops in
transactions of their own, a tenth of them revoked.
"""

from __future__ import annotations

import io
import json
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from sqlalchemy import Index, Table
from sqlalchemy.schema import CreateIndex
from tqdm import tqdm

from sts.store.db import create_engine
from sts.store.models import DelegationRule, IssuedToken, Nhi, RuleTarget

NHIS = 1_000_000
RULES = 100_000
LINEAGE = 10_000_000
CHUNK = 100_000
KINDS = ("service", "agent", "workload")


def _copy(
    conn: psycopg.Connection[Any],
    table: str,
    columns: list[str],
    rows: Callable[[int, int], Iterator[str]],
    total: int,
) -> None:
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with tqdm(total=total, unit="row", unit_scale=True, desc=table) as bar:
        for start in range(0, total, CHUNK):
            count = min(CHUNK, total - start)
            buffer = io.StringIO()
            buffer.writelines(rows(start, count))
            with conn.cursor().copy(sql) as copy:
                copy.write(buffer.getvalue())
            bar.update(count)


def _secondary_indexes(table: Table) -> list[Index]:
    return list(table.indexes)


def seed_large(url: str, nhis: int = NHIS, rules: int = RULES, lineage: int = LINEAGE) -> None:
    engine = create_engine(url)
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    now = int(time.time())
    rng = random.Random(8693)
    big = [Nhi.__table__, IssuedToken.__table__, DelegationRule.__table__, RuleTarget.__table__]
    indexes = [ix for table in big for ix in _secondary_indexes(table)]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        for ix in indexes:
            conn.execute(f'DROP INDEX IF EXISTS "{ix.name}"')
        base = conn.execute("SELECT coalesce(max(id), 0) FROM nhi").fetchone()
        first_id = int(base[0]) + 1 if base else 1

        def nhi_rows(start: int, count: int) -> Iterator[str]:
            for i in range(start, start + count):
                name = f"bulk-{i}"
                yield (
                    f"{first_id + i}\t{name}\t{KINDS[i % 3]}\tspiffe://bulk/{name}\tbulk\t"
                    f"active\t\tread write\tclient_credentials\t{now}\t{now}\n"
                )

        _copy(
            conn,
            "nhi",
            [
                "id",
                "client_id",
                "kind",
                "sub",
                "owner",
                "status",
                "status_reason",
                "scopes",
                "grants",
                "created_at",
                "updated_at",
            ],
            nhi_rows,
            nhis,
        )
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('nhi', 'id'), (SELECT max(id) FROM nhi))"
        )

        def rule_rows(start: int, count: int) -> Iterator[str]:
            for i in range(start, start + count):
                actor = first_id + rng.randrange(nhis)
                yield (f"bulkrule_{i}\t{actor}\tany\t\t\\N\tread\t\\N\t\\N\t\\N\tenabled\t{now}\n")

        _copy(
            conn,
            "delegation_rule",
            [
                "id",
                "actor_id",
                "subject_type",
                "subject_value",
                "upstream_id",
                "scopes",
                "max_depth",
                "max_ttl",
                "expires_at",
                "status",
                "created_at",
            ],
            rule_rows,
            rules,
        )

        def target_rows(start: int, count: int) -> Iterator[str]:
            for i in range(start, start + count):
                yield f"bulkrule_{i}\t{first_id + rng.randrange(nhis)}\n"

        _copy(conn, "rule_target", ["rule_id", "target_id"], target_rows, rules)

        def lineage_rows(start: int, count: int) -> Iterator[str]:
            i = start
            while i < start + count:
                hops = min(rng.randint(1, 5), start + count - i)
                txn = f"bulktxn{i}"
                chain: list[str] = []
                parent = "\\N"
                revoked = rng.random() < 0.1
                for depth in range(hops):
                    jti = txn if depth == 0 else f"bulk{i}"
                    actor = first_id + rng.randrange(nhis)
                    if depth:
                        chain.insert(0, f"spiffe://bulk/bulk-{actor - first_id}")
                    expires = now - 86_400 + rng.randrange(172_800)
                    rev = f"{now}\t1" if revoked else "\\N\t\\N"
                    yield (
                        f"{jti}\t{parent}\t{txn}\texchange\talice-{i % 50_000}\t"
                        f"https://idp.bench.test\t{actor}\tbulk\t\\N\tbulk\tread\t\\N\t"
                        f"{json.dumps(chain)}\t{depth}\t{now}\t{expires}\t{rev}\n"
                    )
                    parent = jti
                    i += 1

        _copy(
            conn,
            "issued_token",
            [
                "jti",
                "parent_jti",
                "txn",
                "grant_type",
                "subject",
                "subject_issuer",
                "actor_id",
                "client_id",
                "credential_id",
                "target",
                "scope",
                "rule_id",
                "chain",
                "depth",
                "issued_at",
                "expires_at",
                "revoked_at",
                "revocation_id",
            ],
            lineage_rows,
            lineage,
        )
        for ix in tqdm(indexes, desc="indexes"):
            conn.execute(str(CreateIndex(ix).compile(dialect=engine.dialect)))
        for table in ("nhi", "delegation_rule", "rule_target", "issued_token"):
            conn.execute(f"ANALYZE {table}")
    engine.dispose()
