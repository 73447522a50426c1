"""A PostgreSQL server a test owns: its own data directory and port, started and stopped at
will (to take the database away mid-traffic), always removed afterwards.

PostgreSQL refuses to run as root, so when the tests run as root its commands run as the
``postgres`` OS user. Without PostgreSQL's server binaries the tests that need one are skipped
locally; with ``CI=true`` that is a failure.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.conftest import IN_CI

OS_USER = "postgres"


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    def __init__(self, bin_dir: Path, data_dir: Path, port: int) -> None:
        self.bin_dir, self.data_dir, self.port = bin_dir, data_dir, port
        self.as_root = os.geteuid() == 0

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", OS_USER, "--"] if self.as_root else []
        return subprocess.run([*prefix, str(self.bin_dir / tool), *args], capture_output=True,
                              text=True, timeout=60, check=True, cwd="/")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.data_dir / "server.log"),
                  "-o", options, "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "30", "stop")

    @property
    def running(self) -> bool:
        prefix = ["runuser", "-u", OS_USER, "--"] if self.as_root else []
        status = subprocess.run([*prefix, str(self.bin_dir / "pg_ctl"), "-D",
                                 str(self.data_dir), "status"], capture_output=True, cwd="/")
        return status.returncode == 0

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def own_postgres() -> Iterator[PostgresServer]:
    """A fresh server on a free port; stopped and its data directory removed on exit."""
    bin_dir = _bin_dir()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        if IN_CI:
            pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are required in CI")
        pytest.skip("PostgreSQL server binaries not installed (set CI=true to make this fail)")
    data_dir = Path(tempfile.mkdtemp(prefix="sts-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam(OS_USER)
        os.chown(data_dir, user.pw_uid, user.pw_gid)
    data_dir.chmod(0o700)
    server = PostgresServer(bin_dir, data_dir, _free_port())
    try:
        server.init()
        server.start()
        yield server
    finally:
        try:
            if server.running:
                server.stop("immediate")
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
