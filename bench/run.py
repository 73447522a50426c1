"""Chain STS benchmark: exchange throughput, latency and cost, against a floor and at scale.

    make bench                     # or: .venv/bin/python bench/run.py [options]

Starts PostgreSQL-backed Chain STS under gunicorn on loopback with production settings, seeds
a registry, and drives it with wrk (a compiled load generator, with bench/wrk/post.lua) for
each scenario; then the floor (bench/floor_app.py: verify one ES256 JWT, sign one) measured
the same way. Reports exchanges/s, p50/p90/p99 latency, errors, and CPU seconds per request
for the STS processes and for PostgreSQL; writes bench/results/results.json and
bench/results/RESULTS.md. ``--scale`` then seeds 1,000,000 NHIs, 100,000 rules and
10,000,000 lineage rows and measures the one-hop exchange again.

The database is one of the benchmark's own (``chain_sts_bench``), emptied before each run.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from sts.core.settings import Settings
from sts.web.server import workers_for

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results"
ISSUER = "https://sts.bench.test"
IDP = "https://idp.bench.test"
TE = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: The reference floor's server, as first measured: gunicorn with two sync workers.
REFERENCE_WORKERS = 2
#: Where the benchmark's PostgreSQL runs (``--pg`` changes it).
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLK_TCK


def descendants(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    kids = [int(p) for p in out.split()]
    return [pid, *[d for k in kids for d in descendants(k)]]


def postgres_pids(database: str = "chain_sts_bench") -> list[int]:
    """The server processes that work for the benchmark: its database's backends and the
    writers every commit waits on (not the backends of other databases on the server)."""
    query = (
        "SELECT pid FROM pg_stat_activity WHERE (datname = %s AND pid <> pg_backend_pid()) "
        "OR backend_type IN ('walwriter', 'checkpointer', 'background writer')"
    )
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        return [int(row[0]) for row in conn.execute(query, (database,))]


class KeyPair:
    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = ec.generate_private_key(ec.SECP256R1())

    @property
    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        jwk.update({"kid": self.kid, "alg": "ES256", "use": "sig"})
        return {"keys": [jwk]}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.private, algorithm="ES256", headers={"kid": self.kid})


@dataclass
class Scenario:
    name: str
    path: str
    bodies: list[str]
    headers: dict[str, str]


class Server:
    """An HTTP server process group serving a WSGI app on a free loopback port: Granian (the
    production server, ``sts serve``) or gunicorn with sync workers (the reference server the
    floor is measured on, so ratios compare like with like across changes)."""

    def __init__(
        self, app: str, env: dict[str, str], workers: int, kind: str = "granian", threads: int = 2
    ) -> None:
        self.port = free_port()
        if kind == "granian":
            # The STS under Granian as ``sts serve`` runs it (RSGI, bodies read before the
            # application runs); a plain WSGI app (the floor) under Granian's WSGI interface.
            rsgi = app == "sts.wsgi:app"
            command = [
                str(BIN / "granian"),
                "--interface",
                "rsgi" if rsgi else "wsgi",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                *([] if rsgi else ["--blocking-threads", str(threads)]),
                "--no-ws",
                "--log-level",
                "warning",
                "sts.rsgi:app" if rsgi else app,
            ]
        else:
            command = [
                str(BIN / "gunicorn"),
                "-c",
                str(ROOT / "config" / "gunicorn.conf.py"),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                "--access-logfile",
                "/dev/null",
                "--error-logfile",
                "-",
                app,
            ]
        self.proc = subprocess.Popen(
            command,
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1)
                return
            except OSError as exc:
                if getattr(exc, "code", None) == 404:  # the floor app has no health route
                    return
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        self.proc.stderr.read().decode() if self.proc.stderr else f"{kind} exited"
                    ) from None
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def pids(self) -> list[int]:
        return descendants(self.proc.pid)

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=30)


def wrk(
    url: str,
    scenario: Scenario,
    duration: int,
    connections: int,
    threads: int,
    pids: list[int],
    profile: Path | None = None,
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(scenario.bodies) + "\n")
        bodies = fh.name
    env = {
        **os.environ,
        "BENCH_BODIES": bodies,
        "BENCH_THREADS": str(threads),
        "BENCH_HEADERS": "|".join(f"{k}: {v}" for k, v in scenario.headers.items()),
    }
    sts_before, pg_before = cpu_seconds(pids), cpu_seconds(postgres_pids())
    spies = (
        [] if profile is None else [py_spy(pid, duration, profile, scenario.name) for pid in pids]
    )
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(ROOT / "bench" / "wrk" / "post.lua"),
            url + scenario.path,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sts_cpu = cpu_seconds(pids) - sts_before
    pg_cpu = cpu_seconds(postgres_pids()) - pg_before
    for spy in spies:
        spy.wait(timeout=60)
    os.unlink(bodies)
    result: dict[str, Any] = {"statuses": {}}
    for line in out.splitlines():
        parts = line.split()
        if not parts or parts[0] != "BENCH":
            continue
        if parts[1] == "status":
            result["statuses"][parts[2]] = int(parts[3])
        elif parts[1] == "latency_us":
            result.update(
                p50_ms=int(parts[2]) / 1000,
                p90_ms=int(parts[3]) / 1000,
                p99_ms=int(parts[4]) / 1000,
                max_ms=int(parts[5]) / 1000,
            )
        elif parts[1] == "requests":
            requests, seconds = int(parts[2]), int(parts[4]) / 1e6
            result.update(
                requests=requests,
                seconds=round(seconds, 2),
                rate=round(requests / seconds, 1),
                socket_errors=int(parts[6]),
            )
    ok = result["statuses"].get("200", 0)
    result["errors"] = result["requests"] - ok + result["socket_errors"]
    result["sts_cpu_ms_per_request"] = round(1000 * sts_cpu / max(result["requests"], 1), 3)
    result["pg_cpu_ms_per_request"] = round(1000 * pg_cpu / max(result["requests"], 1), 3)
    return result


class SlowClients:
    """Hostile or slow clients held open for as long as the block runs: ``trickle`` connections
    that announce a 10,000-byte body and send one byte of it every 3 s, and ``idle`` ones that
    connect and send nothing. Any the server closes is opened again at once, as an attacker
    would (a server that drops them only after a timeout has them back a moment later)."""

    def __init__(self, port: int, trickle: int = 50, idle: int = 50) -> None:
        self.port = port
        self.kinds = ["trickle"] * trickle + ["idle"] * idle
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, kind: str) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.setblocking(False)
        if kind == "trickle":
            sock.sendall(
                b"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: 10000\r\n\r\n"
            )
        return sock

    def _run(self) -> None:
        socks = [self._open(kind) for kind in self.kinds]
        last_byte = 0.0
        while not self._stop.wait(0.5):
            send = time.monotonic() - last_byte >= 3
            if send:
                last_byte = time.monotonic()
            for i, (kind, sock) in enumerate(zip(self.kinds, socks, strict=True)):
                try:
                    closed = sock.recv(4096, socket.MSG_PEEK) == b""
                except BlockingIOError:
                    closed = False
                except OSError:
                    closed = True
                try:
                    if not closed and send and kind == "trickle":
                        sock.send(b"a")
                except OSError:
                    closed = True
                if closed:
                    sock.close()
                    self.reconnects += 1
                    socks[i] = self._open(kind)
        for sock in socks:
            sock.close()

    def __enter__(self) -> SlowClients:
        self._thread.start()
        time.sleep(1)  # every connection open before the measurement starts
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class HealthProbe:
    """``GET /healthz`` every 200 ms while the block runs: the slowest answer, and how many
    took longer than a second or failed."""

    def __init__(self, url: str) -> None:
        self.url = url + "/healthz"
        self.max_ms = 0.0
        self.late = 0
        self.probes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            start = time.perf_counter()
            try:
                urllib.request.urlopen(self.url, timeout=5).read()
                elapsed = (time.perf_counter() - start) * 1000
            except OSError:
                elapsed = 5000.0
            self.probes += 1
            self.max_ms = max(self.max_ms, elapsed)
            self.late += elapsed > 1000

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def py_spy(pid: int, duration: int, into: Path, name: str) -> subprocess.Popen[bytes]:
    """Sample one worker for the scenario's duration: collapsed stacks, one file per worker
    (``py-spy`` samples from outside the process; the workers run unmodified)."""
    into.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            str(BIN / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(duration - 1, 1)),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(into / f"{name}.{pid}.txt"),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# -- registry -------------------------------------------------------------------------------
def bench_database(pg: str) -> str:
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        if not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = 'chain_sts_bench'"
        ).fetchone():
            conn.execute('CREATE DATABASE "chain_sts_bench"')
    return f"postgresql+psycopg://{pg.split('://', 1)[1]}/chain_sts_bench"


def reset(url: str) -> None:
    from sts.store.db import create_engine
    from sts.store.migrate import upgrade

    engine = create_engine(url)
    with engine.begin() as conn:  # the benchmark's own database: any earlier schema goes
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()
    upgrade(url)


def seed_small(url: str, keys_dir: Path, idp: KeyPair, tool_keys: KeyPair) -> dict[str, str]:
    """The benchmark registry: person IdP, web → agent → tool → data, and rules."""
    from sts.core.secrets import SecretHasher, load_hash_key
    from sts.services import issuers, nhis, rules
    from sts.store.admin import admin_store
    from sts.store.db import create_engine

    hasher = SecretHasher(load_hash_key(keys_dir, create=False))
    engine = create_engine(url)
    now = int(time.time())
    secrets_by_name: dict[str, str] = {}
    with admin_store(engine) as store:
        for name, kind in [
            ("web", "service"),
            ("agent", "agent"),
            ("data", "service"),
            ("introspector", "service"),
        ]:
            _, secret = nhis.create_nhi(
                store,
                hasher,
                name=name,
                kind=kind,
                now=now,
                admin="bench",
                scope="orders:read orders:write",
            )
            secrets_by_name[name] = secret or ""
        nhis.create_nhi(
            store,
            hasher,
            name="tool",
            kind="workload",
            now=now,
            admin="bench",
            scope="orders:read",
            jwks=tool_keys.jwks,
        )
        issuers.add_issuer(
            store,
            issuer=IDP,
            jwks=idp.jwks,
            audiences=["web"],
            algorithms=["ES256"],
            scope_mode="cap",
            now=now,
            admin="bench",
        )
        rules.create_rule(
            store,
            actor="web",
            targets=["agent"],
            scope="orders:read orders:write",
            subject=f"issuer:{IDP}",
            now=now,
            admin="bench",
        )
        rules.create_rule(
            store,
            actor="agent",
            targets=["tool"],
            scope="orders:read orders:write",
            upstream="web",
            now=now,
            admin="bench",
        )
        rules.create_rule(
            store,
            actor="tool",
            targets=["data"],
            scope="orders:read",
            upstream="agent",
            now=now,
            admin="bench",
        )
    engine.dispose()
    return secrets_by_name


def post(url: str, form: dict[str, str], auth: tuple[str, str] | None = None) -> dict[str, Any]:
    import base64

    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if auth:
        headers["Authorization"] = (
            "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        )
    req = urllib.request.Request(
        url,
        data=urllib.parse.urlencode(form).encode(),
        headers=headers,
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def basic(name: str, secret: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{secret}".encode()).decode()}


def scenarios(
    sts: str, creds: dict[str, str], idp: KeyPair, tool_keys: KeyPair, count: int
) -> list[Scenario]:
    now = int(time.time())
    person = idp.sign(
        {
            "iss": IDP,
            "sub": "alice",
            "aud": "web",
            "iat": now,
            "exp": now + 3600,
            "scope": "orders:read orders:write",
            "jti": secrets.token_hex(8),
        }
    )
    hop1 = post(
        sts + "/token",
        {"grant_type": TE, "subject_token": person, "subject_token_type": AT, "audience": "agent"},
        ("web", creds["web"]),
    )["access_token"]
    hop2 = post(
        sts + "/token",
        {"grant_type": TE, "subject_token": hop1, "subject_token_type": AT, "audience": "tool"},
        ("agent", creds["agent"]),
    )["access_token"]

    def assertion() -> str:
        return tool_keys.sign(
            {
                "iss": "tool",
                "sub": "tool",
                "aud": ISSUER + "/token",
                "iat": now,
                "exp": now + 3600,
                "jti": secrets.token_urlsafe(16),
            }
        )

    actor = post(
        sts + "/token",
        {
            "grant_type": "client_credentials",
            "scope": "orders:read",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(),
        },
    )["access_token"]
    q = urllib.parse.urlencode
    one_hop = q(
        {"grant_type": TE, "subject_token": person, "subject_token_type": AT, "audience": "agent"}
    )
    third = [
        q(
            {
                "grant_type": TE,
                "subject_token": hop2,
                "subject_token_type": AT,
                "actor_token": actor,
                "actor_token_type": AT,
                "audience": "data",
                "scope": "orders:read",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion(),
            }
        )
        for _ in range(count)
    ]
    cc = q({"grant_type": "client_credentials", "scope": "orders:read"})
    introspect = q({"token": hop1})
    return [
        Scenario("one_hop_exchange_basic", "/token", [one_hop], basic("web", creds["web"])),
        Scenario("third_hop_actor_token_private_key_jwt", "/token", third, {}),
        Scenario("client_credentials", "/token", [cc], basic("web", creds["web"])),
        Scenario("introspection", "/introspect", [introspect], basic("agent", creds["agent"])),
    ]


def floor_scenario() -> tuple[Path, Scenario]:
    key = ec.generate_private_key(ec.SECP256R1())
    path = Path(tempfile.mkdtemp()) / "floor.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    now = int(time.time())
    token = jwt.encode(
        {"sub": "alice", "aud": "floor", "iat": now, "exp": now + 3600}, key, algorithm="ES256"
    )
    body = urllib.parse.urlencode({"subject_token": token})
    return path, Scenario("floor_verify_and_sign", "/token", [body], {})


# -- main -----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432",
        help="PostgreSQL server URL (the bench creates its own database)",
    )
    parser.add_argument("--duration", type=int, default=15, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="STS worker processes (default: as sts serve picks; the reference floor has 2)",
    )
    parser.add_argument(
        "--server",
        choices=("granian", "gunicorn"),
        default="granian",
        help="the STS's HTTP server (the floor is measured on both)",
    )
    parser.add_argument("--http-threads", type=int, default=2, help="Granian threads per worker")
    parser.add_argument("--only", default=None, help="run only scenarios containing this")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="sample the workers with py-spy during each scenario (collapsed stacks into DIR)",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="also seed 1M NHIs, 100k rules, 10M lineage rows and re-measure",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")

    global PG_ADMIN_URL
    PG_ADMIN_URL = f"{args.pg}/postgres"
    url = bench_database(args.pg)
    reset(url)
    work = Path(tempfile.mkdtemp(prefix="sts-bench-"))
    keys_dir = work / "keys"
    subprocess.run(
        [str(BIN / "sts"), "keys", "generate"],
        check=True,
        capture_output=True,
        env={
            **os.environ,
            "STS_KEYS_DIR": str(keys_dir),
            "STS_ENV": "production",
            "STS_ISSUER": ISSUER,
            "STS_DATABASE_URL": url,
        },
    )
    idp, tool_keys = KeyPair("idp-1"), KeyPair("tool-1")
    creds = seed_small(url, keys_dir, idp, tool_keys)
    env = {
        "STS_ENV": "production",
        "STS_ISSUER": ISSUER,
        "STS_DATABASE_URL": url,
        "STS_KEYS_DIR": str(keys_dir),
        "STS_LOG_LEVEL": "WARNING",
        # wrk replays bodies prepared up front: the client assertions must outlive the run.
        "STS_CLIENT_ASSERTION_MAX_LIFETIME": "3600",
    }
    report: dict[str, Any] = {
        "machine": {"cores": os.cpu_count()},
        "settings": vars(args),
        "scenarios": {},
    }
    count = 2000 * args.duration
    if args.workers is None:
        args.workers = workers_for(Settings(database_url=url))
    server = Server("sts.wsgi:app", env, args.workers, args.server, args.http_threads)
    try:
        for scenario in scenarios(server.url, creds, idp, tool_keys, count):
            if args.only and args.only not in scenario.name:
                continue
            result = wrk(
                server.url,
                scenario,
                args.duration,
                args.connections,
                args.threads,
                server.pids(),
                args.profile,
            )
            report["scenarios"][scenario.name] = result
            print(scenario.name, json.dumps(result), flush=True)
        if args.only is None or "slow" in args.only:
            one_hop = scenarios(server.url, creds, idp, tool_keys, 1)[0]
            one_hop.name = "one_hop_under_slow_clients"
            with SlowClients(server.port) as slow, HealthProbe(server.url) as probe:
                result = wrk(
                    server.url,
                    one_hop,
                    args.duration,
                    args.connections,
                    args.threads,
                    server.pids(),
                )
            result.update(
                healthz_max_ms=round(probe.max_ms, 1),
                healthz_over_1s=probe.late,
                healthz_probes=probe.probes,
                slow_reconnects=slow.reconnects,
            )
            report["scenarios"][one_hop.name] = result
            print(one_hop.name, json.dumps(result), flush=True)
        if args.scale:
            from bench.scale import seed_large

            seed_large(url)
            one_hop = scenarios(server.url, creds, idp, tool_keys, 1)[0]
            one_hop.name = "one_hop_exchange_basic_at_scale"
            result = wrk(
                server.url, one_hop, args.duration, args.connections, args.threads, server.pids()
            )
            report["scenarios"][one_hop.name] = result
            print(one_hop.name, json.dumps(result), flush=True)
    finally:
        server.stop()
    # The floor on the reference server (gunicorn, sync workers), then on the STS's own.
    key_path, floor = floor_scenario()
    for kind, name, workers in (
        ("gunicorn", floor.name, REFERENCE_WORKERS),
        ("granian", floor.name + "_granian", args.workers),
    ):
        floor_server = Server(
            "bench.floor_app:app", {"BENCH_FLOOR_KEY": str(key_path)}, workers, kind
        )
        try:
            result = wrk(
                floor_server.url,
                floor,
                args.duration,
                args.connections,
                args.threads,
                floor_server.pids(),
                args.profile,
            )
            report["scenarios"][name] = result
            print(name, json.dumps(result), flush=True)
        finally:
            floor_server.stop()
    if args.only is None:  # a partial run must not replace the full results
        write_report(report)
    shutil.rmtree(work, ignore_errors=True)


def write_report(report: dict[str, Any]) -> None:
    runs = report["scenarios"]
    floor = runs.get("floor_verify_and_sign", {}).get("rate")
    one_hop = runs.get("one_hop_exchange_basic", {})
    if floor and one_hop:
        report["one_hop_vs_floor"] = round(one_hop["rate"] / floor, 3)
        ratios = {
            name: round(run["rate"] / floor, 3)
            for name, run in runs.items()
            if not name.startswith("floor")
        }
        report["vs_reference_floor"] = ratios
    own_floor = runs.get("floor_verify_and_sign_granian", {}).get("rate")
    if own_floor and one_hop:
        report["one_hop_vs_server_floor"] = round(one_hop["rate"] / own_floor, 3)
    slow = runs.get("one_hop_under_slow_clients")
    if slow and one_hop:
        report["slow_client_ratio"] = round(slow["rate"] / one_hop["rate"], 3)
    scaled = runs.get("one_hop_exchange_basic_at_scale")
    if scaled and one_hop:
        report["scale_p50_ratio"] = round(scaled["p50_ms"] / one_hop["p50_ms"], 3)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Chain STS benchmark results",
        "",
        f"{report['machine']['cores']} cores, PostgreSQL on the same machine, the STS on "
        f"{report['settings']['server']} with {report['settings']['workers']} workers, the "
        "reference floor on gunicorn sync workers, wrk with "
        f"{report['settings']['connections']} connections for "
        f"{report['settings']['duration']} s per scenario.",
        "",
        "| scenario | req/s | p50 ms | p90 ms | p99 ms | errors | STS CPU ms/req | "
        "PostgreSQL CPU ms/req |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in runs.items():
        lines.append(
            f"| {name} | {r['rate']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} "
            f"| {r['errors']} | {r['sts_cpu_ms_per_request']} | "
            f"{r['pg_cpu_ms_per_request']} |"
        )
    lines.append("")
    if "one_hop_vs_floor" in report:
        lines.append(
            f"One-hop exchange throughput is **{report['one_hop_vs_floor']}** of the reference "
            "floor (a bare endpoint that verifies one ES256 JWT and signs one, on gunicorn sync "
            "workers)"
            + (
                f" and **{report['one_hop_vs_server_floor']}** of the same floor on the STS's "
                "own server."
                if "one_hop_vs_server_floor" in report
                else "."
            )
        )
    if "slow_client_ratio" in report:
        slow = runs["one_hop_under_slow_clients"]
        lines.append(
            f"With 50 connections trickling bodies and 50 idle, one-hop keeps "
            f"**{report['slow_client_ratio']}** of its undisturbed rate; the slowest `/healthz` "
            f"answer took {slow['healthz_max_ms']} ms ({slow['healthz_over_1s']} of "
            f"{slow['healthz_probes']} over 1 s)."
        )
    if "scale_p50_ratio" in report:
        lines.append(
            f"At scale (1M NHIs, 100k rules, 10M lineage rows) the one-hop p50 is "
            f"**{report['scale_p50_ratio']}x** the small registry's."
        )
    (RESULTS / "RESULTS.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
