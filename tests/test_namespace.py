"""One namespace (DESIGN §3): a name in ``aud``, ``sub`` or an ``act`` level always means one
NHI. No NHI's ``sub`` may be another NHI's ``client_id``, ``sub`` or resource URI, no
``client_id`` another's ``sub``, no resource URI another's name of any kind. The service
refuses such a registration (the admin API and the CLI call the same function), names the
field and the NHI already holding the name, and stores nothing.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import pytest
from click.testing import CliRunner, Result

from sts.cli import main
from sts.services import nhis
from sts.services.errors import Conflict
from sts.store.admin import AdminStore, admin_store
from tests.admin_api_helpers import admin, admin_nhi, error

__all__ = ["admin", "admin_nhi"]  # fixtures

SPIFFE_SVC = "spiffe://example.test/svc"
DATA_URI = "https://data.example.test/api"


def registered(runtime: Any) -> list[str]:
    with admin_store(runtime.engine) as store:
        views, _ = nhis.list_nhis(store)
    return [v.client_id for v in views]


# -- the service: every collision, refused with the field and the holder ---------------------
@pytest.mark.parametrize(
    ("existing", "new", "field", "message"),
    [
        # The attack: svc's sub is a SPIFFE ID, so "svc" looked free as a sub.
        (
            {"name": "svc", "sub": SPIFFE_SVC},
            {"name": "mal", "sub": "svc"},
            "sub",
            "sub 'svc' is already the client_id of NHI 'svc'",
        ),
        (
            {"name": "svc"},
            {"name": "mal", "sub": "svc"},
            "sub",
            "sub 'svc' is already the client_id of NHI 'svc'",
        ),
        (
            {"name": "svc", "sub": SPIFFE_SVC},
            {"name": "mal", "sub": SPIFFE_SVC},
            "sub",
            f"sub '{SPIFFE_SVC}' is already the sub of NHI 'svc'",
        ),
        (
            {"name": "data", "resources": [DATA_URI]},
            {"name": "mal", "sub": DATA_URI},
            "sub",
            f"sub '{DATA_URI}' is already a resource URI of NHI 'data'",
        ),
        # A client_id may not be another NHI's sub either.
        (
            {"name": "tool", "sub": "helper"},
            {"name": "helper"},
            "name",
            "name 'helper' is already the sub of NHI 'tool'",
        ),
        (
            {"name": "data", "sub": DATA_URI},
            {"name": "mal", "resources": ["https://other.example.test/", DATA_URI]},
            "resources",
            f"resource URI '{DATA_URI}' is already the sub of NHI 'data'",
        ),
        (
            {"name": "data", "resources": [DATA_URI]},
            {"name": "mal", "resources": [DATA_URI]},
            "resources",
            f"resource URI '{DATA_URI}' is already a resource URI of NHI 'data'",
        ),
        (
            {"name": "web", "sub": SPIFFE_SVC},
            {"name": "web"},
            "name",
            "an NHI named 'web' already exists",
        ),
    ],
)
def test_create_nhi_when_a_name_is_another_nhis_then_conflict_naming_field_and_holder(
    make_nhi, runtime, existing, new, field, message
):
    make_nhi(**existing)
    before = registered(runtime)
    with pytest.raises(Conflict) as err:
        make_nhi(**new)
    assert (err.value.code, err.value.field, err.value.what, err.value.message) == (
        "conflict",
        field,
        "nhi",
        message,
    )
    assert registered(runtime) == before


def test_create_nhi_when_sub_is_its_own_name_or_resource_then_created(make_nhi, runtime):
    """An NHI's names may repeat among themselves (the sub defaults to the name)."""
    make_nhi("svc", sub=SPIFFE_SVC)
    make_nhi("web")
    make_nhi("data", sub=DATA_URI, resources=[DATA_URI])
    assert registered(runtime) == ["data", "svc", "web"]


def test_create_nhi_when_disabled_holder_then_name_still_taken(make_nhi, runtime, clock):
    make_nhi("svc", sub=SPIFFE_SVC)
    with admin_store(runtime.engine) as store:
        nhis.set_nhi_status(
            store, "svc", status="disabled", reason="incident", now=clock.now(), admin="t"
        )
    with pytest.raises(Conflict) as err:
        make_nhi("mal", sub="svc")
    assert err.value.message == "sub 'svc' is already the client_id of NHI 'svc'"


