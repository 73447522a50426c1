"""Time from a revocation returning to the last SSF receiver acknowledging it, on PostgreSQL.

    .venv/bin/python bench/ssf_lag.py [--pg URL] [--sizes 1,10000] [--receivers 1]

Seeds a database of its own (``chain_sts_bench_ssf``, created if missing, emptied before the
run), starts PUSH receivers on loopback (each answers 202 and counts the revoked jtis of the
SETs it gets) and a push delivery worker (``sts ssf deliver``'s loop, in a thread, polling
every 50 ms), then for each size revokes the root of a transaction of that many tokens and
waits until every receiver has every jti. Reports the revoke call's time and statement count
with and without streams registered, the delivery lag, and the number of SETs (HTTP requests)
per receiver.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import jwt
import psycopg
from sqlalchemy import event
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from sts.core.clock import SystemClock
from sts.core.keys import KeyStore, generate_key
from sts.core.settings import Settings
from sts.services import ssf as ssf_service
from sts.store.db import create_engine
from sts.store.migrate import upgrade
from sts.store.models import Base
from sts.store.revocation import revoke

ISSUER = "https://sts.bench.test"
DATABASE = "chain_sts_bench_ssf"


class Receiver:
    """An RFC 8935 endpoint counting the jtis it was told of (signatures are not checked:
    the tests do that; here only the time matters)."""

    def __init__(self) -> None:
        self.jtis: set[str] = set()
        self.sets = 0
        self.lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        if request.method == "POST":
            claims = jwt.decode(request.get_data(as_text=True), options={"verify_signature": False})
            sub = claims["sub_id"]
            found = sub.get("identifiers", [sub]) if sub["format"] == "aliases" else [sub]
            with self.lock:
                self.sets += 1
                self.jtis.update(s["jti"] for s in found if s.get("format") == "jwt_id")
        return Response(status=202)(environ, start_response)

    def has(self, jtis: set[str]) -> bool:
        with self.lock:
            return jtis <= self.jtis


def _database(pg: str) -> str:
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
    return f"postgresql+psycopg://{pg.split('://', 1)[1]}/{DATABASE}"


def _timed_revoke(engine: Any, root: str) -> tuple[float, int]:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    started = time.perf_counter()
    with engine.begin() as conn:
        revoke(conn, "token", root, now=int(time.time()), admin="bench")
    elapsed = time.perf_counter() - started
    event.remove(engine, "before_cursor_execute", count)
    return elapsed, len(statements)


def measure(pg: str, sizes: tuple[int, ...] = (1, 10_000), receivers: int = 1) -> dict[str, Any]:
    from bench.seed import seed_transaction

    url = _database(pg)
    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    keys_dir = Path(tempfile.mkdtemp(prefix="sts-bench-ssf-"))
    generate_key(keys_dir, "ES256")
    settings = Settings(
        issuer=ISSUER, database_url=url, keys_dir=keys_dir, ssf_allow_http_loopback=True
    )
    keys = KeyStore.for_settings(settings)
    results: dict[str, Any] = {}
    # Without streams first: what the revoke call costs on its own.
    baseline = {}
    for size in sizes:
        with engine.begin() as conn:
            root, _ = seed_transaction(conn, size=size, now=int(time.time()))
        baseline[size] = _timed_revoke(engine, root)
    sinks = [Receiver() for _ in range(receivers)]
    for n, sink in enumerate(sinks):
        with engine.begin() as conn:
            streams = ssf_service.Streams(conn, f"rs-{n}", settings, int(time.time()))
            config = streams.create(
                {"delivery": {"method": ssf_service.ssf.PUSH, "endpoint_url": sink.url}}
            )
            ssf_service.grant_all_subjects(
                conn, config["stream_id"], True, int(time.time()), "bench"
            )
    # The worker has an engine of its own: the statement count is the revoke call's only.
    worker_engine = create_engine(url)
    worker = ssf_service.PushWorker(worker_engine, settings, keys, SystemClock())
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop, 0.05), daemon=True)
    thread.start()
    try:
        for size in sizes:
            with engine.begin() as conn:
                root, jtis = seed_transaction(conn, size=size, now=int(time.time()))
            sets_before = [s.sets for s in sinks]
            revoke_s, statements = _timed_revoke(engine, root)
            returned = time.perf_counter()
            wanted = set(jtis)
            while not all(s.has(wanted) for s in sinks):
                if time.perf_counter() - returned > 300:
                    raise RuntimeError("receivers did not get every jti within 300 s")
                time.sleep(0.002)
            lag = time.perf_counter() - returned
            results[str(size)] = {
                "tokens": size,
                "revoke_s_without_streams": round(baseline[size][0], 4),
                "statements_without_streams": baseline[size][1],
                "revoke_s": round(revoke_s, 4),
                "statements": statements,
                "lag_to_last_ack_s": round(lag, 3),
                "sets_per_receiver": sinks[0].sets - sets_before[0],
                "receivers": receivers,
            }
    finally:
        stop.set()
        thread.join(5)
        for sink in sinks:
            sink.server.shutdown()
        engine.dispose()
        worker_engine.dispose()
    return {"set_max_tokens": dataclasses.asdict(settings)["ssf_set_max_tokens"], **results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--sizes", default="1,10000")
    parser.add_argument("--receivers", type=int, default=1)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    print(json.dumps(measure(args.pg, sizes, args.receivers), indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
