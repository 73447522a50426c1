"""What an administrative service refuses, as one small typed hierarchy.

Every front end maps it once: the admin API to an HTTP status and its JSON error body
(:mod:`sts.admin_api.errors`), the ``sts`` command to a one-line message and its exit code
(:mod:`sts.cli.support`). ``code`` is stable public text (the admin API's bodies and the
CLI's messages carry it); ``field`` names the input at fault when there is one, so a front
end can point at it; ``what`` names the kind of thing concerned (``nhi``, ``credential``,
``issuer``, ``rule``, ``token``, ``txn``) when the caller named it directly rather than in a
field of its input; ``message`` is plain words for people, never a secret.
"""

from __future__ import annotations

from typing import ClassVar


class ServiceError(Exception):
    """A refusal with a stable ``code``, a ``message`` and, maybe, the ``field`` at fault
    and ``what`` it concerns."""

    code: ClassVar[str] = "error"

    def __init__(self, message: str, field: str | None = None, *, what: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.what = what


class NotFound(ServiceError):
    """Something named does not exist."""

    code = "not_found"


class Conflict(ServiceError):
    """The change contradicts what the registry already holds."""

    code = "conflict"


class Invalid(ServiceError):
    """The input is malformed or makes no sense."""

    code = "invalid"
