"""``sts serve`` logs each request's path, never its query string: a token or a secret a client
put in a query string never reaches the log (DESIGN §9), under Granian (the default) and under
the development server (``--dev-server``) alike."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

STS = [sys.executable, "-c", "from sts.cli import main; main()"]
SECRET = "secret-value"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class DevServer:
    def __init__(self, workdir: Path, options: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "serve.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("STS_")}
        env.update({"STS_DATABASE_URL": f"sqlite:///{workdir / 'sts.db'}",
                    "STS_KEYS_DIR": str(workdir / "keys")})  # fmt: skip
        with self.log.open("wb") as out:
            self.process = subprocess.Popen([*STS, "serve", "--port", str(self.port), *options],
                                            cwd=workdir, env=env, stdout=out,
                                            stderr=subprocess.STDOUT)  # fmt: skip

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"sts serve did not start:\n{self.log.read_text()}")
            time.sleep(0.1)

    def stop(self) -> str:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=20)
        return self.log.read_text()


@pytest.fixture(params=[[], ["--dev-server"]], ids=["granian", "werkzeug"])
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DevServer]:
    served = DevServer(tmp_path, request.param)
    try:
        served.wait_ready()
        yield served
    finally:
        if served.process.poll() is None:
            served.stop()


def request_lines(log: str, marker: str) -> list[str]:
    """The log's lines naming ``marker``, without the colours werkzeug gives status codes."""
    return [ANSI.sub("", line) for line in log.splitlines() if marker in line]


def test_serve_when_query_string_carries_a_secret_then_the_log_has_the_path_only(server):
    assert requests.get(f"{server.url}/healthz?token={SECRET}", timeout=5).status_code == 200
    resp = requests.get(f"{server.url}/no-such-path?client_secret={SECRET}#frag", timeout=5)
    assert resp.status_code == 404
    log = server.stop()
    assert SECRET not in log
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = [r for r in records if r.get("event") == "http.access"]
    if access:  # sts serve: the STS's JSON access records (method, path, status, request id)
        assert {(r["method"], r["path"], r["status"]) for r in access} >= {
            ("GET", "/healthz", 200), ("GET", "/no-such-path", 404)}  # fmt: skip
        assert all(r["request_id"] for r in access)
        return
    (healthz,) = [line for line in request_lines(log, '"GET /healthz') if "200" in line
                  and "HTTP/1.1" in line][-1:]  # fmt: skip
    assert '"GET /healthz HTTP/1.1" 200' in healthz
    (missing,) = request_lines(log, "/no-such-path")
    assert '"GET /no-such-path HTTP/1.1" 404' in missing


def test_serve_when_request_line_is_malformed_then_its_query_is_not_logged(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(f"GET /healthz?token={SECRET} HTTP/1.1 extra\r\n\r\n".encode())
        answer = sock.recv(4096)
    # Refused (werkzeug answers a request line it cannot parse without a status line).
    assert b" 400 " in answer.split(b"\r\n", 1)[0] or b"Error code: 400" in answer
    log = server.stop()
    assert SECRET not in log
