"""Structured logs that never carry a token or a secret: one format for the STS and for the
HTTP server in front of it.

Call sites log facts (event, client_id, reason), never tokens; as a second line of defence the
formatter masks anything shaped like a JWT or a Chain STS client secret before it is written.

Every line is one JSON object: ``time`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``,
``msg`` and the record's facts (``event``, ``request_id``, ...). The HTTP server's access log
is written in the same format (``method``, ``path`` without the query string, ``status``,
``duration_ms``, ``request_id``): :func:`logging_config` is a :func:`logging.config.dictConfig`
document for any server that takes one (gunicorn's ``logconfig_dict``, Granian's
``--log-config``, uvicorn's ``--log-config``), and ``config/logging.json`` is that document.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
_SECRET = re.compile(r"sts_[A-Za-z0-9_-]{20,}")
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
#: Loggers the HTTP servers write to, given the same format as the STS's own.
SERVER_LOGGERS = (
    "gunicorn.error",
    "gunicorn.access",
    "granian",
    "granian.access",
    "uvicorn.error",
    "uvicorn.access",
)


def redact(text: str) -> str:
    return _SECRET.sub("[secret]", _JWT.sub("[jwt]", text))


def iso_time(created: float) -> str:
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def access_facts(
    method: str, path: str, status: int, seconds: float, request_id: str, sent: int
) -> dict[str, Any]:
    """The facts of one access-log record, whichever server wrote it: the path never carries
    its query string (a misbehaving client may put a token there)."""
    return {
        "event": "http.access",
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
        "request_id": request_id,
        "bytes": sent,
    }


def _facts(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object a line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_facts(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


class TextFormatter(logging.Formatter):
    """The same facts for a person at a terminal: ``time level logger msg key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        facts = " ".join(f"{k}={v}" for k, v in _facts(record).items())
        line = f"{iso_time(record.created)} {record.levelname:7} {record.name} "
        line += record.getMessage() + (f" {facts}" if facts else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


FORMATTERS: dict[str, type[logging.Formatter]] = {"json": JsonFormatter, "text": TextFormatter}


def logging_config(level: str = "INFO", fmt: str = "json") -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` document: the STS's loggers and the HTTP servers'
    in one format, on standard error (the access logs on standard output)."""
    formatter = {"()": f"{__name__}.{FORMATTERS[fmt].__name__}"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"sts": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "sts",
                "stream": "ext://sys.stderr",
            },
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "sts",
                "stream": "ext://sys.stdout",
            },
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},
        "loggers": {
            "sts": {"level": level.upper(), "handlers": ["stderr"], "propagate": False},
            **{
                name: {
                    "level": "INFO",
                    "handlers": ["stdout" if name.endswith("access") else "stderr"],
                    "propagate": False,
                }
                for name in SERVER_LOGGERS
            },
        },
    }


def configure(level: str, fmt: str = "json") -> None:
    """Give the ``sts`` loggers a handler in ``fmt`` unless one of ours is there (the server's
    logging configuration may have given them one already)."""
    logger = logging.getLogger("sts")
    ours = tuple(FORMATTERS.values())
    if not any(isinstance(h.formatter, ours) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(FORMATTERS[fmt]())
        logger.addHandler(handler)
    logger.setLevel(level.upper())
