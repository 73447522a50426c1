"""The service SDK as its own distribution: what it requires and loads, that it imports nothing
of the server, that the server takes the protocol values they share from it, and that the
former name ``sts.client`` still imports it."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from importlib.metadata import metadata, requires
from pathlib import Path

import chain_sts_client
import chain_sts_client.algorithms
import chain_sts_client.flask
import chain_sts_client.jwks
import chain_sts_client.scopes
import chain_sts_client.token_types
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

SDK_SOURCES = Path(__file__).resolve().parent.parent / "clients" / "python" / "src"
#: Never loaded by the SDK itself (Flask and requests only by the modules that need them).
SERVER_ONLY = ("sts", "sqlalchemy", "psycopg", "alembic", "authlib", "flask", "werkzeug")


def requirements(distribution: str) -> set[tuple[str, str]]:
    """(name, marker) of each requirement a distribution declares."""
    parsed = [Requirement(r) for r in requires(distribution) or []]
    return {(canonicalize_name(r.name), str(r.marker or "")) for r in parsed}


def loaded_after(statement: str, cwd: Path) -> list[str]:
    """The top-level packages of ``SERVER_ONLY`` and ``requests`` that a fresh, isolated
    interpreter has loaded after ``statement`` (run outside the repository)."""
    probe = (
        f"import sys; {statement}; "
        f"roots = {(*SERVER_ONLY, 'requests')!r}; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(roots)))"
    )
    out = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60, cwd=cwd)
    return ast.literal_eval(out.stdout.strip())


def test_distribution_when_installed_then_it_requires_only_pyjwt_joserfc_requests_flask_extra():
    assert requirements("chain-sts-client") == {
        ("pyjwt", ""),
        ("joserfc", ""),
        ("requests", ""),
        ("flask", 'extra == "flask"'),
        ("opentelemetry-api", 'extra == "otel"'),
    }
    assert {str(r) for r in map(Requirement, requires("chain-sts-client") or [])
            if r.name.lower() == "pyjwt"} == {"pyjwt[crypto]<3,>=2.9"}
    meta = metadata("chain-sts-client")
    assert (meta["Version"], meta["Requires-Python"]) == ("0.1.0", ">=3.11")


def test_server_distribution_when_installed_then_it_depends_on_this_sdk_version():
    assert ("chain-sts-client", "") in requirements("chain-sts")
    assert "chain-sts-client==0.1.0" in (requires("chain-sts") or [])


def test_import_when_fresh_interpreter_then_no_server_dependency_is_loaded(tmp_path):
    assert loaded_after("import chain_sts_client", tmp_path) == []


def test_import_former_name_when_fresh_interpreter_then_neither_flask_nor_requests(tmp_path):
    assert loaded_after("import sts.client", tmp_path) == ["sts"]


def test_sdk_sources_when_read_then_they_import_nothing_of_the_server():
    """Flask only in the Flask integration, requests only where it is used; never the
    server, its database libraries or its OAuth framework."""
    allowed = {"flask": {"flask.py"}, "requests": {"http_auth.py"}}
    sources = sorted((SDK_SOURCES / "chain_sts_client").glob("*.py"))
    assert len(sources) > 10
    offences = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for root in {name.split(".")[0] for name in names}:
                if root in (*SERVER_ONLY, "requests") and path.name not in allowed.get(root, ()):
                    offences.append(f"{path.name}: {root}")
    assert offences == []


def test_former_name_when_imported_then_each_module_is_the_sdk_module_itself():
    import sts.client.flask
    import sts.client.verifier
    from sts.client.flask import require_token
    from sts.client.http_auth import ExchangeAuth

    assert sts.client.TokenVerifier is chain_sts_client.TokenVerifier
    assert set(sts.client.__all__) == set(chain_sts_client.__all__)
    assert sts.client.flask is chain_sts_client.flask
    assert sts.client.flask.__spec__.name == "chain_sts_client.flask"
    assert sts.client.verifier is importlib.import_module("chain_sts_client.verifier")
    assert sts.client.errors is importlib.import_module("chain_sts_client.errors")
    assert require_token is chain_sts_client.flask.require_token
    assert ExchangeAuth is importlib.import_module("chain_sts_client.http_auth").ExchangeAuth
    with pytest.raises(AttributeError):
        _ = sts.client.no_such_module
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("sts.client.no_such_module")


def test_server_when_it_names_shared_protocol_values_then_they_are_the_sdk_ones():
    from sts.core import domain, jwks, scopes, token_types

    sdk_types = chain_sts_client.token_types
    for name in ("ACCESS_TOKEN_TYPE", "JWT_TOKEN_TYPE", "ID_TOKEN_TYPE", "CLIENT_CREDENTIALS",
                 "TOKEN_EXCHANGE"):
        assert getattr(token_types, name) is getattr(sdk_types, name)
    assert domain.ASYMMETRIC_JWS_ALGORITHMS is chain_sts_client.algorithms.ASYMMETRIC_JWS_ALGORITHMS
    assert scopes.scope_set is chain_sts_client.scopes.scope_set
    assert scopes.scope_str is chain_sts_client.scopes.scope_str
    assert jwks.JwksUnavailable is chain_sts_client.jwks.JwksUnavailable
    assert issubclass(jwks.JwksCache, chain_sts_client.jwks.JwksDocuments)
