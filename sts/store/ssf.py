"""SSF streams, the revocation outbox and the SETs waiting for delivery, in SQL (DESIGN §11).

The outbox is written by :func:`enqueue`, which the revocation cascade calls in its own
transaction: one ``INSERT ... SELECT`` whatever the number of tokens revoked, a row per stream
that sees at least one of them. A stream sees a token addressed to its owner, or to an NHI
whose ``owner`` is that receiver, unless an administrator granted it every subject.

Delivery turns a stream's outbox rows into signed SETs (:func:`expand`, under the stream's
lock, in outbox order) and deletes each SET once the receiver took it: pushed with a 2xx, or
acknowledged after a poll. Which process pushes a stream is decided by a lease claimed with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL (:func:`claim_push`), so any number of workers can run
and each receiver still gets its events one at a time, in order.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from sqlalchemy import delete, exists, func, insert, literal, or_, select, update
from sqlalchemy.engine import Connection

from sts.core import ssf
from sts.store.models import IssuedToken, Nhi, Revocation, SsfEvent, SsfOutbox, SsfStream

__all__ = [
    "PendingSet",
    "StreamRow",
    "StreamStats",
    "claim_push",
    "enqueue",
    "expand",
]


@dataclass(frozen=True)
class StreamRow:
    id: str
    owner: str
    method: str
    endpoint_url: str | None
    authorization_header: str | None
    events_requested: tuple[str, ...]
    description: str
    status: str
    status_reason: str
    all_subjects: bool
    created_at: int
    next_attempt_at: int
    attempts: int
    last_error: str
    last_verification_at: int
    last_delivery_at: int | None
    delivered: int


@dataclass(frozen=True)
class PendingSet:
    id: int
    jti: str
    set_jwt: str
    created_at: int


@dataclass(frozen=True)
class StreamStats:
    stream: StreamRow
    #: Revocations not yet turned into SETs, and SETs not yet delivered.
    outbox: int
    pending: int
    #: The time of the oldest event the receiver has not taken yet (None: nothing waits).
    oldest: int | None


def _row(r: Any) -> StreamRow:
    return StreamRow(
        r.id,
        r.owner,
        r.method,
        r.endpoint_url,
        r.authorization_header,
        tuple(r.events_requested or ()),
        r.description,
        r.status,
        r.status_reason,
        bool(r.all_subjects),
        int(r.created_at),
        int(r.next_attempt_at),
        int(r.attempts),
        r.last_error,
        int(r.last_verification_at),
        None if r.last_delivery_at is None else int(r.last_delivery_at),
        int(r.delivered),
    )


def _visible() -> Any:
    """The tokens a stream (correlated as :class:`SsfStream`) sees."""
    owned = select(Nhi.client_id).where(Nhi.owner == SsfStream.owner).correlate_except(Nhi)
    return or_(
        SsfStream.all_subjects.is_(True),
        IssuedToken.target == SsfStream.owner,
        IssuedToken.target.in_(owned),
    )


# -- the outbox, written by the revocation ---------------------------------------------------
def enqueue(conn: Connection, revocation_id: int, initiator: str, now: int) -> None:
    """Note ``revocation_id`` for every live stream that sees one of the tokens it marked:
    one statement, in the revocation's transaction."""
    seen = exists().where(IssuedToken.revocation_id == revocation_id, _visible())
    conn.execute(
        insert(SsfOutbox).from_select(
            ["stream_id", "revocation_id", "initiator", "created_at"],
            select(SsfStream.id, literal(revocation_id), literal(initiator), literal(now))
            .where(
                SsfStream.status.in_(("enabled", "paused")),
                SsfStream.revocations.is_(True),
                seen,
            )
            .order_by(SsfStream.id),
        )
    )


# -- streams ---------------------------------------------------------------------------------
def create_stream(conn: Connection, owner: str, req: ssf.StreamRequest, now: int) -> StreamRow:
    stream_id = secrets.token_urlsafe(18)
    conn.execute(
        insert(SsfStream).values(
            id=stream_id,
            owner=owner,
            method=req.method,
            endpoint_url=req.endpoint_url,
            authorization_header=req.authorization_header,
            events_requested=list(req.events_requested),
            revocations=ssf.SESSION_REVOKED in req.events_requested,
            description=req.description,
            status="enabled",
            status_reason="",
            all_subjects=False,
            created_at=now,
            updated_at=now,
            lease_until=0,
            next_attempt_at=0,
            attempts=0,
            last_error="",
            last_verification_at=0,
            delivered=0,
        )
    )
    found = get_stream(conn, stream_id)
    assert found is not None
    return found


