"""The OpenAPI 3.1 document of the whole HTTP surface: the OAuth endpoints and the admin API.

It is data, built once per issuer, and it is also what the admin API validates request
bodies and query strings against (:mod:`sts.admin_api.validation`), so the document and the
behaviour cannot drift apart. Served at :data:`OPENAPI_PATH`.

One module per resource holds its schemas and its operations (:mod:`.nhis`,
:mod:`.credentials`, :mod:`.issuers`, :mod:`.rules`, :mod:`.revocations`, :mod:`.chains`,
:mod:`.audit`, :mod:`.authzen` for the policy decision point, and :mod:`.oauth` and
:mod:`.ssf` for everything else outside the admin API); :mod:`.common` what they share. This
module puts them together.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from sts import __version__
from sts.admin_api.openapi import (
    audit,
    authzen,
    chains,
    common,
    credentials,
    issuers,
    manifest,
    nhis,
    oauth,
    revocations,
    rules,
    ssf,
)
from sts.admin_api.openapi.common import (
    ADMIN,
    AUDIT,
    ERROR_CODES,
    ID_PATTERN,
    NAME_PATTERN,
    OPENAPI_PATH,
    PREFIX,
    PRINTABLE,
    REVOKE,
    TARGET_PATTERN,
    URI_PATTERN,
)
from sts.oauth.rfc8414 import TOKEN_PATH

__all__ = [
    "ADMIN",
    "AUDIT",
    "ERROR_CODES",
    "ID_PATTERN",
    "NAME_PATTERN",
    "OPENAPI_PATH",
    "PREFIX",
    "PRINTABLE",
    "REVOKE",
    "TARGET_PATTERN",
    "URI_PATTERN",
    "admin_paths",
    "document",
    "parameters",
    "schemas",
]

#: The admin API's resources, in the order the document lists them.
RESOURCES = (nhis, credentials, issuers, rules, revocations, chains, audit, manifest)


@lru_cache(maxsize=1)
def schemas() -> dict[str, Any]:
    """The component schemas (shared: never change the result)."""
    merged = common.schemas()
    for part in (*RESOURCES, oauth, authzen, ssf):
        merged.update(part.schemas())
    return merged


@lru_cache(maxsize=1)
def admin_paths() -> dict[str, Any]:
    """The admin API's path items (shared: never change the result)."""
    return {path: item for part in RESOURCES for path, item in part.paths().items()}


def _security_schemes(base: str) -> dict[str, Any]:
    return {
        "adminToken": {
            "type": "oauth2",
            "description": "A bearer token this STS issued by client_credentials to an active "
            "NHI for itself (audience: this STS) carrying an admin scope. Tokens minted by a "
            "token exchange are never admin credentials.",
            "flows": {
                "clientCredentials": {
                    "tokenUrl": base + TOKEN_PATH,
                    "scopes": {
                        ADMIN: "Everything.",
                        AUDIT: "Read only: registry, chains, audit, dry-run revocations.",
                        REVOKE: "Contain: revoke, disable NHIs and rules.",
                    },
                }
            },
        },
        "clientBasic": {"type": "http", "scheme": "basic"},
        "metricsToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "The static STS_METRICS_TOKEN a Prometheus scraper presents.",
        },
        "feedBearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "A client_credentials token of the polling client.",
        },
        "ssfToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "A client_credentials token of the receiver NHI for itself, with "
            "the scope ssf:manage.",
        },
    }


@lru_cache(maxsize=8)
def _document(issuer: str) -> dict[str, Any]:
    base = issuer.rstrip("/")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Chain STS",
            "version": __version__,
            "summary": "OAuth 2.0 token exchange with identity chaining, and its admin API.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": base}],
        "tags": [tag for part in (oauth, authzen, *RESOURCES, ssf) for tag in part.TAGS],
        "paths": {**oauth.paths(), **authzen.paths(), **admin_paths(), **ssf.paths()},
        "components": {"schemas": schemas(), "securitySchemes": _security_schemes(base)},
    }


def document(issuer: str) -> dict[str, Any]:
    """The document for this issuer (a copy: callers may change it)."""
    return copy.deepcopy(_document(issuer))


def parameters(path: str, method: str) -> list[dict[str, Any]]:
    """The parameters of an admin operation."""
    params: list[dict[str, Any]] = admin_paths()[PREFIX + path][method]["parameters"]
    return params
