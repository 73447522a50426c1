"""RSGI entry point for Granian (``sts serve``; ``granian --interface rsgi sts.rsgi:app``).

The same application as :mod:`sts.wsgi`, with each request's body read in full on the
worker's event loop before it is run (:mod:`sts.web.rsgi`). Settings come from ``STS_*`` over
the config file; a bad setting or a missing key stops the worker from booting.
"""

from __future__ import annotations

from sts.web.rsgi import create_rsgi_app

app = create_rsgi_app()
