"""What every administrative service shares: who administers, the audit event each change
leaves, and finding the NHI a change names.

The services validate their input, change the registry through the store a front end opened
(:class:`sts.store.admin.AdminStore`, one transaction the front end owns), write an audit
event naming the administrator, and refuse with a :class:`~sts.services.errors.ServiceError`.
"""

from __future__ import annotations

from typing import Any

from sts.services.errors import NotFound
from sts.store.admin import AdminStore
from sts.store.registry import NhiRecord

#: Scopes of the admin API: everything; read only; containment (revoke, disable) only.
ADMIN_SCOPES = ("sts:admin", "sts:audit", "sts:revoke")


def audit_admin_action(store: AdminStore, now: int, admin: str, event: str, **detail: Any) -> None:
    """Every administrative act leaves an audit event naming the administrator."""
    store.audit.record_admin(now, admin, event, detail)


def nhi_named(store: AdminStore, name: str) -> NhiRecord:
    """The NHI of this name, or :class:`NotFound`."""
    found = store.nhis.find(name)
    if found is None:
        raise NotFound(f"no NHI named {name!r}", what="nhi")
    return found
