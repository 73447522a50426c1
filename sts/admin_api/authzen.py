"""The STS as an OpenID AuthZEN 1.0 policy decision point (DESIGN §10), over HTTP.

``POST /access/v1/evaluation`` answers "would this exchange be allowed, and why" for an
administrator holding ``sts:audit`` (or ``sts:admin``): the same bearer tokens, the same
refusals (401, 403, each audited as ``admin.denied``) and the same error shape as the admin
API. Bad input is a 400 naming the member at fault (``invalid_evaluation``); a decision,
allowed or not, is a 200 (AuthZEN, HTTPS binding: errors). The question is read by
:mod:`sts.oauth.authzen`, answered by :func:`sts.services.policy.explain` (audited as
``policy.evaluated``) and nothing is minted. ``GET /.well-known/authzen-configuration`` is
the PDP metadata (§9). The ``X-Request-Id`` of the request is echoed by the application.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g

from sts.admin_api.auth import Admin, authenticate
from sts.admin_api.errors import ApiError, json_response
from sts.admin_api.validation import json_document
from sts.admin_api.views.routing import READ, record_denial
from sts.oauth.authzen import (
    EVALUATION_PATH,
    METADATA_PATH,
    EvaluationError,
    evaluation_response,
    metadata,
    parse_evaluation,
)
from sts.runtime import Runtime
from sts.services import policy
from sts.store.sql import SqlStore

bp = Blueprint("authzen", __name__)


def _invalid(err: EvaluationError) -> ApiError:
    return ApiError(
        400,
        "invalid_request",
        "invalid_evaluation",
        f"The request is invalid: {err.field}: {err.message}",
        fields=[{"field": err.field, "message": err.message}],
    )


@bp.post(EVALUATION_PATH)
def access_evaluation() -> Response:
    rt: Runtime = current_app.extensions["sts"]
    now = rt.clock.now()
    admin: Admin | None = None
    try:
        with rt.engine.begin() as conn:
            admin = authenticate(conn, rt, now)
            admin.require(READ)
            try:
                query = parse_evaluation(json_document(), rt.settings.max_token_bytes)
            except EvaluationError as err:
                raise _invalid(err) from None
            answer = policy.explain(
                SqlStore(conn),
                rt.server.evaluation,
                query,
                by=admin.client_id,
                now=now,
                request_id=g.get("request_id", ""),
            )
            return json_response(evaluation_response(answer))
    except ApiError as err:
        if err.status in (401, 403):
            record_denial(rt, now, err, admin.client_id if admin else None)
        return err.response()


@bp.get(METADATA_PATH)
def pdp_metadata() -> Response:
    rt: Runtime = current_app.extensions["sts"]
    response = json_response(metadata(rt.settings.issuer))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
