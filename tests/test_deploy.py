"""The production entry points load: ``config/gunicorn.conf.py``, ``sts.wsgi``, and the two
together in a real gunicorn process."""

from __future__ import annotations

import importlib
import json
import os
import re
import runpy
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from gunicorn.config import Config
from gunicorn.glogging import Logger

from sts.core.keys import KeyFileError, generate_key
from sts.core.settings import SettingsError
from sts.store.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = ROOT / "config" / "gunicorn.conf.py"
GUNICORN = Path(sys.executable).parent / "gunicorn"


@pytest.fixture
def sts_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Only the ``STS_*`` variables a test sets, a working directory without a config file."""
    for name in list(os.environ):
        if name.startswith(("STS_", "GUNICORN_")) or name == "WEB_CONCURRENCY":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    env = {
        "STS_DATABASE_URL": f"sqlite:///{tmp_path / 'sts.db'}",
        "STS_KEYS_DIR": str(tmp_path / "keys"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def gunicorn_conf() -> dict[str, Any]:
    return runpy.run_path(str(GUNICORN_CONF))


def import_wsgi() -> Any:
    sys.modules.pop("sts.wsgi", None)
    try:
        return importlib.import_module("sts.wsgi")
    finally:
        sys.modules.pop("sts.wsgi", None)


# -- config/gunicorn.conf.py ----------------------------------------------------------------


def test_gunicorn_conf_when_no_env_then_two_sync_workers_on_localhost(sts_env):
    conf = gunicorn_conf()
    assert conf["wsgi_app"] == "sts.wsgi:app"
    assert conf["workers"] == 2 and conf["worker_class"] == "sync"
    assert conf["bind"] == ["127.0.0.1:8000"]
    assert conf["keepalive"] > 0 and conf["accesslog"] == "-"


def test_gunicorn_conf_when_env_then_bind_and_workers_follow(sts_env, monkeypatch):
    monkeypatch.setenv("GUNICORN_BIND", "0.0.0.0:9000")
    monkeypatch.setenv("GUNICORN_WORKERS", "4")
    monkeypatch.setenv("GUNICORN_KEEPALIVE", "75")
    conf = gunicorn_conf()
    assert conf["bind"] == ["0.0.0.0:9000"]
    assert conf["workers"] == 4 and conf["keepalive"] == 75
    monkeypatch.delenv("GUNICORN_WORKERS")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert gunicorn_conf()["workers"] == 3


def test_gunicorn_conf_when_loaded_by_gunicorn_then_every_name_is_a_setting(sts_env):
    cfg = Config()
    names = {k: v for k, v in gunicorn_conf().items() if not k.startswith("_") and k != "os"}
    for name, value in names.items():
        assert name in cfg.settings, f"{name} is not a gunicorn setting (silently ignored)"
        cfg.set(name, value)  # validates the value
    assert cfg.workers == 2 and cfg.wsgi_app == "sts.wsgi:app"


def test_gunicorn_access_log_when_query_string_then_not_logged(sts_env):
    cfg = Config()
    cfg.set("access_log_format", gunicorn_conf()["access_log_format"])
    environ = {
        "REQUEST_METHOD": "POST",
        "RAW_URI": "/token?access_token=eyJsecret",
        "PATH_INFO": "/token",
        "QUERY_STRING": "access_token=eyJsecret",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.1",
        "HTTP_REFERER": "https://app.test/cb?code=eyJsecret",
        "HTTP_USER_AGENT": "curl/8",
    }
    resp = SimpleNamespace(status="400 Bad Request", sent=42, headers=[("X-Request-Id", "r1")])
    atoms = Logger(cfg).atoms(resp, [], environ, timedelta(milliseconds=3))
    line = cfg.access_log_format % atoms
    assert line == '10.0.0.1 "POST /token HTTP/1.1" 400 42 3ms "curl/8" request_id=r1'


# -- sts.wsgi -------------------------------------------------------------------------------


def test_wsgi_when_imported_then_app_serves_metadata(sts_env):
    app = import_wsgi().app
    assert isinstance(app, Flask)
    resp = app.test_client().get("/.well-known/oauth-authorization-server")
    assert resp.status_code == 200
    assert resp.json["token_endpoint"] == "http://127.0.0.1:8000/token"


def test_wsgi_when_bad_setting_then_import_fails_naming_it(sts_env, monkeypatch):
    monkeypatch.setenv("STS_TOKEN_TTL", "soon")
    with pytest.raises(SettingsError, match="STS_TOKEN_TTL"):
        import_wsgi()


def test_wsgi_when_production_without_keys_then_import_fails(sts_env, monkeypatch):
    monkeypatch.setenv("STS_ENV", "production")
    monkeypatch.setenv("STS_ALLOW_SQLITE_IN_PRODUCTION", "true")
    monkeypatch.setenv("STS_ISSUER", "https://sts.example.test")
    with pytest.raises(KeyFileError, match="key directory does not exist"):
        import_wsgi()


# -- both, in a real gunicorn ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def gunicorn(sts_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """gunicorn with the production config on a free port; yields its URL and log file."""
    keys = Path(sts_env["STS_KEYS_DIR"])
    generate_key(keys, "ES256")
    upgrade(sts_env["STS_DATABASE_URL"])
    port = free_port()
    env = {
        **os.environ,
        "STS_ENV": "production",
        "STS_ALLOW_SQLITE_IN_PRODUCTION": "true",
        "STS_ISSUER": "https://sts.example.test",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
    }
    (keys / "credential-hash.key").write_text("ab" * 32)
    (keys / "credential-hash.key").chmod(0o600)
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(GUNICORN), "-c", str(GUNICORN_CONF)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=1).close()  # noqa: S310
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not start:\n{log.read_text()}")
                time.sleep(0.2)
        yield url, log
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_gunicorn_when_started_with_conf_then_serves_ready_sts(gunicorn):
    url, log = gunicorn
    with urllib.request.urlopen(f"{url}/readyz?probe=abc123", timeout=5) as resp:  # noqa: S310
        assert resp.status == 200
    with urllib.request.urlopen(  # noqa: S310
        f"{url}/.well-known/oauth-authorization-server", timeout=5
    ) as resp:
        assert b'"issuer": "https://sts.example.test"' in resp.read()
    time.sleep(0.3)  # the access log line is written after the response
    text = log.read_text()
    records = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    (access,) = [r for r in records if r.get("event") == "http.access" and r["path"] == "/readyz"]
    assert {k: access[k] for k in ("logger", "method", "path", "status")} == {
        "logger": "gunicorn.access", "method": "GET", "path": "/readyz", "status": 200}  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", access["time"])
    assert re.fullmatch(r"[0-9a-f]{16}", access["request_id"])
    assert access["duration_ms"] >= 0
    assert "abc123" not in text
    assert text.count("Booting worker") == 2


def test_gunicorn_when_keys_missing_then_one_line_before_any_worker(sts_env, tmp_path):
    env = {
        **os.environ,
        "STS_ENV": "production",
        "STS_ALLOW_SQLITE_IN_PRODUCTION": "true",
        "STS_ISSUER": "https://sts.example.test",
        "GUNICORN_BIND": f"127.0.0.1:{free_port()}",
    }
    done = subprocess.run(
        [str(GUNICORN), "-c", str(GUNICORN_CONF)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("Chain STS cannot start: ")
    assert "key directory does not exist" in lines[-1]
    assert "Traceback" not in done.stderr and "Booting worker" not in done.stderr


# -- the image --------------------------------------------------------------------------------
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "config" / "docker-entrypoint.sh"


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def test_dockerfile_when_read_then_wheels_non_root_healthcheck_and_waiting_entrypoint():
    steps = instructions()
    froms = [rest for word, rest in steps if word == "FROM"]
    assert len(froms) == 2 and froms[0].endswith(" AS build")  # multi-stage
    build = steps[: [w for w, _ in steps].index("FROM", 1)]
    run = steps[len(build):]  # fmt: skip
    assert any(w == "RUN" and "pip wheel --wheel-dir /wheels" in r for w, r in build)
    assert ("COPY", "--from=build /wheels /wheels") in run
    installs = [r for w, r in run if w == "RUN" and "pip install" in r]
    assert installs == ["pip install --no-index --find-links /wheels chain-sts && rm -rf /wheels"]
    assert not any(w == "COPY" and r.startswith("sts ") for w, r in run)  # no sources
    users = [r for w, r in run if w == "USER"]
    assert users == ["sts"]
    order = [w for w, _ in run]
    assert order.index("USER") < order.index("ENTRYPOINT")
    assert any(w == "HEALTHCHECK" and "/healthz" in r for w, r in run)
    assert ("ENTRYPOINT", '["/app/config/docker-entrypoint.sh"]') in run
    assert ("CMD", '["sts", "serve", "--host", "0.0.0.0", "--port", "8000"]') in run
    env = " ".join(r for w, r in run if w == "ENV")
    assert "PROMETHEUS_MULTIPROC_DIR=/app/var/metrics" in env


def test_entrypoint_when_run_then_waits_for_the_database_checks_keys_and_execs(tmp_path):
    calls = tmp_path / "calls"
    fake = tmp_path / "bin" / "sts"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "sts $*" >> {calls}\n')
    fake.chmod(0o755)
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "counter_123.db").write_bytes(b"stale")
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "PROMETHEUS_MULTIPROC_DIR": str(metrics),
           "DB_WAIT_SECONDS": "30"}  # fmt: skip
    done = subprocess.run(
        ["/bin/sh", str(ENTRYPOINT), "/bin/sh", "-c", f"echo server >> {calls}"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == ["sts db upgrade --wait 30", "sts keys check",
                                              "server"]  # fmt: skip
    assert list(metrics.iterdir()) == []
    assert os.access(ENTRYPOINT, os.X_OK)
    failing = fake.parent / "sts"
    failing.write_text("#!/bin/sh\necho 'Error: database error: down' >&2\nexit 1\n")
    stopped = subprocess.run(
        ["/bin/sh", str(ENTRYPOINT), "/bin/sh", "-c", f"echo server >> {calls}"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert (stopped.returncode, stopped.stderr) == (1, "Error: database error: down\n")
