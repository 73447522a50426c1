"""gunicorn's access log in the STS's own JSON format (:mod:`sts.core.logs`); under
``sts serve`` (Granian) the RSGI adapter writes the same records (:mod:`sts.web.rsgi`).

gunicorn: ``logger_class = "sts.web.access_log.GunicornLogger"`` with
``logconfig_dict = logs.logging_config(...)`` (both in ``config/gunicorn.conf.py``). Each
request is one record of the ``gunicorn.access`` logger whose facts are the fields below:
the path never carries its query string (a misbehaving client may put a token there), and
nothing of the headers but the request id the STS answered with.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from sts.core.logs import access_facts

#: Headers whose value is the request id the STS answered with.
REQUEST_ID = "x-request-id"


class GunicornLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, writing each access as one record of facts."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        headers = getattr(resp, "headers", None) or []
        request_id = next((v for k, v in headers if k.lower() == REQUEST_ID), "")
        status = getattr(resp, "status_code", None)
        if status is None:
            status = int(str(getattr(resp, "status", "0")).split()[0] or 0)
        facts = access_facts(
            environ.get("REQUEST_METHOD", "-"),
            environ.get("PATH_INFO", "-"),  # never RAW_URI: no query string
            int(status),
            request_time.total_seconds(),
            request_id,
            int(getattr(resp, "sent", 0) or 0),
        )
        self.access_log.info("%s %s %s", facts["method"], facts["path"], status, extra=facts)
