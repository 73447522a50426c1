"""Request validation against the OpenAPI document's own schemas (JSON Schema 2020-12).

A body or query string that breaks its schema is a 422 listing every field at fault, in
words that never echo the value; a body that is not JSON at all is a 400. The service layer
checks meaning (does the NHI exist, is the JWKS usable) and says which field it refuses.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any

from flask import request
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from sts.admin_api import openapi
from sts.admin_api.errors import ApiError, invalid

_INTEGER = re.compile(r"^-?[0-9]{1,20}$")
_PATTERN_WORDS = {
    openapi.NAME_PATTERN: "must be 1-128 letters, digits, '.', '_' or '-', starting alphanumeric",
    openapi.TARGET_PATTERN: "must be '*' or an NHI name",
    openapi.ID_PATTERN: "must be 1-64 letters, digits, '.', '_', '~' or '-'",
    openapi.URI_PATTERN: "must be an absolute URI of printable ASCII characters",
    openapi.PRINTABLE: "must not contain control characters",
}


@lru_cache(maxsize=64)
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(openapi.schemas()[name])


def _where(path: Any) -> str:
    """``targets[0]``, ``jwks.keys``: where in the body (names cut short: they are input)."""
    out = ""
    for part in path:
        name = str(part)[:64]
        out += f"[{part}]" if isinstance(part, int) else (f".{name}" if out else name)
    return out


def _type_words(expected: Any) -> str:
    names = {
        "string": "a string",
        "integer": "an integer",
        "boolean": "a boolean",
        "object": "an object",
        "array": "an array",
        "null": "null",
        "number": "a number",
    }
    types = expected if isinstance(expected, list) else [expected]
    return " or ".join(names.get(str(t), str(t)) for t in types)


def _messages(error: ValidationError) -> list[tuple[str, str]]:
    """(field, message) pairs for one schema violation; never the offending value."""
    where = _where(error.absolute_path)
    schema, instance = error.schema, error.instance
    value: Any = error.validator_value
    kind = error.validator
    if kind == "required" and isinstance(instance, dict):
        return [
            (_where([*error.absolute_path, p]), "is required") for p in value if p not in instance
        ]
    if kind == "additionalProperties" and isinstance(instance, dict):
        known = set(schema.get("properties", {})) if isinstance(schema, dict) else set()
        return [
            (_where([*error.absolute_path, p]), "is not a known field")
            for p in instance
            if p not in known
        ]
    if kind == "type":
        message = f"must be {_type_words(value)}"
    elif kind == "enum":
        message = "must be one of " + ", ".join(str(v) for v in value)
    elif kind == "pattern":
        message = _PATTERN_WORDS.get(str(value), "has characters or a form not allowed here")
    elif kind == "minLength":
        message = f"must be at least {value} character{'s' if value != 1 else ''}"
    elif kind == "maxLength":
        message = f"must be at most {value} characters"
    elif kind == "minimum":
        message = f"must be at least {value}"
    elif kind == "maximum":
        message = f"must be at most {value}"
    elif kind == "minItems":
        message = f"must hold at least {value} item{'s' if value != 1 else ''}"
    elif kind == "maxItems":
        message = f"must hold at most {value} items"
    else:
        message = "is not valid here"
    return [(where or "(body)", message)]


def check(instance: Any, schema_name: str) -> None:
    """Raise a 422 listing every violation of the named component schema."""
    found = {
        (field, message)
        for error in _validator(schema_name).iter_errors(instance)
        for field, message in _messages(error)
    }
    if found:
        raise invalid([{"field": f, "message": m} for f, m in sorted(found)])


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _number(text: str) -> float | int:
    """JSON numbers with a fraction or exponent: finite only (no database stores 1e999), and
    an integral one is an integer (JSON Schema counts 2.0 as an integer; so do we)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return int(value) if value.is_integer() else value


def body(schema_name: str, *, required: bool = True) -> dict[str, Any]:
    """The JSON object in the request body, valid against the named schema. An empty body
    stands for ``{}`` (so a missing body reports the missing fields)."""
    data = json_document()
    if not required and data == {}:
        return {}
    check(data, schema_name)
    result: dict[str, Any] = data
    return result


def json_document() -> Any:
    """The JSON document in the request body (``{}`` when it is empty): ``application/json``
    only (415), valid JSON with finite numbers only (400)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        data: Any = {}
    else:
        if request.mimetype != "application/json":
            raise ApiError(
                415,
                "invalid_request",
                "unsupported_media_type",
                "The body must be application/json.",
            )
        try:
            data = json.loads(
                raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_number
            )
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise ApiError(
                400, "invalid_request", "malformed_json", "The body is not valid JSON."
            ) from None
    return data


def query(path: str, method: str = "get") -> dict[str, Any]:
    """The query parameters the operation declares, typed and checked; others are ignored."""
    values: dict[str, Any] = {}
    fields: list[dict[str, str]] = []
    properties: dict[str, Any] = {}
    for param in openapi.parameters(path, method):
        if param["in"] != "query":
            continue
        name, schema = param["name"], param["schema"]
        properties[name] = schema
        given = request.args.getlist(name)
        if not given:
            if param.get("required"):
                fields.append({"field": name, "message": "is required"})
            elif "default" in schema:
                values[name] = schema["default"]
            continue
        if len(given) > 1:
            fields.append({"field": name, "message": "must be given once"})
            continue
        raw = given[0]
        values[name] = int(raw) if schema.get("type") == "integer" and _INTEGER.match(raw) else raw
    if fields:
        raise invalid(fields)
    errors = Draft202012Validator({"type": "object", "properties": properties}).iter_errors(values)
    found = {(field, message) for e in errors for field, message in _messages(e)}
    if found:
        raise invalid([{"field": f, "message": m} for f, m in sorted(found)])
    return values


def path_matches(value: str, pattern: str) -> bool:
    return re.fullmatch(pattern, value) is not None
