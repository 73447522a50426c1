"""Admin API views of the registry: NHIs, their credentials, trusted issuers, delegation
rules (DESIGN §3, §5.5)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import Response

from sts.admin_api.errors import invalid, json_response
from sts.admin_api.validation import body, query
from sts.admin_api.views.routing import CONTAIN, READ, WRITE, Call, created_response, route
from sts.services import credentials, issuers, nhis, revocation, rules


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
    return created_response(data, f"/nhis/{view.client_id}")


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


@route("/nhis/<name>/update", "POST", WRITE)
def update_nhi(call: Call, name: str) -> Response:
    nhis.get_nhi(call.store, name)
    b = body("NhiUpdate", required=False)
    view, _ = nhis.update_nhi(
        call.store,
        name,
        now=call.now,
        admin=call.by,
        kind=b.get("kind"),
        owner=b.get("owner"),
        sub=b.get("sub"),
        scope=b.get("scope"),
        grants=b.get("grants"),
        resources=b.get("resources"),
        jwks=b.get("jwks"),
        jwks_uri=b.get("jwks_uri"),
    )
    return json_response(view.as_dict())


@route("/nhis/<name>/delete", "POST", WRITE)
def delete_nhi(call: Call, name: str) -> Response:
    q = query("/nhis/{name}/delete", "post")
    return json_response(
        nhis.delete_nhi(
            call.store, name, now=call.now, admin=call.by, revoke=q.get("revoke") == "true"
        )
    )


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
    return created_response(cred, f"/nhis/{name}/credentials/{cred['id']}")


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
    return created_response(found, "/issuers/" + quote(found["issuer"], safe=""))


@route("/issuers/<path:issuer>", "GET", READ)
def get_issuer(call: Call, issuer: str) -> Response:
    return json_response(issuers.get_issuer(call.store, issuer))


@route("/issuers/<path:issuer>/update", "POST", WRITE)
def update_issuer(call: Call, issuer: str) -> Response:
    issuers.get_issuer(call.store, issuer)
    b = body("IssuerUpdate", required=False)
    found, _ = issuers.update_issuer(
        call.store,
        issuer=issuer,
        jwks=b.get("jwks"),
        jwks_uri=b.get("jwks_uri"),
        audiences=b.get("audiences"),
        algorithms=b.get("algorithms"),
        scope_mode=b.get("scope_mode"),
        now=call.now,
        admin=call.by,
    )
    return json_response(found)


@route("/issuers/<path:issuer>/disable", "POST", CONTAIN)
def disable_issuer(call: Call, issuer: str) -> Response:
    issuers.get_issuer(call.store, issuer)
    b = body("Reason", required=False)
    return json_response(
        issuers.disable_issuer(
            call.store, issuer, now=call.now, admin=call.by, reason=b.get("reason", "")
        )
    )


@route("/issuers/<path:issuer>/enable", "POST", WRITE)
def enable_issuer(call: Call, issuer: str) -> Response:
    return json_response(issuers.enable_issuer(call.store, issuer, now=call.now, admin=call.by))


@route("/issuers/<path:issuer>/remove", "POST", WRITE)
def remove_issuer(call: Call, issuer: str) -> Response:
    issuers.get_issuer(call.store, issuer)
    b = body("Reason", required=False)
    return json_response(
        issuers.remove_issuer(
            call.store, issuer, now=call.now, admin=call.by, reason=b.get("reason", "")
        )
    )


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
        subject_issuer=b.get("subject_issuer"),
        upstream=b.get("upstream"),
        max_depth=b.get("max_depth"),
        max_ttl=b.get("max_ttl"),
        expires=b.get("expires"),
        require_dpop=b.get("require_dpop", False),
        now=call.now,
        admin=call.by,
    )
    if not created:
        return json_response(found)
    return created_response(found, f"/rules/{found['id']}")


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


@route("/rules/<rule_id>/update", "POST", WRITE)
def update_rule(call: Call, rule_id: str) -> Response:
    rules.get_rule(call.store, rule_id)
    b = body("RuleCreate")
    found, _ = rules.update_rule(
        call.store,
        rule_id,
        actor=b["actor"],
        targets=b["targets"],
        scope=b["scope"],
        subject=b.get("subject", "any"),
        subject_issuer=b.get("subject_issuer"),
        upstream=b.get("upstream"),
        max_depth=b.get("max_depth"),
        max_ttl=b.get("max_ttl"),
        expires=b.get("expires"),
        require_dpop=b.get("require_dpop", False),
        now=call.now,
        admin=call.by,
    )
    return json_response(found)


@route("/rules/<rule_id>/enable", "POST", WRITE)
def enable_rule(call: Call, rule_id: str) -> Response:
    return json_response(rules.enable_rule(call.store, rule_id, now=call.now, admin=call.by))


@route("/rules/<rule_id>/delete", "POST", CONTAIN)
def delete_rule(call: Call, rule_id: str) -> Response:
    rules.get_rule(call.store, rule_id)
    b = body("Reason", required=False)
    return json_response(
        rules.delete_rule(
            call.store, rule_id, now=call.now, admin=call.by, reason=b.get("reason", "")
        )
    )
