"""What every part of the document shares: the admin API's constants and input patterns, the
small builders its schemas are written with, the error responses, the parameters and the shape
of an admin operation.

The builders return fresh dictionaries, but the constants (``STR``, ``LIMIT``...) are shared
by every schema that uses them: nothing here or downstream may change a schema in place.
"""

from __future__ import annotations

from typing import Any

from sts.services.admin import ADMIN_SCOPES

Schema = dict[str, Any]

OPENAPI_PATH = "/.well-known/openapi.json"
PREFIX = "/admin/v1"

#: Admin scopes (granted to an NHI, carried by its client_credentials token).
ADMIN, AUDIT, REVOKE = ADMIN_SCOPES
#: Who may call an admin operation: read it, change it, or contain an incident with it.
READ = (ADMIN, AUDIT)
WRITE = (ADMIN,)
CONTAIN = (ADMIN, REVOKE)

#: Every free-text string the admin API accepts is free of control characters and of lone
#: surrogates (which no database can store).
PRINTABLE = r"^[^\u0000-\u001f\u007f\ud800-\udfff]*$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
ID_PATTERN = r"^[A-Za-z0-9._~-]{1,64}$"
TARGET_PATTERN = r"^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,127})$"
URI_PATTERN = r"^[A-Za-z][A-Za-z0-9+.-]*:[!-~]{1,2040}$"
MAX_INT = 2**31 - 1
MAX_TIME = 2**53 - 1
MAX_PAGE = 1000

#: Stable machine-readable error codes of the admin API.
ERROR_CODES = (
    "missing_token",
    "invalid_token",
    "insufficient_scope",
    "bad_request",
    "malformed_json",
    "unsupported_media_type",
    "payload_too_large",
    "validation_failed",
    "invalid_evaluation",
    "route_not_found",
    "method_not_allowed",
    "nhi_not_found",
    "credential_not_found",
    "issuer_not_found",
    "rule_not_found",
    "token_not_found",
    "transaction_not_found",
    "nhi_conflict",
    "issuer_conflict",
    "conflict",
    "server_error",
    "temporarily_unavailable",
)
#: The classes of those errors (the ``error`` member).
ERRORS = (
    "invalid_request",
    "invalid_token",
    "insufficient_scope",
    "not_found",
    "method_not_allowed",
    "conflict",
    "server_error",
    "temporarily_unavailable",
)


# -- schemas ----------------------------------------------------------------------------------
def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def described(schema: Schema, description: str) -> Schema:
    return {**schema, "description": description}


def enum(values: tuple[str, ...] | list[str]) -> Schema:
    return {"type": "string", "enum": list(values)}


def matching(pattern: str) -> Schema:
    return {"type": "string", "pattern": pattern}


def integer(minimum: int, maximum: int, **extra: Any) -> Schema:
    return {"type": "integer", "minimum": minimum, "maximum": maximum, **extra}


def text(max_length: int = 1024, min_length: int = 0, **extra: Any) -> Schema:
    """Free text the admin API accepts: printable, bounded."""
    schema: Schema = {"type": "string", "maxLength": max_length, "pattern": PRINTABLE}
    if min_length:
        schema["minLength"] = min_length
    schema.update(extra)
    return schema


def nullable(schema: Schema) -> Schema:
    return {**schema, "type": [schema["type"], "null"]}


def obj(properties: Schema, required: list[str] | None = None, *, closed: bool = True) -> Schema:
    """An object; every property required unless ``required`` says otherwise."""
    schema: Schema = {"type": "object", "properties": properties}
    schema["required"] = list(properties) if required is None else required
    if closed:
        schema["additionalProperties"] = False
    return schema


def array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
OBJECT: Schema = {"type": "object"}
OPT_STR = nullable(STR)
OPT_INT = nullable(INT)
STRINGS = array(STR)
#: Either state of a credential or a trusted issuer.
ACTIVE_OR_REVOKED = ("active", "revoked")


def boolean_query(name: str, description: str) -> Schema:
    """A ``true``/``false`` query parameter."""
    return query(name, described(enum(["true", "false"]), description))


def listing(item: str) -> Schema:
    """Every item, in one answer."""
    return obj({"items": array(ref(item))})


def page(item: str) -> Schema:
    """A page of items, with the total and the window asked for."""
    return obj({"items": array(ref(item)), "total": INT, "limit": INT, "offset": INT})


