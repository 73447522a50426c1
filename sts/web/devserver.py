"""The development server's request log (``sts serve``): the path only, never the query.

Tokens travel in POST bodies, but a misbehaving client may still put a token or a secret in
a query string; werkzeug's own handler would write it to the log with the request line. Like
the production access log (``config/gunicorn.conf.py``), this one records the method, the
path and the protocol.
"""

from __future__ import annotations

import re
from typing import Any

from werkzeug.serving import WSGIRequestHandler

__all__ = ["PathOnlyRequestHandler", "path_only"]

#: A query string or fragment inside a logged message (a request line quoted in an error).
_QUERY = re.compile(r"[?#][^\s'\"]*")


def path_only(target: str) -> str:
    """A request target without its query string or fragment."""
    return target.split("?", 1)[0].split("#", 1)[0]


class PathOnlyRequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler with the query string kept out of every log line."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        raw_path, raw_line = getattr(self, "path", None), getattr(self, "requestline", "")
        if raw_path is not None:
            self.path = path_only(raw_path)
        self.requestline = _QUERY.sub("", raw_line)
        try:
            super().log_request(code, size)
        finally:
            if raw_path is not None:
                self.path = raw_path
            self.requestline = raw_line

    def log_error(self, format: str, *args: Any) -> None:
        # ``send_error`` quotes a malformed request line in its message: no query there either.
        super().log_error(format, *(_QUERY.sub("", a) if isinstance(a, str) else a for a in args))
