"""The registry as code (``sts registry export`` / ``apply``): apply(export(R)) changes
nothing; a document converges any registry to it; a malformed or refused document changes
nothing and names its line. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from sts.services import issuers, manifest, nhis, rules
from sts.services.manifest import ManifestError
from sts.store.admin import admin_store
from tests.conftest import empty_database
from tests.helpers import KeyPair

IDP = "https://idp.example.test"
FUTURE = "2099-01-01T00:00:00Z"


def build_registry(runtime: Any, now: int) -> None:
    """R: an issuer, a service by secret, an agent by keys, a disabled NHI, rules."""
    with admin_store(runtime.engine) as store:
        issuers.add_issuer(store, issuer=IDP, jwks=KeyPair("idp-1").jwks, audiences=["web"],
                           now=now, admin="test")
        for name, kind, extra in [
            ("web", "service", {"scope": "orders:read"}),
            ("agent", "agent", {"jwks": KeyPair("agent-1").jwks}),
            ("tool", "service", {"resources": ["https://tool.example.test"]}),
            ("data", "service", {"owner": "data-team"}),
        ]:
            nhis.create_nhi(store, runtime.hasher, name=name, kind=kind, now=now, admin="test",
                            **extra)
        nhis.set_nhi_status(store, "data", status="disabled", reason="audit", now=now,
                            admin="test")
        rules.create_rule(store, actor="web", targets=["agent"], scope="orders:read",
                          subject="sub:alice", subject_issuer=IDP, now=now, admin="test")
        rules.create_rule(store, actor="agent", targets=["tool", "data"], scope="orders:read",
                          upstream="web", max_depth=2, max_ttl=120, expires=FUTURE,
                          require_dpop=True, now=now, admin="test")


def export(runtime: Any) -> dict[str, Any]:
    with admin_store(runtime.engine) as store:
        return manifest.export(store)


def apply(runtime: Any, text: str, now: int, **kwargs: Any) -> manifest.Plan:
    with admin_store(runtime.engine) as store:
        return manifest.apply(store, runtime.hasher, text, now=now, admin="test", **kwargs)


def test_apply_when_given_its_own_export_then_nothing_changes(runtime: Any, clock: Any) -> None:
    build_registry(runtime, clock.now())
    before = export(runtime)
    text = manifest.dump(before)
    assert "client_secret" not in text and "secret_hash" not in text
    plan = apply(runtime, text, clock.now(), prune=True)
    assert plan.changes == [] and plan.lines() == [
        "No changes: the registry matches the document."
    ]
    assert export(runtime) == before
    # JSON is a document too, and says the same.
    assert apply(runtime, manifest.dump(before, "json"), clock.now()).changes == []


def test_apply_when_another_registry_then_it_converges_and_a_second_apply_is_a_no_op(
    runtime: Any, clock: Any, engine: Any
) -> None:
    now = clock.now()
    build_registry(runtime, now)
    wanted = export(runtime)
    empty_database(engine)
    with admin_store(engine) as store:  # a different registry
        issuers.add_issuer(store, issuer=IDP, jwks_uri="https://idp.example.test/jwks",
                           now=now, admin="test")
        issuers.add_issuer(store, issuer="https://old-idp.example.test",
                           jwks=KeyPair("old").jwks, now=now, admin="test")
        nhis.create_nhi(store, runtime.hasher, name="web", kind="agent", scope="x",
                        now=now, admin="test")
        nhis.create_nhi(store, runtime.hasher, name="legacy", kind="service", now=now,
                        admin="test")
        rules.create_rule(store, actor="web", targets=["legacy"], scope="x", now=now,
                          admin="test")

    dry = apply(runtime, manifest.dump(wanted), now, prune=True, dry_run=True)
    assert dry.dry_run and dry.changes and dry.secrets == {}
    assert export(runtime)["nhis"][0]["name"] == "legacy"  # a dry run changes nothing

    plan = apply(runtime, manifest.dump(wanted), now, prune=True)
    assert [(c["action"], c["kind"], c["name"]) for c in plan.changes] == [
        *[(c["action"], c["kind"], c["name"]) for c in dry.changes]
    ]
    summary = {(c["action"], c["kind"], c["name"]) for c in plan.changes}
    assert ("update", "issuer", IDP) in summary
    assert ("update", "nhi", "web") in summary
    assert ("delete", "nhi", "legacy") in summary
    assert ("delete", "issuer", "https://old-idp.example.test") in summary
    assert {("create", "nhi", n) for n in ("agent", "tool", "data")} <= summary
    assert set(plan.secrets) == {"tool", "data"}  # created without keys: a secret, once
    assert export(runtime) == wanted
    assert apply(runtime, manifest.dump(wanted), now, prune=True).changes == []


def test_apply_when_without_prune_then_nothing_unnamed_is_removed(
    runtime: Any, clock: Any
) -> None:
    build_registry(runtime, clock.now())
    doc = export(runtime)
    doc["nhis"] = [n for n in doc["nhis"] if n["name"] != "data"]
    doc["rules"] = []
    assert apply(runtime, manifest.dump(doc), clock.now()).changes == []
    assert len(export(runtime)["rules"]) == 2


def test_apply_when_a_rule_changes_then_it_is_updated_in_place(runtime: Any, clock: Any) -> None:
    build_registry(runtime, clock.now())
    doc = export(runtime)
    doc["rules"][1]["scope"] = "orders:read orders:write"
    doc["rules"][1]["status"] = "disabled"
    plan = apply(runtime, manifest.dump(doc), clock.now())
    assert plan.changes == [
        {"action": "update", "kind": "rule", "name": doc["rules"][1]["id"],
         "fields": ["terms", "status"]}
    ]
    assert plan.lines()[-1] == "Plan (did apply): 0 to create, 1 to change, 0 to remove."
    assert export(runtime) == doc


GOOD = """version: 1
nhis:
  - name: web
    kind: service
  - name: api
    kind: service