def test_create_nhi_when_racing_a_registration_of_the_colliding_name_then_conflict(
    make_nhi, runtime, clock
):
    """Two registrations checked side by side must not both pass: the second waits for the
    first to commit, then sees its names (PostgreSQL reads committed rows only)."""
    outcome: list[Any] = []

    def register_mal() -> None:
        try:
            with admin_store(runtime.engine) as store:
                nhis.create_nhi(
                    store, runtime.hasher, name="mal", kind="service", sub="svc",
                    now=clock.now(), admin="t",
                )  # fmt: skip
            outcome.append("created")
        except Conflict as exc:
            outcome.append(exc.message)

    second = threading.Thread(target=register_mal)
    with runtime.engine.begin() as conn:
        nhis.create_nhi(
            AdminStore(conn), runtime.hasher, name="svc", kind="service", sub=SPIFFE_SVC,
            now=clock.now(), admin="t",
        )  # fmt: skip
        second.start()
        second.join(timeout=1.0)  # still waiting for this transaction
    second.join(timeout=30)
    assert not second.is_alive()
    assert outcome == ["sub 'svc' is already the client_id of NHI 'svc'"]
    assert registered(runtime) == ["svc"]


# -- the admin API -----------------------------------------------------------------------------
def test_admin_api_create_nhi_when_sub_is_another_nhis_client_id_then_409_nothing_stored(admin):
    admin.ok("POST", "/nhis", {"name": "svc", "kind": "service", "sub": SPIFFE_SVC}, 201)
    resp = admin.post("/nhis", {"name": "mal", "kind": "service", "sub": "svc"})
    assert resp.status_code == 409
    assert resp.get_json() == error(
        409,
        "nhi_conflict",
        "Sub 'svc' is already the client_id of NHI 'svc'.",
        fields=[{"field": "sub", "message": "sub 'svc' is already the client_id of NHI 'svc'"}],
    )
    assert [n["client_id"] for n in admin.ok("GET", "/nhis")["items"]] == ["ops", "svc"]


def test_admin_api_create_nhi_when_name_is_another_nhis_sub_then_409(admin):
    admin.ok("POST", "/nhis", {"name": "tool", "kind": "workload", "sub": "helper"}, 201)
    resp = admin.post("/nhis", {"name": "helper", "kind": "agent"})
    assert resp.status_code == 409
    assert resp.get_json() == error(
        409,
        "nhi_conflict",
        "Name 'helper' is already the sub of NHI 'tool'.",
        fields=[{"field": "name", "message": "name 'helper' is already the sub of NHI 'tool'"}],
    )


def test_admin_api_create_nhi_when_repeated_with_its_own_sub_and_resources_then_200(admin):
    attrs = {"name": "data", "kind": "service", "sub": DATA_URI, "resources": [DATA_URI]}
    first = admin.ok("POST", "/nhis", attrs, 201)
    first.pop("client_secret")
    assert admin.ok("POST", "/nhis", attrs, 200) == first


# -- the CLI -----------------------------------------------------------------------------------
@pytest.fixture
def sts(settings, runtime, tmp_path, monkeypatch) -> Any:
    """Runs ``sts`` against the test registry (each backend in turn)."""
    for name in list(os.environ):
        if name.startswith("STS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    env = {"STS_DATABASE_URL": settings.database_url, "STS_KEYS_DIR": str(settings.keys_dir)}

    def run(*args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(main, list(args), env=env)
        assert result.exit_code == code, (result.output, result.exception)
        return result

    return run


def test_cli_nhi_create_when_sub_is_another_nhis_client_id_then_one_line_and_exit_2(sts):
    sts("nhi", "create", "svc", "--kind", "service", "--sub", SPIFFE_SVC)
    result = sts("nhi", "create", "mal", "--kind", "service", "--sub", "svc", code=2)
    assert result.stdout == ""
    assert result.stderr == "error (conflict): sub 'svc' is already the client_id of NHI 'svc'\n"
    listed = json.loads(sts("nhi", "list", "--json").stdout)
    assert [n["client_id"] for n in listed["items"]] == ["svc"]


def test_cli_nhi_create_when_resource_is_another_nhis_sub_then_exit_2(sts):
    sts("nhi", "create", "data", "--kind", "service", "--sub", DATA_URI)
    result = sts("nhi", "create", "mal", "--kind", "agent", "--resource", DATA_URI, code=2)
    assert result.stderr == (
        f"error (conflict): resource URI '{DATA_URI}' is already the sub of NHI 'data'\n"
    )
