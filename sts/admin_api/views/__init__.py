"""The admin API's views: thin adapters from HTTP to the service layer, by resource.

:mod:`~sts.admin_api.views.routing` runs each request (transaction, authentication, scope,
path, the mapping of a service's refusal to HTTP); :mod:`~sts.admin_api.views.registry` and
:mod:`~sts.admin_api.views.incident` hold the views, registered on :data:`bp` on import.
"""

from __future__ import annotations

from sts.admin_api.views import incident, manifest, registry
from sts.admin_api.views.routing import bp

__all__ = ["bp", "incident", "manifest", "registry"]
