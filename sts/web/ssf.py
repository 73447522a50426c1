"""The SSF transmitter's HTTP surface (DESIGN §11, OpenID SSF 1.0 §7-8, RFC 8936).

``GET /.well-known/ssf-configuration`` is public. The stream management endpoints
(configuration, status, verification) and a poll stream's endpoint take a bearer token this
STS issued by ``client_credentials`` to the receiver NHI for itself, carrying the scope
``ssf:manage`` (the same check as the admin API's tokens, :mod:`sts.admin_api.auth`); the
stream then belongs to that NHI. Each request is one transaction. Errors are JSON with
``error``, ``error_description``, a stable ``code`` and ``fields`` naming the input at fault;
nothing is stored when a request is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, request

from sts.admin_api.auth import authenticate
from sts.admin_api.errors import ApiError, json_response
from sts.runtime import Runtime
from sts.services import ssf as service
from sts.services.errors import Invalid, NotFound, ServiceError

bp = Blueprint("ssf", __name__)
REALM = 'Bearer realm="chain-sts-ssf"'


def _runtime() -> Runtime:
    rt: Runtime = current_app.extensions["sts"]
    return rt


def _error(status: int, error: str, code: str, description: str, **extra: Any) -> ApiError:
    return ApiError(status, error, code, description, **extra)


def _from_service(err: ServiceError) -> ApiError:
    fields = [{"field": err.field or "(body)", "message": err.message}]
    if isinstance(err, NotFound):
        return _error(404, "not_found", "stream_not_found", "No such stream.")
    if isinstance(err, service.Unreachable):
        return _error(
            400, "invalid_request", err.code, "The push endpoint cannot be reached.", fields=fields
        )
    if isinstance(err, service.TooSoon):
        return _error(
            429,
            "too_many_requests",
            err.code,
            "Verification was requested too recently.",
            headers={"Retry-After": "1"},
        )
    description = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return _error(
        400, "invalid_request", "invalid_configuration", f"The request is invalid: {description}",
        fields=fields,
    )  # fmt: skip


def _body() -> Any:
    if request.mimetype != "application/json":
        raise _error(415, "invalid_request", "unsupported_media_type", "Send application/json.")
    try:
        return json.loads(request.get_data(cache=False) or b"null")
    except (ValueError, UnicodeDecodeError):
        raise _error(400, "invalid_request", "malformed_json", "The body is not JSON.") from None


def _owner(conn: Any, rt: Runtime, now: int) -> str:
    try:
        caller = authenticate(conn, rt, now)
    except ApiError as err:
        raise _error(
            401,
            "invalid_token",
            err.code,
            "A valid bearer token of a receiver is required.",
            headers={"WWW-Authenticate": REALM},
            reason=err.reason,
        ) from None
    if service.SCOPE not in caller.scopes:
        raise _error(
            403,
            "insufficient_scope",
            "insufficient_scope",
            f"This needs the scope {service.SCOPE}.",
            headers={
                "WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{service.SCOPE}"'
            },
        )
    return caller.client_id


def _run(work: Callable[[service.Streams, Runtime], Response]) -> Response:
    rt = _runtime()
    now = rt.clock.now()
    try:
        with rt.engine.begin() as conn:
            owner = _owner(conn, rt, now)
            return work(service.Streams(conn, owner, rt.settings, now), rt)
    except ApiError as err:
        return err.response()
    except ServiceError as err:
        return _from_service(err).response()


@bp.get(service.METADATA_PATH)
def metadata() -> Response:
    response = json_response(service.transmitter_metadata(_runtime().settings))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.route(service.CONFIGURATION_PATH, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def configuration() -> Response:
    method = request.method

    def work(streams: service.Streams, rt: Runtime) -> Response:
        stream_id = request.args.get("stream_id")
        if method == "GET":
            if stream_id is None:
                return json_response(streams.list())
            return json_response(streams.config(streams.get(stream_id)))
        if method == "DELETE":
            if stream_id is None:
                raise Invalid("is required", "stream_id")
            streams.delete(stream_id)
            return Response(status=204)
        body = _body()
        if method == "POST":
            return json_response(streams.create(body), 201)
        return json_response(streams.update(body, replace=method == "PUT"))

    return _run(work)


@bp.route(service.STATUS_PATH, methods=["GET", "POST"])
def status() -> Response:
    def work(streams: service.Streams, rt: Runtime) -> Response:
        if request.method == "GET":
            return json_response(streams.status(request.args.get("stream_id")))
        return json_response(streams.set_status(_body()))

    return _run(work)


@bp.post(service.VERIFICATION_PATH)
def verification() -> Response:
    def work(streams: service.Streams, rt: Runtime) -> Response:
        streams.verify(_body(), rt.keys)
        return Response(status=204)

    return _run(work)


@bp.post(service.POLL_PATH + "<stream_id>")
def poll(stream_id: str) -> Response:
    def work(streams: service.Streams, rt: Runtime) -> Response:
        body = streams.poll(stream_id, _body(), service.signer(rt.keys, streams.now))
        return json_response(body)

    return _run(work)


def init_app(app: Any) -> None:
    app.register_blueprint(bp)