def get_stream(conn: Connection, stream_id: str, *, lock: bool = False) -> StreamRow | None:
    query = select(SsfStream).where(SsfStream.id == stream_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    return None if row is None else _row(row)


def streams(conn: Connection, owner: str | None = None) -> list[StreamRow]:
    query = select(SsfStream).order_by(SsfStream.created_at, SsfStream.id)
    if owner is not None:
        query = query.where(SsfStream.owner == owner)
    return [_row(r) for r in conn.execute(query)]


def replace_stream(conn: Connection, stream_id: str, req: ssf.StreamRequest, now: int) -> None:
    """A new configuration; a push stream held back by failures is tried again at once."""
    conn.execute(
        update(SsfStream)
        .where(SsfStream.id == stream_id)
        .values(
            method=req.method,
            endpoint_url=req.endpoint_url,
            authorization_header=req.authorization_header,
            events_requested=list(req.events_requested),
            revocations=ssf.SESSION_REVOKED in req.events_requested,
            description=req.description,
            updated_at=now,
            next_attempt_at=0,
            attempts=0,
        )
    )


def delete_stream(conn: Connection, stream_id: str) -> None:
    """The stream and everything waiting for it."""
    conn.execute(delete(SsfEvent).where(SsfEvent.stream_id == stream_id))
    conn.execute(delete(SsfOutbox).where(SsfOutbox.stream_id == stream_id))
    conn.execute(delete(SsfStream).where(SsfStream.id == stream_id))


def set_status(conn: Connection, stream_id: str, status: str, reason: str, now: int) -> None:
    """Enabled, paused (events are kept, not delivered) or disabled (none is kept: SSF 1.0
    §8.1.2, so what waits is dropped)."""
    conn.execute(
        update(SsfStream)
        .where(SsfStream.id == stream_id)
        .values(status=status, status_reason=reason, updated_at=now, next_attempt_at=0)
    )
    if status == "disabled":
        conn.execute(delete(SsfEvent).where(SsfEvent.stream_id == stream_id))
        conn.execute(delete(SsfOutbox).where(SsfOutbox.stream_id == stream_id))


def grant_all(conn: Connection, stream_id: str, granted: bool, now: int) -> None:
    conn.execute(
        update(SsfStream)
        .where(SsfStream.id == stream_id)
        .values(all_subjects=granted, updated_at=now)
    )


def note_verification(conn: Connection, stream_id: str, now: int) -> None:
    conn.execute(
        update(SsfStream).where(SsfStream.id == stream_id).values(last_verification_at=now)
    )


def add_event(conn: Connection, stream_id: str, jti: str, set_jwt: str, now: int) -> None:
    conn.execute(
        insert(SsfEvent).values(stream_id=stream_id, jti=jti, set_jwt=set_jwt, created_at=now)
    )


# -- outbox to SETs --------------------------------------------------------------------------
Signer = Callable[[dict[str, Any]], str]


def _chains(conn: Connection, stream: StreamRow, outbox: Any) -> Iterable[tuple[str, list[str]]]:
    """The tokens of one revocation the stream sees, by chain transaction, in a fixed order."""
    query = (
        select(IssuedToken.txn, IssuedToken.jti)
        .select_from(IssuedToken)
        .join(SsfStream, SsfStream.id == stream.id)
        .where(IssuedToken.revocation_id == outbox.revocation_id, _visible())
        .order_by(IssuedToken.txn, IssuedToken.jti)
    )
    rows = conn.execute(query)
    for txn, group in groupby(rows, key=lambda r: r.txn):
        yield txn, [r.jti for r in group]


def expand(
    conn: Connection,
    stream: StreamRow,
    *,
    issuer: str,
    sign: Signer,
    now: int,
    max_tokens: int,
    limit: int = 100,
) -> int:
    """Turn up to ``limit`` of the stream's outbox rows, oldest first, into signed SETs
    appended to its queue, and delete them; the number of SETs made. The caller holds the
    stream (its lock or its lease), so SETs are queued in revocation order."""
    rows = conn.execute(
        select(SsfOutbox, Revocation.reason)
        .join(Revocation, Revocation.id == SsfOutbox.revocation_id)
        .where(SsfOutbox.stream_id == stream.id)
        .order_by(SsfOutbox.id)
        .limit(limit)
    ).all()
    made: list[dict[str, Any]] = []
    for row in rows:
        for txn, jtis in _chains(conn, stream, row):
            for start in range(0, len(jtis), max_tokens):
                part = tuple(jtis[start : start + max_tokens])
                event = ssf.RevokedChain(
                    ssf.set_jti(stream.id, row.revocation_id, txn, start),
                    txn,
                    part,
                    int(row.created_at),
                    row.reason,
                    row.initiator,
                )
                claims = ssf.session_revoked_claims(issuer, stream.owner, event, now)
                made.append(
                    {
                        "stream_id": stream.id,
                        "jti": event.jti,
                        "set_jwt": sign(claims),
                        "created_at": int(row.created_at),
                    }
                )
    if made:
        conn.execute(insert(SsfEvent), made)
    if rows:
        conn.execute(delete(SsfOutbox).where(SsfOutbox.id.in_([r.id for r in rows])))
    return len(made)


def pending(conn: Connection, stream_id: str, limit: int) -> list[PendingSet]:
    rows = conn.execute(
        select(SsfEvent.id, SsfEvent.jti, SsfEvent.set_jwt, SsfEvent.created_at)
        .where(SsfEvent.stream_id == stream_id)
        .order_by(SsfEvent.id)
        .limit(limit)
    )
    return [PendingSet(int(r.id), r.jti, r.set_jwt, int(r.created_at)) for r in rows]


def has_more(conn: Connection, stream_id: str, after: int) -> bool:
    query = select(SsfEvent.id).where(SsfEvent.stream_id == stream_id, SsfEvent.id > after)
    return conn.execute(query.limit(1)).first() is not None or bool(
        conn.execute(select(SsfOutbox.id).where(SsfOutbox.stream_id == stream_id).limit(1)).first()
    )


def delivered(conn: Connection, stream_id: str, jtis: Sequence[str], now: int) -> int:
    """The receiver took these SETs: forget them; how many were still waiting."""
    if not jtis:
        return 0
    gone = conn.execute(
        delete(SsfEvent).where(SsfEvent.stream_id == stream_id, SsfEvent.jti.in_(list(jtis)))
    ).rowcount
    if gone:
        conn.execute(
            update(SsfStream)
            .where(SsfStream.id == stream_id)
            .values(
                delivered=SsfStream.delivered + gone,
                last_delivery_at=now,
                attempts=0,
                last_error="",
                next_attempt_at=0,
            )
        )
    return int(gone)


# -- the push worker's lease -----------------------------------------------------------------
def _has_work() -> Any:
    return or_(
        exists().where(SsfEvent.stream_id == SsfStream.id),
        exists().where(SsfOutbox.stream_id == SsfStream.id),
    )


def claim_push(conn: Connection, now: int, lease: int, skip: Sequence[str] = ()) -> str | None:
    """Take the lease of one enabled push stream with something to deliver and due (oldest
    first); its id, or None. Other workers skip a stream whose row is locked or leased."""
    query = (
        select(SsfStream.id)
        .where(
            SsfStream.method == ssf.PUSH,
            SsfStream.status == "enabled",
            SsfStream.lease_until <= now,
            SsfStream.next_attempt_at <= now,
            _has_work(),
        )
        .order_by(SsfStream.next_attempt_at, SsfStream.id)
        .limit(1)
    )
    if skip:
        query = query.where(SsfStream.id.not_in(list(skip)))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=SsfStream)
    stream_id = conn.execute(query).scalar()
    if stream_id is None:
        return None
    taken = conn.execute(
        update(SsfStream)
        .where(SsfStream.id == stream_id, SsfStream.lease_until <= now)
        .values(lease_until=now + lease)
    ).rowcount
    return str(stream_id) if taken else None


