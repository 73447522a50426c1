"""Revocation as administrators ask for it (DESIGN §7): a token, an NHI, a credential, a
rule, a trusted issuer or a whole transaction, and every live token derived from it.

The store runs the cascade and takes its locks (:mod:`sts.store.revocation`); this is the
entry point the admin API and the CLI call: it checks the request, reports a blast radius
without changing anything on a dry run, and writes the audit event naming the administrator.
"""

from __future__ import annotations

from sts.services.admin import audit_admin_action
from sts.services.errors import Invalid, NotFound
from sts.store.admin import AdminStore
from sts.store.revocation import KINDS, Result, UnknownTarget

__all__ = ["KINDS", "Result", "revoke"]


def _missing(kind: str, target: str) -> NotFound:
    message = {
        "nhi": f"no NHI named {target!r}",
        "credential": f"no credential {target!r}",
        "rule": f"no rule {target!r}",
        "issuer": "no such trusted issuer",
    }.get(kind, f"no tokens for this {kind}")
    return NotFound(message, what=kind)


def revoke(
    store: AdminStore,
    kind: str,
    target: str,
    *,
    now: int,
    admin: str,
    reason: str = "",
    dry_run: bool = False,
) -> Result:
    """Revoke ``target`` of ``kind`` and everything derived from it; with ``dry_run``, only
    report the blast radius and change nothing. Asking for a blast radius is an
    administrative act too: audited, nothing else."""
    if kind not in KINDS:
        raise Invalid(f"kind must be one of {', '.join(KINDS)}")
    try:
        result = store.revocations.cascade(
            kind, target, now=now, by=admin, reason=reason, dry_run=dry_run
        )
    except UnknownTarget:
        raise _missing(kind, target) from None
    event, detail = result.audit_event(reason)
    audit_admin_action(store, now, admin, event, **detail)
    return result
