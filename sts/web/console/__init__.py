"""The incident console (``/console``): the chains of the audit trail drawn in a browser, and
containment from the same page, for administrators only (DESIGN §7, §8).

Sign-in takes an admin NHI's client id and secret through the token endpoint's own
``client_credentials`` pipeline (client authentication, brute-force throttling, the audit
event), and the token it yields must pass the admin API's own check
(:func:`sts.admin_api.auth.admin_of_token`); its scopes are the console's scopes. Then a short
signed session cookie (:mod:`sts.web.console.session`); every POST carries the session's CSRF
token. Pages are served with a strict Content-Security-Policy: no script at all, one served
stylesheet, nothing fetched from anywhere else, so it works offline.
"""

from __future__ import annotations

from sts.web.console.views import PREFIX, bp, init_app

__all__ = ["PREFIX", "bp", "init_app"]
