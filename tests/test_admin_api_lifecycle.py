"""The admin API's lifecycle operations and the registry as code, whole bodies asserted."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.admin_api_helpers import Api, bootstrap, error, invalid, token_for
from tests.exchange_fixtures import client_credentials
from tests.helpers import KeyPair

IDP = "https://idp.example.test"
IDP_PATH = "/issuers/https%3A%2F%2Fidp.example.test"


@pytest.fixture
def api(client: Any, runtime: Any, clock: Any) -> Api:
    """The admin API with a token carrying every admin scope (administrator ``ops``)."""
    return Api(client, token_for(client, bootstrap(runtime, clock)))


def test_nhi_delete_when_live_tokens_then_409_until_revoke(api: Api, client: Any) -> None:
    web = api.ok("POST", "/nhis", {"name": "web", "kind": "service"}, 201)
    who = type("Who", (), {"client_id": "web", "secret": web["client_secret"]})()
    assert client_credentials(client, who).status_code == 200
    refused = api.call("POST", "/nhis/web/delete")
    assert (refused.status_code, refused.get_json()) == (
        409,
        error(409, "nhi_conflict",
              "1 live token(s) involve this NHI; revoke them first (--revoke)."),
    )  # fmt: skip
    assert api.ok("POST", "/nhis/web/delete?revoke=true") == {
        "client_id": "web", "deleted": True, "revoked_tokens": 1}  # fmt: skip
    gone = api.call("GET", "/nhis/web")
    assert (gone.status_code, gone.get_json()["code"]) == (404, "nhi_not_found")


def test_nhi_update_when_keys_rotate_then_old_keys_revoked_and_secret_kept(api: Api) -> None:
    api.ok("POST", "/nhis", {"name": "agent", "kind": "agent",
                               "jwks": KeyPair("a-1").jwks}, 201)  # fmt: skip
    updated = api.ok("POST", "/nhis/agent/update", {"jwks": KeyPair("a-2").jwks,
                                                       "scope": "x"})  # fmt: skip
    live = sorted((c["kids"], c["status"]) for c in updated["credentials"])
    assert live == [(["a-1"], "revoked"), (["a-2"], "active")]
    assert updated["scope"] == "x"
    bad = api.call("POST", "/nhis/agent/update", {"kind": "robot"})
    assert bad.status_code == 422


def test_issuer_update_disable_enable_remove(api: Api) -> None:
    api.ok("POST", "/issuers", {"issuer": IDP, "jwks": KeyPair("i-1").jwks}, 201)
    rotated = api.ok("POST", IDP_PATH + "/update", {"jwks": KeyPair("i-2").jwks})
    assert rotated["kids"] == ["i-2"]
    assert api.ok("POST", IDP_PATH + "/disable", {"reason": "breach"})["status"] == "revoked"
    assert api.ok("POST", IDP_PATH + "/enable")["status"] == "active"
    assert api.ok("POST", IDP_PATH + "/remove") == {
        "issuer": IDP, "removed": True, "revoked_tokens": 0}  # fmt: skip
    assert api.call("GET", IDP_PATH).status_code == 404


def test_rule_update_enable_delete(api: Api) -> None:
    for name in ("web", "api"):
        api.ok("POST", "/nhis", {"name": name, "kind": "service"}, 201)
    rule = api.ok("POST", "/rules", {"actor": "web", "targets": ["api"], "scope": "a"}, 201)
    rid = rule["id"]
    changed = api.ok("POST", f"/rules/{rid}/update",
                       {"actor": "web", "targets": ["api"], "scope": "a b", "max_ttl": 60})
    assert {**changed, "scope": "a", "max_ttl": None} == rule
    api.ok("POST", f"/rules/{rid}/disable")
    assert api.ok("POST", f"/rules/{rid}/enable")["status"] == "enabled"
    assert api.ok("POST", f"/rules/{rid}/delete") == {
        "id": rid, "deleted": True, "revoked_tokens": 0}  # fmt: skip
    assert api.ok("GET", "/rules")["total"] == 0


def test_registry_export_and_apply_through_the_api(api: Api) -> None:
    api.ok("POST", "/nhis", {"name": "web", "kind": "service"}, 201)
    exported = api.ok("GET", "/registry")
    assert [n["name"] for n in exported["nhis"]] == ["ops", "web"]
    assert api.ok("POST", "/registry/apply?prune=true", exported)["changes"] == []
    wanted = {**exported, "nhis": [*exported["nhis"], {"name": "api", "kind": "agent"}]}
    text = yaml.safe_dump(wanted)
    resp = api.call("POST", "/registry/apply", data=text, content_type="application/yaml")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["changes"] == [{"action": "create", "kind": "nhi", "name": "api", "fields": []}]
    assert body["summary"] == {"create": 1, "update": 0, "delete": 0}
    assert set(body["client_secrets"]) == {"api"}
    broken = api.call("POST", "/registry/apply", {"version": 1, "nhis": [{"name": "x"}]})
    assert (broken.status_code, broken.get_json()) == (
        422, invalid(("document", "line 1: nhis: entry without 'kind'")))  # fmt: skip