rules:
  - actor: web
    targets: [api]
    scope: orders:read
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1\nnhis:\n  - name: web\n    kind: [service\n", "line 5: not YAML or JSON"),
        (GOOD.replace("    kind: service\n  - name: api", "    kind: robot\n  - name: api"),
         "line 4: kind must be one of service, agent, workload"),
        (GOOD.replace("targets: [api]", "targets: [nowhere]"),
         "line 9: target 'nowhere' is not a registered NHI"),
        (GOOD.replace("    scope: orders:read\n", "    scope: orders:read\n    colour: red\n"),
         "line 11: rules: unknown field 'colour'"),
        (GOOD.replace("  - name: api", "  - name: web"), "line 5: nhis: 'web' given twice"),
        (GOOD.replace("version: 1", "version: 2"), "line 1: version must be 1"),
        (GOOD.replace("version: 1\n", ""), "line 1: the document needs 'version: 1'"),
        (GOOD + "secrets: []\n", "line 11: unknown section 'secrets'"),
        (GOOD.replace("    kind: service\n  - name: api",
                      "    kind: service\n    status: paused\n  - name: api"),
         "line 5: nhis: status must be active or disabled"),
        ("[1, 2]\n", "line 1: the document must be a mapping"),
        ("", "line 1: the document is empty"),
    ],
)
def test_apply_when_document_is_refused_then_its_line_is_named_and_nothing_changes(
    runtime: Any, clock: Any, text: str, message: str
) -> None:
    build_registry(runtime, clock.now())
    before = export(runtime)
    with pytest.raises(ManifestError) as refused:
        apply(runtime, text, clock.now(), prune=True)
    assert str(refused.value).startswith(message), str(refused.value)
    assert export(runtime) == before


def test_export_when_read_back_then_yaml_with_no_secret(runtime: Any, clock: Any) -> None:
    build_registry(runtime, clock.now())
    text = manifest.dump(export(runtime))
    assert text.startswith("# Chain STS registry")
    doc = yaml.safe_load(text)
    web = next(n for n in doc["nhis"] if n["name"] == "web")
    assert web == {"name": "web", "kind": "service", "sub": "web", "owner": "", "scope":
                   "orders:read", "grants": ["client_credentials", "token-exchange"],
                   "resources": [], "status": "active"}
    agent = next(n for n in doc["nhis"] if n["name"] == "agent")
    assert agent["jwks"]["keys"][0]["kid"] == "agent-1" and "d" not in agent["jwks"]["keys"][0]


def test_apply_when_pruning_then_the_administrator_applying_it_stays(
    runtime: Any, clock: Any
) -> None:
    build_registry(runtime, clock.now())
    with admin_store(runtime.engine) as store:
        plan = manifest.apply(store, runtime.hasher, "version: 1\n", now=clock.now(),
                              admin="web", prune=True)
    assert ("delete", "nhi", "web") not in {(c["action"], c["kind"], c["name"])
                                            for c in plan.changes}
    assert [n["name"] for n in export(runtime)["nhis"]] == ["web"]
    assert export(runtime)["rules"] == [] and export(runtime)["issuers"] == []
