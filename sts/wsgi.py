"""WSGI entry point for gunicorn (``wsgi_app = "sts.wsgi:app"`` in ``config/gunicorn.conf.py``).

Settings come from ``STS_*`` over the config file. A bad setting or a missing key stops the
worker from booting, and gunicorn from starting, with the error that names it.
"""

from __future__ import annotations

from sts.web import create_app

app = create_app()
