"""Revoking the root of a 100,000-token transaction takes a fixed number of statements: no
per-token round trip (issue: revocation at scale), also when half of the tokens are reached
through an actor token. Its time is measured by bench/revoke_cascade.py, not here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, func, select, update

from bench.seed import seed_transaction
from sts.core import ssf
from sts.store.models import IssuedToken, SsfOutbox
from sts.store.revocation import Result, revoke
from sts.store.ssf import create_stream, grant_all

SIZE = 100_000
#: The seed lookup, the revocation row, the marking walk, the SSF outbox and the audit event;
#: SQLite counts its BEGIN, PostgreSQL the turn (advisory lock) and the transaction roots' lock.
STATEMENTS = {"sqlite": 6, "postgresql": 7}


def revoke_counting(engine: Any, root: str, now: int) -> tuple[Result, list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with engine.begin() as conn:
            result = revoke(conn, "token", root, now=now, admin="scale-test")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return result, statements


def alive(engine: Any) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).where(IssuedToken.revoked_at.is_(None))).scalar_one()
        )


def test_revoke_root_when_100k_descendants_then_fixed_statements(engine, clock):
    with engine.begin() as conn:
        root, _ = seed_transaction(conn, size=SIZE, now=clock.now())

    result, statements = revoke_counting(engine, root, clock.now())

    assert (result.tokens, result.transactions) == (SIZE, 1)
    assert len(statements) == STATEMENTS[engine.dialect.name], statements
    assert alive(engine) == 0


def test_revoke_root_when_half_reached_through_an_actor_token_then_same_statements(engine, clock):
    with engine.begin() as conn:
        root, jtis = seed_transaction(conn, size=SIZE // 2, now=clock.now())
        other, _ = seed_transaction(conn, size=SIZE // 2, now=clock.now())
        # The other transaction's root was minted with one of the first's leaves as its actor
        # token: everything in it derives from the first root.
        conn.execute(update(IssuedToken).where(IssuedToken.jti == other).values(actor_jti=jtis[-1]))

    result, statements = revoke_counting(engine, root, clock.now())

    assert (result.tokens, result.transactions) == (SIZE, 2)
    assert len(statements) == STATEMENTS[engine.dialect.name], statements
    assert alive(engine) == 0


def test_revoke_root_when_streams_listen_then_same_statements_and_one_outbox_row_each(
    engine, clock
):
    with engine.begin() as conn:
        root, _ = seed_transaction(conn, size=SIZE, now=clock.now())
        for owner in ("rs-1", "rs-2"):
            stream = create_stream(
                conn, owner, ssf.StreamRequest(ssf.POLL, None, None, ssf.EVENTS_SUPPORTED, ""), 0
            )
            grant_all(conn, stream.id, True, 0)

    result, statements = revoke_counting(engine, root, clock.now())

    assert result.tokens == SIZE
    assert len(statements) == STATEMENTS[engine.dialect.name], statements
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(SsfOutbox)).scalar_one() == 2
