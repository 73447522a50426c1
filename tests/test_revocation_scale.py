"""Revoking the root of a 100,000-token transaction takes a bounded number of statements:
no per-token round trip (issue: revocation at scale). Its time is measured by
bench/revoke_cascade.py, not here."""

from __future__ import annotations

from sqlalchemy import event, func, select

from bench.seed import seed_transaction
from sts.store.models import IssuedToken
from sts.store.revocation import revoke

SIZE = 100_000
MAX_STATEMENTS = 12


def test_revoke_root_when_100k_descendants_then_bounded_statements(engine, clock):
    with engine.begin() as conn:
        root, _ = seed_transaction(conn, size=SIZE, now=clock.now())
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with engine.begin() as conn:
            result = revoke(conn, "token", root, now=clock.now(), admin="scale-test")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert result.tokens == SIZE
    assert len(statements) <= MAX_STATEMENTS, statements
    with engine.connect() as conn:
        alive = conn.execute(
            select(func.count()).where(IssuedToken.txn == root, IssuedToken.revoked_at.is_(None))
        ).scalar_one()
    assert alive == 0