def with_secret(properties: Schema) -> Schema:
    """A resource just created, with the generated secret shown this once (if any)."""
    secret = described(
        STR, "The generated client secret. Shown in this response only: store it now."
    )
    return obj({**properties, "client_secret": secret}, list(properties))


def schemas() -> dict[str, Schema]:
    """The error and the reason bodies every resource shares."""
    return {
        "Error": described(
            obj(
                {
                    "error": enum(ERRORS),
                    "error_description": STR,
                    "code": enum(ERROR_CODES),
                    "fields": array(
                        obj({"field": STR, "message": STR}),
                        description="With validation_failed: each input at fault.",
                    ),
                },
                ["error", "error_description", "code"],
            ),
            "Every admin API error. `error` is the class (RFC 6750 names for token problems), "
            "`code` the stable machine-readable reason.",
        ),
        "Reason": obj({"reason": text(1000)}, []),
        "RequiredReason": obj({"reason": text(1000, 1)}, ["reason"]),
    }


# -- responses --------------------------------------------------------------------------------
def response(schema: Schema | str, description: str, **extra: Any) -> Schema:
    """A JSON response; ``schema`` a schema, or the name of a component schema."""
    return {
        "description": description,
        "content": {
            "application/json": {"schema": ref(schema) if isinstance(schema, str) else schema}
        },
        **extra,
    }


def created(schema: str, description: str) -> Schema:
    """201: the resource created, with its address in ``Location``."""
    return response(schema, description, headers={"Location": {"schema": STR}})


def error(description: str, **extra: Any) -> Schema:
    return response("Error", description, **extra)


WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": "RFC 6750 §3: `Bearer` with the error and, for 403, the scope needed.",
        "required": True,
        "schema": STR,
    }
}


# -- parameters -------------------------------------------------------------------------------
def path_param(name: str, pattern: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": matching(pattern),
    }


def query(name: str, schema: Schema, description: str = "") -> Schema:
    param = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        param["description"] = description
    return param


NAME_PARAM = path_param("name", NAME_PATTERN, "The NHI's client_id.")
JTI_PARAM = path_param("jti", ID_PATTERN, "A token's jti.")
TXN_PARAM = path_param("txn", ID_PATTERN, "A transaction id (the jti of its root token).")
LIMIT = query("limit", integer(1, MAX_PAGE, default=100))
OFFSET = query("offset", integer(0, MAX_INT, default=0))


# -- operations -------------------------------------------------------------------------------
def admin_op(
    tag: str,
    operation_id: str,
    summary: str,
    scopes: tuple[str, ...],
    responses: dict[str, Schema],
    *,
    parameters: list[Schema] | None = None,
    body: str | None = None,
    body_required: bool = True,
    description: str = "",
    not_found: bool = False,
) -> Schema:
    """An admin operation: its own responses, and the errors every admin operation shares
    (401, 403, default), a 404 if it names a resource, and a 400 and 422 if it takes input."""
    allowed = ", ".join(f"`{s}`" for s in scopes)
    op: Schema = {
        "operationId": operation_id,
        "summary": summary,
        "description": (description + "\n\n" if description else "") + f"Scopes: {allowed}.",
        "tags": [tag],
        "security": [{"adminToken": [scope]} for scope in scopes],
        "parameters": parameters or [],
        "responses": {
            **responses,
            "401": error("No bearer token, or not an admin token.", headers=WWW_AUTHENTICATE),
            "403": error("The token lacks the scope this needs.", headers=WWW_AUTHENTICATE),
            "default": error("Any other error."),
        },
    }
    if not_found:
        op["responses"]["404"] = error("Not found.")
    if body is not None:
        op["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": ref(body)}},
        }
        op["responses"]["422"] = error(
            "The body or a parameter is invalid (`fields` names each input at fault)."
        )
        op["responses"]["400"] = error("The body is not JSON.")
    elif any(p["in"] == "query" for p in parameters or []):
        op["responses"]["422"] = error("A query parameter is invalid.")
    return op


def lookup(
    tag: str, operation_id: str, summary: str, params: list[Schema], schema: str, description: str
) -> Schema:
    """A read of what the path names: 200 with it, or 404."""
    return admin_op(
        tag,
        operation_id,
        summary,
        READ,
        {"200": response(schema, description)},
        parameters=params,
        not_found=True,
    )
