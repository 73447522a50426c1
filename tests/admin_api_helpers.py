"""Calling the admin API in tests: an administrator bootstrapped the documented way, its
client_credentials tokens, and a small client that sends them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from sts.services import nhis
from sts.store.admin import admin_store
from tests.conftest import Registered
from tests.exchange_fixtures import client_credentials

PREFIX = "/admin/v1"
ALL_SCOPES = "sts:admin sts:audit sts:revoke"


@dataclass
class Api:
    """The admin API as one bearer token sees it."""

    client: Any
    token: str

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        if body is not None:
            kwargs["json"] = body
        url = path if path.startswith("/.well-known") else PREFIX + path
        return self.client.open(url, method=method, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.call("POST", path, body, **kwargs)

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        """The JSON answer, asserting its status."""
        resp = self.call(method, path, body)
        assert resp.status_code == status, (resp.status_code, resp.get_json())
        return resp.get_json()


def bootstrap(runtime: Any, clock: Any, name: str = "ops") -> Registered:
    """The first administrator, as ``sts admin bootstrap`` registers it."""
    with admin_store(runtime.engine) as store:
        view, secret = nhis.bootstrap_admin(
            store, runtime.hasher, name=name, now=clock.now(), admin="test"
        )
    return Registered(view.client_id, secret, view.sub)


def token_for(client: Any, who: Registered, scope: str | None = None) -> str:
    params = {"scope": scope} if scope else {}
    resp = client_credentials(client, who, **params)
    assert resp.status_code == 200, resp.get_json()
    token: str = resp.get_json()["access_token"]
    return token


@pytest.fixture
def admin_nhi(runtime: Any, clock: Any) -> Registered:
    return bootstrap(runtime, clock)


@pytest.fixture
def admin(client: Any, admin_nhi: Registered) -> Api:
    """The admin API with a token carrying every admin scope."""
    return Api(client, token_for(client, admin_nhi))


def scoped(client: Any, admin: Api, name: str, scope: str) -> Api:
    """A second administrator, registered through the API, holding only ``scope``."""
    created = admin.ok(
        "POST",
        "/nhis",
        {"name": name, "kind": "service", "scope": scope, "grants": ["client_credentials"]},
        201,
    )
    who = Registered(name, created["client_secret"], name)
    return Api(client, token_for(client, who))


def error(status_code: int, code: str, description: str, **extra: Any) -> dict[str, Any]:
    """A whole admin error body (for asserting equality)."""
    errors = {
        401: "invalid_token",
        403: "insufficient_scope",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        422: "invalid_request",
        400: "invalid_request",
        413: "invalid_request",
        415: "invalid_request",
    }
    return {"error": errors[status_code], "error_description": description, "code": code, **extra}


def invalid(*fields: tuple[str, str]) -> dict[str, Any]:
    listed = [{"field": f, "message": m} for f, m in fields]
    return error(
        422,
        "validation_failed",
        "The request is invalid: " + "; ".join(f"{f}: {m}" for f, m in fields),
        fields=listed,
    )
