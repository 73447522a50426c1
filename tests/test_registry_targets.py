"""The registry keeps target names unambiguous: a resource URI (RFC 8707) and an NHI's sub
both name a target, so neither may name a different NHI's (DESIGN §3, §5.6)."""

from __future__ import annotations

import pytest

from sts.services.errors import Conflict


def test_resource_when_it_is_another_nhis_sub_then_conflict(make_nhi):
    make_nhi("data", sub="https://data.example.test/api")
    with pytest.raises(Conflict) as err:
        make_nhi("shadow", resources=["https://data.example.test/api"])
    assert (err.value.code, err.value.message) == (
        "conflict",
        "resource URI 'https://data.example.test/api' is already the sub of NHI 'data'",
    )


def test_sub_when_it_is_another_nhis_resource_then_conflict(make_nhi):
    make_nhi("data", resources=["https://data.example.test/api"])
    with pytest.raises(Conflict) as err:
        make_nhi("shadow", sub="https://data.example.test/api")
    assert (err.value.code, err.value.message) == (
        "conflict",
        "sub 'https://data.example.test/api' is already a resource URI of NHI 'data'",
    )


def test_resource_lookup_when_uri_is_a_resource_or_a_sub_then_that_nhi(make_nhi, runtime):
    from sts.store.sql import SqlStore

    make_nhi("data", resources=["https://data.example.test/api"])
    make_nhi("tool", "workload", sub="spiffe://example.test/tool")
    with runtime.engine.connect() as conn:
        store = SqlStore(conn)
        found = store.target_by_resource("https://data.example.test/api")
        assert found is not None and found.client_id == "data"
        found = store.target_by_resource("spiffe://example.test/tool")
        assert found is not None and found.client_id == "tool"
        assert store.target_by_resource("https://nowhere.example.test/") is None
