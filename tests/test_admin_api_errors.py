"""What the admin API answers when something other than the caller's input goes wrong: the
application's generic errors, in the admin shape; concurrent creates; routing elsewhere."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from sts.services import nhis
from sts.store.admin import admin_store
from tests.admin_api_helpers import admin, admin_nhi, error

__all__ = ["admin", "admin_nhi"]  # fixtures


def _fail(exc: Exception) -> Any:
    def raiser(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return raiser


def test_admin_api_when_unexpected_exception_then_the_app_generic_500_with_a_code(
    admin, monkeypatch, caplog
):
    monkeypatch.setattr(nhis, "list_nhis", _fail(RuntimeError("boom")))
    resp = admin.get("/nhis")
    assert resp.status_code == 500
    assert resp.get_json() == {
        "error": "server_error",
        "error_description": "The server encountered an unexpected error.",
        "code": "server_error",
    }
    assert "boom" not in resp.get_data(as_text=True)
    assert any(r.message == "unhandled error" for r in caplog.records)


def test_admin_api_when_database_unreachable_then_503_with_retry_after(admin, monkeypatch):
    down = OperationalError("SELECT 1", {}, Exception("connection refused"))
    monkeypatch.setattr(nhis, "list_nhis", _fail(down))
    resp = admin.get("/nhis")
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "5"
    assert resp.get_json() == {
        "error": "temporarily_unavailable",
        "error_description": "The service is temporarily unavailable.",
        "code": "temporarily_unavailable",
    }


def test_create_nhi_when_a_concurrent_create_commits_first_then_retried_and_idempotent(
    admin, runtime, clock, monkeypatch
):
    if runtime.engine.dialect.name == "sqlite":
        pytest.skip("SQLite serialises writers from BEGIN: two creates cannot race")
    ensure = nhis.ensure_nhi
    calls = []

    def racing(store: Any, hasher: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["name"])
        if len(calls) == 1:  # another request creates the same NHI and commits first
            with admin_store(runtime.engine) as other:
                ensure(other, hasher, **{**kwargs, "admin": "other"})
            raise IntegrityError("INSERT", {}, Exception("duplicate key"))
        return ensure(store, hasher, **kwargs)

    monkeypatch.setattr(nhis, "ensure_nhi", racing)
    resp = admin.post("/nhis", {"name": "web", "kind": "service"})
    assert (resp.status_code, calls) == (200, ["web", "web"])
    assert resp.get_json()["client_id"] == "web"


def test_create_nhi_when_integrity_error_persists_then_409_conflict(admin, monkeypatch):
    monkeypatch.setattr(
        nhis, "ensure_nhi", _fail(IntegrityError("INSERT", {}, Exception("duplicate")))
    )
    resp = admin.post("/nhis", {"name": "web", "kind": "service"})
    assert resp.status_code == 409
    assert resp.get_json() == error(
        409, "conflict", "A concurrent change conflicts with this request; try again."
    )


def test_non_admin_route_when_method_not_allowed_then_app_error_shape_unchanged(client):
    resp = client.delete("/jwks.json")
    assert resp.status_code == 405
    assert resp.get_json() == {
        "error": "invalid_request",
        "error_description": "Method Not Allowed",
    }


def test_openapi_document_when_fetched_then_cacheable_json(client):
    resp = client.get("/.well-known/openapi.json")
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "public, max-age=300"
    assert resp.get_json()["info"]["title"] == "Chain STS"
