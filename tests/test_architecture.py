"""The layers of ``sts/`` and the one direction imports may point (docs/architecture.md).

core (values, errors, JOSE, the store contract) is the bottom; store (SQL) and oauth (the
protocol) sit on it and never import each other; services use the store; the runtime wires
them; the admin API, the web application and the CLI are the front ends. A lower layer never
imports a higher one, and the protocol core never imports a web framework or the database
toolkit. Checked on the source text, so a violation fails before anything runs.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Each layer and the layers it may import (itself included).
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset({"core"}),
    "store": frozenset({"core", "store"}),
    "oauth": frozenset({"core", "oauth"}),
    "services": frozenset({"core", "store", "services"}),
    "runtime": frozenset({"core", "store", "oauth", "services", "runtime"}),
    "admin_api": frozenset({"core", "store", "oauth", "services", "runtime", "admin_api"}),
    "web": frozenset({"core", "store", "oauth", "services", "runtime", "admin_api", "web"}),
    "wsgi": frozenset({"web"}),
    "rsgi": frozenset({"web"}),
    "cli": frozenset(
        {"core", "store", "oauth", "services", "runtime", "admin_api", "web", "cli", "demo"}
    ),
    "client": frozenset({"client"}),
    "demo": frozenset(
        {"core", "store", "oauth", "services", "runtime", "admin_api", "web", "demo"}
    ),
}
#: Third-party packages a layer must never import.
FORBIDDEN: dict[str, frozenset[str]] = {
    "core": frozenset({"flask", "werkzeug", "sqlalchemy", "psycopg", "alembic"}),
    "oauth": frozenset({"flask", "werkzeug", "sqlalchemy", "psycopg", "alembic"}),
    "store": frozenset({"flask", "werkzeug"}),
    "services": frozenset({"flask", "werkzeug"}),
}


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to, or ``None`` outside Chain STS."""
    parts = module.split(".")
    if parts[0] == "sts_demo":
        return "demo"
    if parts[0] != "sts":
        return None
    if len(parts) == 1:
        return "core"  # the package itself holds only its version
    return parts[1] if parts[1] in ALLOWED else "core"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every module a source imports (type-only imports included), with its line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            found.append((node.lineno, base))
            # ``from sts import errors`` imports the module sts.errors.
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def violations(root: Path) -> list[str]:
    """Each import in ``root``'s Chain STS packages that points the wrong way."""
    found: dict[str, str] = {}  # one finding per import statement
    for path in sorted([*root.glob("sts/**/*.py"), *root.glob("sts_demo/**/*.py")]):
        module = module_name(path, root)
        layer = layer_of(module)
        assert layer is not None
        source = path.read_text()
        for line, target in imported_modules(source, module, path.name == "__init__.py"):
            where = f"{path.relative_to(root)}:{line}"
            target_layer = layer_of(target)
            top = target.split(".")[0]
            if target_layer is None:
                if top in FORBIDDEN.get(layer, ()):
                    found.setdefault(where, f"{where}: {layer} imports {top}")
            elif target != "sts" and target_layer not in ALLOWED[layer]:
                found.setdefault(where, f"{where}: {layer} imports {target} ({target_layer})")
    return sorted(found.values())


def test_layers_when_sources_are_read_then_every_import_points_down() -> None:
    assert violations(ROOT) == []


@pytest.mark.parametrize(
    ("path", "source", "expected"),
    [
        ("sts/core/values.py", "from sts.web import create_app\n", "core imports sts.web"),
        ("sts/core/values.py", "import sqlalchemy\n", "core imports sqlalchemy"),
        ("sts/oauth/grant.py", "from sts.store.sql import SqlStore\n", "oauth imports"),
        ("sts/oauth/grant.py", "from flask import request\n", "oauth imports flask"),
        ("sts/store/sql.py", "from sts.services import nhis\n", "store imports"),
        ("sts/store/sql.py", "from sts import services\n", "store imports sts.services"),
        ("sts/services/x.py", "from sts.cli import main\n", "services imports sts.cli"),
        ("sts/oauth/x.py", "if 1:\n    from ..store import sql\n", "oauth imports sts.store"),
    ],
)
def test_layers_when_a_lower_layer_imports_a_higher_one_then_it_is_named(
    tmp_path: Path, path: str, source: str, expected: str
) -> None:
    target = tmp_path / path
    target.parent.mkdir(parents=True)
    target.write_text(source)
    found = violations(tmp_path)
    assert len(found) == 1 and expected in found[0] and path in found[0]


def test_layers_when_every_layer_imports_only_below_then_nothing_is_named(
    tmp_path: Path,
) -> None:
    for path, source in {
        "sts/core/a.py": "import jwt\nfrom sts.core import errors\n",
        "sts/store/b.py": "import sqlalchemy\nfrom sts.core.ports import Store\n",
        "sts/oauth/c.py": "from sts.core import jws\n",
        "sts/web/d.py": "import flask\nfrom sts.oauth import server\nfrom sts.store import sql\n",
    }.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(source)
    assert violations(tmp_path) == []


#: Optional extras whose libraries the code may import (guarded: the import is optional). The
#: test tools' extra is not one: the server never imports them.
OPTIONAL_EXTRAS = ("otel", "flask")


def declared_distributions() -> set[str]:
    """The distributions the server declares (its own requirements and the SDK's, and those
    of the optional extras the code imports behind a guard)."""
    from importlib.metadata import requires

    names = set()
    for dist in ("chain-sts", "chain-sts-client"):
        for requirement in requires(dist) or []:
            extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", requirement)
            if extra is not None and extra.group(1) not in OPTIONAL_EXTRAS:
                continue
            name = requirement.split(";")[0].split("[")[0]
            for sep in "<>=!~ ":
                name = name.split(sep)[0]
            names.add(name.strip().lower().replace("_", "-"))
    return names


def test_dependencies_when_a_library_is_imported_then_it_is_declared() -> None:
    import sys
    from importlib.metadata import packages_distributions

    provided = packages_distributions()
    declared = declared_distributions()
    undeclared = set()
    for path in [*ROOT.glob("sts/**/*.py"), *ROOT.glob("sts_demo/**/*.py")]:
        module = module_name(path, ROOT)
        for _, target in imported_modules(path.read_text(), module, path.name == "__init__.py"):
            top = target.split(".")[0]
            if not top or top in sys.stdlib_module_names or top in {"sts", "sts_demo"}:
                continue
            dists = {d.lower().replace("_", "-") for d in provided.get(top, [top])}
            if not dists & declared:
                undeclared.add(f"{path.relative_to(ROOT)}: {top}")
    assert sorted(undeclared) == []


def test_dependencies_when_only_the_test_extra_declares_a_library_then_it_is_not_declared(
) -> None:
    declared = declared_distributions()
    assert {"opentelemetry-api", "opentelemetry-sdk", "prometheus-client", "pyyaml"} <= declared
    assert "pytest" not in declared and "hypothesis" not in declared


def test_optional_imports_when_read_then_never_at_module_level_unguarded() -> None:
    """opentelemetry is an optional extra: no module imports it at its top level outside a
    ``try`` (the one that does handles ``ImportError``; the rest import it in functions
    reached only once it imported), so the server runs without the extra."""
    for path in ROOT.glob("sts/**/*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.startswith("opentelemetry") for n in names), (
                f"{path.relative_to(ROOT)}:{node.lineno} imports opentelemetry unguarded"
            )
