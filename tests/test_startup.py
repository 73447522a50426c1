"""Start-up a container platform likes, and one log format: ``sts db upgrade --wait``,
``sts keys check``, the logging configuration every server can take, and the one line that
says why the database is unavailable."""

from __future__ import annotations

import dataclasses
import json
import logging
import logging.config
import os
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.exc import OperationalError

from sts.cli import main
from sts.core import logs
from sts.core.keys import generate_key
from sts.runtime import build_runtime
from sts.web.forms import log_unavailable

ROOT = Path(__file__).resolve().parent.parent
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
def sts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in list(os.environ):
        if name.startswith("STS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)

    def run(*args: str, code: int = 0, **env: str) -> Result:
        env = {"STS_DATABASE_URL": f"sqlite:///{tmp_path / 'sts.db'}",
               "STS_KEYS_DIR": str(tmp_path / "keys"), **env}  # fmt: skip
        result = CliRunner().invoke(main, list(args), env=env)
        assert result.exit_code == code, (result.output, result.exception)
        assert "Traceback" not in result.output
        return result

    return run


def test_db_upgrade_when_waiting_for_an_unreachable_database_then_lines_then_one_error(
    sts: Any,
) -> None:
    url = "postgresql+psycopg://sts:pw@127.0.0.1:1/sts"
    result = sts("db", "upgrade", "--wait", "3", code=1, STS_DATABASE_URL=url)
    lines = result.stderr.splitlines()
    assert len(lines) >= 2
    assert set(lines[:-1]) == {"waiting for the database at 127.0.0.1:1 (OperationalError)"}
    assert lines[-1].startswith("Error: database error: ")
    assert "pw" not in result.stderr and "sts:" not in result.stderr


def test_db_upgrade_when_database_is_there_then_no_wait(sts: Any) -> None:
    assert sts("db", "upgrade", "--wait", "60").stdout.startswith("database at revision ")
    assert sts("db", "upgrade", "--wait", "-1", code=2).stderr.startswith("Error: Invalid value")


def test_keys_check_when_missing_then_one_line_and_when_present_then_the_signing_kid(
    sts: Any, tmp_path: Path
) -> None:
    production = {"STS_ENV": "production", "STS_ISSUER": "https://sts.example.test",
                  "STS_ALLOW_SQLITE_IN_PRODUCTION": "true"}  # fmt: skip
    missing = sts("keys", "check", code=1, **production)
    assert missing.stderr == f"Error: {tmp_path / 'keys'}: key directory does not exist\n"
    key = generate_key(tmp_path / "keys", "ES256", immediate=True)
    no_hash = sts("keys", "check", code=1, **production)
    assert no_hash.stderr.endswith("credential hashing key missing\n")
    (tmp_path / "keys" / "credential-hash.key").write_text("ab" * 32)
    (tmp_path / "keys" / "credential-hash.key").chmod(0o600)
    assert sts("keys", "check", **production).stdout == f"keys ready: {key.kid} signs (ES256)\n"


def test_logging_config_when_shipped_then_the_file_is_the_document_and_it_applies() -> None:
    shipped = json.loads((ROOT / "config" / "logging.json").read_text())
    assert shipped == logs.logging_config()
    assert set(shipped["loggers"]) >= {"sts", "gunicorn.access", "granian.access"}
    names = ["", "sts", *logs.SERVER_LOGGERS]
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level,
                 logging.getLogger(n).propagate) for n in names}  # fmt: skip
    try:
        logging.config.dictConfig(logs.logging_config("INFO", "text"))
        logging.config.dictConfig(shipped)
        handler = logging.getLogger("gunicorn.access").handlers[0]
        assert isinstance(handler.formatter, logs.JsonFormatter)
    finally:  # leave the loggers as the test session had them
        for n, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(n)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


def test_formatters_when_record_then_iso_time_facts_and_redaction() -> None:
    record = logging.makeLogRecord({"name": "sts.web", "levelname": "INFO",
                                    "msg": "hi eyJab.eyJcd.ef", "event": "x",
                                    "request_id": "r1"})  # fmt: skip
    line = json.loads(logs.JsonFormatter().format(record))
    assert ISO.fullmatch(line.pop("time"))
    assert line == {"level": "info", "logger": "sts.web", "msg": "hi [jwt]", "event": "x",
                    "request_id": "r1"}  # fmt: skip
    text = logs.TextFormatter().format(record)
    assert ISO.match(text) and text.endswith(" INFO    sts.web hi [jwt] event=x request_id=r1")


def test_database_unavailable_when_logged_then_host_and_error_class_never_credentials(
    settings: Any, clock: Any, engine: Any, sts_log_records: list[logging.LogRecord]
) -> None:
    url = "postgresql+psycopg://sts:hunter2@db.internal:6543/sts"
    rt = build_runtime(dataclasses.replace(settings, database_url=url), clock, engine=engine)
    fault = OperationalError("SELECT 1", {}, Exception("connection refused hunter2"))
    log_unavailable(rt, fault, "rid1")
    (record,) = [r for r in sts_log_records if getattr(r, "event", "") == "db.unavailable"]
    line = logs.JsonFormatter().format(record)
    assert json.loads(line)["db_host"] == "db.internal:6543"
    assert json.loads(line)["error_class"] == "Exception"
    assert json.loads(line)["request_id"] == "rid1"
    assert "hunter2" not in line
