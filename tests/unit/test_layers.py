"""DESIGN §2 import rules, checked by parsing the imports of every module of the package.

Every module belongs to exactly one layer (``LAYERS``); a new module that fits none fails
``test_every_module_has_a_layer``, so the rules cannot silently miss it. Imports inside
functions count (a lazy import is still a dependency); imports under ``if TYPE_CHECKING:``
do not (they are names for annotations, never run).
"""

from __future__ import annotations

import ast
import fnmatch
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "qrvey_iac"
THIRD_PARTY_IO = ("httpx", "httpcore", "h11", "click", "yaml", "psycopg", "starlette", "uvicorn", "anyio")
USE_CASES = ("qrvey_iac.engine", "qrvey_iac.journal", "qrvey_iac.flows", "qrvey_iac.exporting",
             "qrvey_iac.migration")
COMPOSITION = ("qrvey_iac.wiring", "qrvey_iac.cli", "qrvey_iac.cli_tools", "qrvey_iac.cli_support",
               "qrvey_iac.cli_progress", "qrvey_iac.cli_doctor", "qrvey_iac.doctor", "qrvey_iac.__main__")

# (layer, module path globs relative to the package, forbidden import prefixes)
LAYERS = [
    # orjson: core's hashes are taken over json's text, whatever encoder the adapters use
    ("core", ("core/*.py", "core/kinds/*.py"),
     (*THIRD_PARTY_IO, "deepdiff", "orjson", "qrvey_iac.adapters", "qrvey_iac.emulator", "qrvey_iac.ports",
      *USE_CASES, *COMPOSITION)),
    ("ports", ("ports.py",),
     (*THIRD_PARTY_IO, "qrvey_iac.adapters", "qrvey_iac.emulator", *USE_CASES, *COMPOSITION)),
    ("use cases", ("engine.py", "journal.py", "flows.py", "exporting.py", "migration.py"),
     (*THIRD_PARTY_IO, "qrvey_iac.adapters", "qrvey_iac.emulator", *COMPOSITION)),
    ("adapters", ("adapters/*.py", "adapters/*/*.py"),
     ("qrvey_iac.emulator", *USE_CASES, *COMPOSITION)),
    ("emulator", ("emulator/*.py",), ("qrvey_iac.core", "qrvey_iac.adapters", "qrvey_iac.ports",
                                       *USE_CASES, *COMPOSITION)),
    ("composition", ("wiring.py", "cli.py", "cli_tools.py", "cli_support.py", "cli_progress.py", "cli_doctor.py",
                     "doctor.py", "__main__.py"), ()),
    ("package", ("__init__.py",), ("qrvey_iac.",)),
]
DEEPDIFF_USERS = ["core/diff.py"]


def package_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def module_name(path: Path) -> str:
    parts = ["qrvey_iac", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"
        or isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path) -> set[str]:
    """Every module name ``path`` imports at run time (``from a import b`` gives ``a`` and ``a.b``)."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            for child in getattr(node, "orelse", []):
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return names


def layer_of(path: Path) -> list[str]:
    return [name for name, globs, _ in LAYERS if any(fnmatch.fnmatch(relative(path), g) for g in globs)]


def test_every_module_has_a_layer():
    assert {relative(p): layer_of(p) for p in package_modules() if len(layer_of(p)) != 1} == {}


@pytest.mark.parametrize("layer", [name for name, _, _ in LAYERS])
def test_layer_rules(layer):
    _, globs, forbidden = next(entry for entry in LAYERS if entry[0] == layer)
    found = []
    for path in package_modules():
        if layer not in layer_of(path):
            continue
        for name in sorted(imports_of(path)):
            if any(name == f or name.startswith(f if f.endswith(".") else f + ".") for f in forbidden):
                if not (name.split(".")[0] == "deepdiff" and relative(path) in DEEPDIFF_USERS):
                    found.append(f"{relative(path)} imports {name}")
    assert found == []


def test_only_core_diff_imports_deepdiff():
    users = [relative(p) for p in package_modules() if any(
        n == "deepdiff" or n.startswith("deepdiff.") for n in imports_of(p))]
    assert users == DEEPDIFF_USERS


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in package_modules()}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_import_cycles():
    """No module needs one that needs it back, lazily or not (a cycle is a layering mistake
    hidden by import order). A package importing its own submodules is not a cycle."""
    graph = {
        name: {m for m in needs if not m.startswith(name + ".")}
        for name, needs in import_graph().items()
    }
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        pytest.fail("import cycle: " + " -> ".join(exc.args[1]))


def test_the_checker_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import httpx\nfrom typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from qrvey_iac.engine import Engine\n"
        "def later():\n    from qrvey_iac.adapters.config import load_environment\n"
    )
    names = imports_of(bad)
    assert {"httpx", "qrvey_iac.adapters.config"} <= names and "qrvey_iac.engine" not in names
