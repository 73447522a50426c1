"""The production server (``sts serve``: Granian, RSGI, :mod:`sts.web.rsgi`): a request reaches
the application only once its body is complete, so clients that trickle bodies or sit idle
hold no worker, and the STS keeps answering (issue: two slow sockets stopped gunicorn's sync
workers). The adapter's own contract is tested without a server."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sts.web.rsgi import BufferedRequests

STS = [sys.executable, "-c", "from sts.cli import main; main()"]


# -- the adapter, without a server ------------------------------------------------------------


class Headers:
    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)


class Scope:
    proto = "http"
    http_version = "1.1"
    server = "127.0.0.1:8000"
    client = "192.0.2.7:50123"
    scheme = "http"

    def __init__(self, method: str, path: str, query: str, headers: list[tuple[str, str]]):
        self.method, self.path, self.query_string = method, path, query
        self.headers = Headers(headers)


class Protocol:
    """An RSGI HTTP protocol whose body arrives in ``chunks``, ``delay`` seconds apart."""

    def __init__(self, chunks: list[bytes], delay: float = 0.0) -> None:
        self.chunks, self.delay = chunks, delay
        self.answer: tuple[int, list[tuple[str, str]], bytes] | None = None
        self.read = 0

    def __aiter__(self) -> Protocol:
        return self

    async def __anext__(self) -> bytes:
        if not self.chunks:
            raise StopAsyncIteration
        await asyncio.sleep(self.delay)
        self.read += 1
        return self.chunks.pop(0)

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.answer = (status, headers, body)


def echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    seen = {k: v for k, v in environ.items() if k.isupper()}
    start_response("201 Created", [("Content-Type", "application/json")])
    return [json.dumps({"environ": seen, "body": body.decode("latin-1")}).encode()]


def call(app: BufferedRequests, scope: Scope, protocol: Protocol) -> tuple[int, Any, Any]:
    asyncio.run(app.__rsgi__(scope, protocol))
    assert protocol.answer is not None
    status, headers, body = protocol.answer
    return status, headers, json.loads(body)


def test_adapter_when_body_complete_then_the_application_sees_a_pep3333_environ():
    app = BufferedRequests(echo, max_body=100, body_timeout=5)
    scope = Scope("POST", "/a b/é", "x=1%202", [
        ("host", "sts.example"), ("content-type", "application/x-www-form-urlencoded"),
        ("content-length", "999"), ("x-a", "1"), ("x-a", "2"),
    ])  # fmt: skip
    status, headers, answer = call(app, scope, Protocol([b"grant_", b"type=x"]))
    assert status == 201
    assert headers == [("Content-Type", "application/json")]
    assert answer == {
        "environ": {
            "SCRIPT_NAME": "",
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/a b/é".encode().decode("latin-1"),
            "QUERY_STRING": "x=1%202",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "192.0.2.7",
            "CONTENT_LENGTH": "12",
            "CONTENT_TYPE": "application/x-www-form-urlencoded",
            "HTTP_HOST": "sts.example",
            "HTTP_X_A": "1,2",
        },
        "body": "grant_type=x",
    }


def test_adapter_when_body_too_slow_then_408_and_the_application_never_runs():
    ran: list[bool] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        ran.append(True)
        return []

    adapter = BufferedRequests(app, max_body=100, body_timeout=0.2)
    status, headers, answer = call(adapter, Scope("POST", "/token", "", []),
                                   Protocol([b"a", b"b", b"c"], delay=0.15))  # fmt: skip
    assert (status, answer) == (408, {
        "error": "invalid_request",
        "error_description": "The request body did not arrive in time.",
    })  # fmt: skip
    assert ("connection", "close") in headers
    assert ran == []


def test_adapter_when_body_oversized_then_reading_stops_one_byte_past_the_limit():
    app = BufferedRequests(echo, max_body=10, body_timeout=5)
    protocol = Protocol([b"0123456", b"789abc", b"never read"])
    status, _, answer = call(app, Scope("POST", "/token", "", []), protocol)
    assert status == 201
    assert answer["body"] == "0123456789a"  # the application refuses 11 bytes itself
    assert answer["environ"]["CONTENT_LENGTH"] == "11"
    assert protocol.read == 2


def test_adapter_when_application_raises_then_500_json_without_the_exception():
    def broken(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise RuntimeError("secret detail")

    status, _, answer = call(BufferedRequests(broken, 10, 5), Scope("GET", "/", "", []),
                             Protocol([]))  # fmt: skip
    assert (status, answer) == (500, {
        "error": "server_error", "error_description": "The server could not answer.",
    })  # fmt: skip


# -- a real server under slow clients --------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def granian(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STS_")}
    env.update({"STS_DATABASE_URL": f"sqlite:///{tmp_path / 'sts.db'}",
                "STS_KEYS_DIR": str(tmp_path / "keys"), "STS_HTTP_WORKERS": "1",
                "STS_HTTP_BODY_TIMEOUT": "2"})  # fmt: skip
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([*STS, "serve", "--demo", "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail((tmp_path / "serve.log").read_text())
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_serve_when_clients_trickle_bodies_and_sit_idle_then_requests_are_still_answered(
    granian, tmp_path
):
    port = int(granian.rsplit(":", 1)[1])
    slow = []
    for i in range(40):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if i % 2 == 0:  # announces a body it never finishes; the others send nothing at all
            sock.sendall(b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n"
                         b"Content-Type: application/x-www-form-urlencoded\r\n\r\na")  # fmt: skip
        slow.append(sock)
    try:
        secrets = json.loads((tmp_path / "var" / "demo-credentials.json").read_text())
        for _ in range(5):
            assert requests.get(granian + "/healthz", timeout=5).status_code == 200
            answer = requests.post(granian + "/token", timeout=5, auth=("web", secrets["web"]),
                                   data={"grant_type": "urn:example:unknown"})  # fmt: skip
            assert (answer.status_code, answer.json()["error"]) == (400, "unsupported_grant_type")
        # The trickling bodies are answered 408 once their time is up; nothing was run.
        slow[0].settimeout(5)
        assert slow[0].recv(4096).startswith(b"HTTP/1.1 408")
    finally:
        for sock in slow:
            sock.close()
