"""DESIGN §2 import rules, checked by parsing every module's imports."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "qrvey_iac"
CORE_FORBIDDEN = ("httpx", "click", "yaml", "qrvey_iac.adapters", "qrvey_iac.engine", "qrvey_iac.cli",
                  "qrvey_iac.emulator", "qrvey_iac.wiring", "starlette", "uvicorn")


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules(folder: str) -> list[Path]:
    root = PACKAGE / folder
    return sorted(root.rglob("*.py")) if root.is_dir() else [PACKAGE / f"{folder}.py"]


def violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in modules(folder):
        for name in imports_of(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(PACKAGE)} imports {name}")
    return found


@pytest.mark.parametrize("folder, forbidden", [
    ("core", CORE_FORBIDDEN),
    ("engine", ("qrvey_iac.adapters", "qrvey_iac.cli", "qrvey_iac.emulator", "click", "httpx", "yaml")),
    ("journal", ("qrvey_iac.adapters", "qrvey_iac.cli", "qrvey_iac.emulator", "click", "httpx", "yaml")),
    ("adapters", ("qrvey_iac.engine", "qrvey_iac.cli", "qrvey_iac.wiring", "qrvey_iac.emulator")),
])
def test_layer_rules(folder, forbidden):
    assert violations(folder, forbidden) == []


def test_only_core_diff_imports_deepdiff():
    users = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if any(
        n == "deepdiff" or n.startswith("deepdiff.") for n in imports_of(p))]
    assert users == ["core/diff.py"]


def test_the_checker_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import httpx\nfrom qrvey_iac.adapters.config import load_environment\n")
    assert imports_of(bad) == {"httpx", "qrvey_iac.adapters.config"}
