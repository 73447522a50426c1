"""Admin API views of the registry as code (:mod:`sts.services.manifest`)."""

from __future__ import annotations

from flask import Response, request

from sts.admin_api.errors import ApiError, json_response
from sts.admin_api.validation import query
from sts.admin_api.views.routing import READ, WRITE, Call, route
from sts.services import manifest

#: Media types a document may be sent as (JSON is YAML too).
DOCUMENT_TYPES = ("application/json", "application/yaml", "text/yaml", "application/x-yaml")


@route("/registry", "GET", READ)
def export_registry(call: Call) -> Response:
    return json_response(manifest.export(call.store))


@route("/registry/apply", "POST", WRITE)
def apply_registry(call: Call) -> Response:
    q = query("/registry/apply", "post")
    if request.mimetype not in DOCUMENT_TYPES:
        raise ApiError(
            415,
            "invalid_request",
            "unsupported_media_type",
            "The body must be application/json or application/yaml.",
        )
    raw = request.get_data(cache=True)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(
            400, "invalid_request", "malformed_json", "The body is not valid JSON."
        ) from None
    plan = manifest.apply(
        call.store,
        call.rt.hasher,
        text,
        now=call.now,
        admin=call.by,
        dry_run=q.get("dry_run") == "true",
        prune=q.get("prune") == "true",
    )
    return json_response(plan.as_dict())
