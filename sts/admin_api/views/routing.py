"""How an admin API view runs: one request, one transaction, one administrator.

Every view runs in one database transaction: authenticate the bearer token, check its scope,
check the path, then the view (validate the input, call the same service function the CLI
calls, passing the administrator's ``client_id``, which the audit event then names), answer
JSON. A service's refusal becomes its HTTP answer here, in one place
(:func:`sts.admin_api.errors.from_service`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from sqlalchemy.exc import IntegrityError

from sts.admin_api import openapi
from sts.admin_api.auth import Admin, authenticate
from sts.admin_api.errors import ApiError, from_service, json_response, not_found
from sts.admin_api.openapi import (
    ADMIN,
    AUDIT,
    ID_PATTERN,
    NAME_PATTERN,
    PREFIX,
    REVOKE,
    URI_PATTERN,
)
from sts.admin_api.validation import path_matches
from sts.core.ports import AuditRecord
from sts.runtime import Runtime
from sts.services.admin import audit_admin_action
from sts.services.errors import ServiceError
from sts.store.admin import AdminStore
from sts.store.sql import SqlStore

log = logging.getLogger("sts.admin")
bp = Blueprint("admin_api", __name__)

READ = (ADMIN, AUDIT)
WRITE = (ADMIN,)
CONTAIN = (ADMIN, REVOKE)
CONCURRENT_CHANGE = ApiError(
    409, "conflict", "conflict", "A concurrent change conflicts with this request; try again."
)
#: Path parameters: the form they must have, and what a miss is called.
PATH_PARAMS = {
    "name": (NAME_PATTERN, "nhi"),
    "credential_id": (ID_PATTERN, "credential"),
    "issuer": (URI_PATTERN, "issuer"),
    "rule_id": (ID_PATTERN, "rule"),
    "jti": (ID_PATTERN, "token"),
    "txn": (ID_PATTERN, "txn"),
}


@dataclass(frozen=True)
class Call:
    """One admin request: the store of its transaction, its administrator and time."""

    store: AdminStore
    admin: Admin
    now: int
    rt: Runtime

    @property
    def by(self) -> str:
        return self.admin.client_id


def record_denial(rt: Runtime, now: int, err: ApiError, client_id: str | None) -> None:
    """Refused admin requests are audited too, in a transaction of their own."""
    with rt.engine.begin() as conn:
        SqlStore(conn).audit(
            AuditRecord(
                at=now,
                event="admin.denied",
                decision="denied",
                reason=err.reason,
                request_id=g.get("request_id", ""),
                client_id=client_id,
                detail={"method": request.method, "path": request.path[:300], "code": err.code},
            )
        )
    log.info(
        "admin request refused",
        extra={
            "event": "admin.denied",
            "code": err.code,
            "reason": err.reason,
            "client_id": client_id,
            "request_id": g.get("request_id"),
        },
    )


def _check_path(kwargs: dict[str, str]) -> None:
    for name, value in kwargs.items():
        pattern, resource = PATH_PARAMS[name]
        if not path_matches(value, pattern):
            raise not_found(resource)


def _run(
    view: Callable[..., Response],
    kwargs: dict[str, str],
    scopes: tuple[str, ...],
    retry: bool,
) -> Response:
    rt: Runtime = current_app.extensions["sts"]
    now = rt.clock.now()
    admin: Admin | None = None
    for attempt in range(2 if retry else 1):
        try:
            with rt.engine.begin() as conn:
                admin = authenticate(conn, rt, now)
                admin.require(scopes)
                _check_path(kwargs)
                store = AdminStore(conn)
                response = view(Call(store, admin, now, rt), **kwargs)
                if request.method == "GET" and response.status_code < 300:
                    # Reads are admin actions too (who looked at which chain): audited like
                    # the changes, whose events the service layer writes itself.
                    audit_admin_action(
                        store, now, admin.client_id, "admin.read", path=request.path[:300]
                    )
                return response
        except ApiError as err:
            if err.status in (401, 403):
                record_denial(rt, now, err, admin.client_id if admin else None)
            return err.response()
        except ServiceError as err:
            return from_service(err).response()
        except IntegrityError:
            # A concurrent change committed first. An idempotent create runs once more and
            # now sees what was created (same attributes: 200, others: 409).
            if retry and attempt == 0:
                continue
            return CONCURRENT_CHANGE.response()
    raise AssertionError("unreachable")  # pragma: no cover


def route(
    rule: str,
    method: str,
    scopes: tuple[str, ...],
    *,
    retry: bool = False,
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    def register(view: Callable[..., Response]) -> Callable[..., Response]:
        def endpoint(**kwargs: str) -> Response:
            return _run(view, kwargs, scopes, retry)

        bp.add_url_rule(
            PREFIX + rule, view.__name__, endpoint, methods=[method], merge_slashes=False
        )
        return view

    return register


def created_response(data: dict[str, Any], location: str) -> Response:
    return json_response(data, 201, {"Location": PREFIX + location})


# -- the document ----------------------------------------------------------------------------
@bp.get(openapi.OPENAPI_PATH)
def openapi_document() -> Response:
    rt: Runtime = current_app.extensions["sts"]
    response = json_response(openapi.document(rt.settings.issuer))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