def renew(conn: Connection, stream_id: str, until: int) -> None:
    conn.execute(update(SsfStream).where(SsfStream.id == stream_id).values(lease_until=until))


def release(conn: Connection, stream_id: str) -> None:
    conn.execute(update(SsfStream).where(SsfStream.id == stream_id).values(lease_until=0))


def push_failed(
    conn: Connection, stream_id: str, now: int, error: str, backoff: Callable[[int], int]
) -> int:
    """Hold the stream back (its head SET first, in order) with exponential backoff; the
    time of the next attempt."""
    attempts = conn.execute(
        select(SsfStream.attempts).where(SsfStream.id == stream_id)
    ).scalar()  # None: the stream was deleted meanwhile
    retry_at = now + backoff(int(attempts or 0) + 1)
    conn.execute(
        update(SsfStream)
        .where(SsfStream.id == stream_id)
        .values(
            attempts=int(attempts or 0) + 1,
            next_attempt_at=retry_at,
            last_error=error[:500],
            lease_until=0,
        )
    )
    return retry_at


# -- what operators look at ------------------------------------------------------------------
def stats(conn: Connection, stream_id: str | None = None) -> list[StreamStats]:
    """Every stream (or one) with what waits for it: outbox rows, queued SETs, the oldest."""
    out = select(
        SsfOutbox.stream_id, func.count().label("n"), func.min(SsfOutbox.created_at).label("t")
    ).group_by(SsfOutbox.stream_id)
    queued = select(
        SsfEvent.stream_id, func.count().label("n"), func.min(SsfEvent.created_at).label("t")
    ).group_by(SsfEvent.stream_id)
    outbox = {r[0]: (int(r[1]), int(r[2])) for r in conn.execute(out)}
    events = {r[0]: (int(r[1]), int(r[2])) for r in conn.execute(queued)}
    result = []
    for stream in streams(conn):
        if stream_id is not None and stream.id != stream_id:
            continue
        o, e = outbox.get(stream.id), events.get(stream.id)
        times = [x[1] for x in (o, e) if x is not None]
        result.append(
            StreamStats(stream, o[0] if o else 0, e[0] if e else 0, min(times) if times else None)
        )
    return result
