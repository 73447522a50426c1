"""The admin API's views: thin adapters from HTTP to the service layer.

Every view runs in one database transaction: authenticate the bearer token, check its scope,
check the path, validate the input, call the same service function the CLI calls (passing
the administrator's ``client_id``, which the audit event then names), answer JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, current_app, g, request
from sqlalchemy.exc import IntegrityError

from sts.admin_api import openapi
from sts.admin_api.auth import Admin, authenticate
from sts.admin_api.errors import ApiError, from_service, invalid, json_response, not_found
from sts.admin_api.openapi import (
    ADMIN,
    AUDIT,
    ID_PATTERN,
    NAME_PATTERN,
    PREFIX,
    REVOKE,
    URI_PATTERN,
)
from sts.admin_api.validation import body, path_matches, query
from sts.core.ports import AuditRecord
from sts.runtime import Runtime
from sts.services import audit, credentials, issuers, lineage, nhis, revocation, rules
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


def _record_denial(rt: Runtime, now: int, err: ApiError, client_id: str | None) -> None:
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
                _record_denial(rt, now, err, admin.client_id if admin else None)
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


def _created(data: dict[str, Any], location: str) -> Response:
    return json_response(data, 201, {"Location": PREFIX + location})


# -- NHIs ------------------------------------------------------------------------------------
@route("/nhis", "GET", READ)
def list_nhis(call: Call) -> Response:
    q = query("/nhis")
    views, total = nhis.list_nhis(
        call.store, kind=q.get("kind"), status=q.get("status"), limit=q["limit"], offset=q["offset"]
    )
    return json_response(
        {
            "items": [v.as_dict() for v in views],
            "total": total,
            "limit": q["limit"],
            "offset": q["offset"],
        }
    )


@route("/nhis", "POST", WRITE, retry=True)
def create_nhi(call: Call) -> Response:
    b = body("NhiCreate")
    view, secret, created = nhis.ensure_nhi(
        call.store,
        call.rt.hasher,
        name=b["name"],
        kind=b["kind"],
        owner=b.get("owner", ""),
        sub=b.get("sub"),
        scope=b.get("scope", ""),
        grants=b.get("grants"),
        resources=b.get("resources"),
        jwks=b.get("jwks"),
        jwks_uri=b.get("jwks_uri"),
        now=call.now,
        admin=call.by,
    )
    if not created:
        return json_response(view.as_dict())
    data = view.as_dict()
    if secret is not None:
        data["client_secret"] = secret
    return _created(data, f"/nhis/{view.client_id}")


@route("/nhis/<name>", "GET", READ)
def get_nhi(call: Call, name: str) -> Response:
    return json_response(nhis.get_nhi(call.store, name).as_dict())


@route("/nhis/<name>/disable", "POST", CONTAIN)
def disable_nhi(call: Call, name: str) -> Response:
    nhis.get_nhi(call.store, name)
    b = body("RequiredReason")
    view = nhis.set_nhi_status(
        call.store, name, status="disabled", reason=b["reason"], now=call.now, admin=call.by
    )
    return json_response(view.as_dict())


@route("/nhis/<name>/enable", "POST", WRITE)
def enable_nhi(call: Call, name: str) -> Response:
    view = nhis.set_nhi_status(
        call.store, name, status="active", reason="", now=call.now, admin=call.by
    )
    return json_response(view.as_dict())


# -- credentials -----------------------------------------------------------------------------
@route("/nhis/<name>/credentials", "GET", READ)
def list_credentials(call: Call, name: str) -> Response:
    return json_response({"items": credentials.list_credentials(call.store, name)})


@route("/nhis/<name>/credentials", "POST", WRITE)
def add_credential(call: Call, name: str) -> Response:
    nhis.get_nhi(call.store, name)
    b = body("CredentialCreate")
    kind = b["type"]
    problems = [
        {"field": field, "message": f"is required with type {kind}"}
        for field in ("jwks", "jwks_uri")
        if kind == field and field not in b
    ] + [
        {"field": field, "message": f"is not allowed with type {kind}"}
        for field in ("jwks", "jwks_uri")
        if kind != field and field in b
    ]
    if "grace" in b and not b.get("replace"):
        problems.append({"field": "grace", "message": "is only allowed with replace"})
    if problems:
        raise invalid(problems)
    cred, secret = credentials.add_credential(
        call.store,
        call.rt.hasher,
        name,
        jwks=b.get("jwks"),
        jwks_uri=b.get("jwks_uri"),
        replace=b.get("replace", False),
        grace=b.get("grace", 0),
        now=call.now,
        admin=call.by,
    )
    if secret is not None:
        cred["client_secret"] = secret
    return _created(cred, f"/nhis/{name}/credentials/{cred['id']}")


def _credential(call: Call, name: str, credential_id: str) -> dict[str, Any]:
    nhis.get_nhi(call.store, name)
    return credentials.get_credential(call.store, name, credential_id)


@route("/nhis/<name>/credentials/<credential_id>", "GET", READ)
def get_credential(call: Call, name: str, credential_id: str) -> Response:
    return json_response(_credential(call, name, credential_id))


@route("/nhis/<name>/credentials/<credential_id>/revoke", "POST", CONTAIN)
def revoke_credential(call: Call, name: str, credential_id: str) -> Response:
    _credential(call, name, credential_id)
    b = body("Reason", required=False)
    result = revocation.revoke(
        call.store,
        "credential",
        credential_id,
        now=call.now,
        admin=call.by,
        reason=b.get("reason", ""),
    )
    return json_response(result.as_dict())


# -- trusted issuers -------------------------------------------------------------------------
@route("/issuers", "GET", READ)
def list_issuers(call: Call) -> Response:
    return json_response({"items": issuers.list_issuers(call.store)})


@route("/issuers", "POST", WRITE, retry=True)
def add_issuer(call: Call) -> Response:
    b = body("IssuerCreate")
    found, created = issuers.ensure_issuer(
        call.store,
        issuer=b["issuer"],
        jwks=b.get("jwks"),
        jwks_uri=b.get("jwks_uri"),
        audiences=b.get("audiences"),
        algorithms=b.get("algorithms"),
        scope_mode=b.get("scope_mode", "rule"),
        now=call.now,
        admin=call.by,
    )
    if not created:
        return json_response(found)
    return _created(found, "/issuers/" + quote(found["issuer"], safe=""))


@route("/issuers/<path:issuer>", "GET", READ)
def get_issuer(call: Call, issuer: str) -> Response:
    return json_response(issuers.get_issuer(call.store, issuer))


# -- delegation rules ------------------------------------------------------------------------
@route("/rules", "GET", READ)
def list_rules(call: Call) -> Response:
    q = query("/rules")
    items, total = rules.list_rules(
        call.store,
        actor=q.get("actor"),
        status=q.get("status"),
        limit=q["limit"],
        offset=q["offset"],
    )
    return json_response(
        {"items": items, "total": total, "limit": q["limit"], "offset": q["offset"]}
    )


@route("/rules", "POST", WRITE)
def create_rule(call: Call) -> Response:
    b = body("RuleCreate")
    found, created = rules.ensure_rule(
        call.store,
        actor=b["actor"],
        targets=b["targets"],
        scope=b["scope"],
        subject=b.get("subject", "any"),
        upstream=b.get("upstream"),
        max_depth=b.get("max_depth"),
        max_ttl=b.get("max_ttl"),
        expires=b.get("expires"),
        now=call.now,
        admin=call.by,
    )
    if not created:
        return json_response(found)
    return _created(found, f"/rules/{found['id']}")


@route("/rules/<rule_id>", "GET", READ)
def get_rule(call: Call, rule_id: str) -> Response:
    return json_response(rules.get_rule(call.store, rule_id))


@route("/rules/<rule_id>/disable", "POST", CONTAIN)
def disable_rule(call: Call, rule_id: str) -> Response:
    rules.get_rule(call.store, rule_id)
    b = body("Reason", required=False)
    found = rules.disable_rule(
        call.store, rule_id, now=call.now, admin=call.by, reason=b.get("reason", "")
    )
    return json_response(found)


# -- revocations -----------------------------------------------------------------------------
@route("/revocations", "POST", (ADMIN, REVOKE, AUDIT))
def create_revocation(call: Call) -> Response:
    b = body("RevocationCreate")
    dry_run = b.get("dry_run", False)
    if not dry_run:
        call.admin.require(CONTAIN)
    result = revocation.revoke(
        call.store,
        b["kind"],
        b["target"],
        now=call.now,
        admin=call.by,
        reason=b.get("reason", ""),
        dry_run=dry_run,
    )
    return json_response(result.as_dict(), 200 if dry_run else 201)


# -- chains and audit ------------------------------------------------------------------------
@route("/transactions/<txn>/chain", "GET", READ)
def transaction_chain(call: Call, txn: str) -> Response:
    return json_response({"roots": lineage.chain_tree(call.store, now=call.now, txn=txn)})


@route("/tokens/<jti>/chain", "GET", READ)
def token_chain(call: Call, jti: str) -> Response:
    return json_response({"roots": lineage.chain_tree(call.store, now=call.now, jti=jti)})


@route("/transactions/<txn>/audit", "GET", READ)
def transaction_audit(call: Call, txn: str) -> Response:
    return json_response(audit.show(call.store, now=call.now, txn=txn))


@route("/tokens/<jti>/audit", "GET", READ)
def token_audit(call: Call, jti: str) -> Response:
    return json_response(audit.show(call.store, now=call.now, jti=jti))


@route("/audit/events", "GET", READ)
def list_audit_events(call: Call) -> Response:
    q = query("/audit/events")
    events = audit.list_events(
        call.store,
        actor=q.get("actor"),
        subject=q.get("subject"),
        since=q.get("since"),
        decision=q.get("decision"),
        event=q.get("event"),
        limit=q["limit"],
    )
    return json_response({"items": events})


# -- the document ----------------------------------------------------------------------------
@bp.get(openapi.OPENAPI_PATH)
def openapi_document() -> Response:
    rt: Runtime = current_app.extensions["sts"]
    response = json_response(openapi.document(rt.settings.issuer))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
