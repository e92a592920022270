"""The emulator is self-contained, and its public interface is the one other code relies on."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import httpx

import qrvey_iac.emulator as emulator_package
from qrvey_iac.emulator import EmulatorConfig, EmulatorTransport, World, create_app, parse_faults
from qrvey_iac.emulator.serve import serve
from qrvey_iac.emulator.testing import running_server

PACKAGE_DIR = Path(emulator_package.__file__).parent
ALLOWED_THIRD_PARTY = {"starlette", "uvicorn", "httpx", "anyio", "orjson"}   # orjson: its answers (app.JsonAnswer)


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # a relative import stays inside qrvey_iac/emulator
                continue
            modules.add(node.module or "")
    return modules


def test_emulator_imports_nothing_else_of_qrvey_iac():
    offenders = {
        f"{path.name}: {module}"
        for path in PACKAGE_DIR.glob("*.py")
        for module in imported_modules(path)
        if module.split(".")[0] == "qrvey_iac"
        and module != "qrvey_iac.emulator"
        and not module.startswith("qrvey_iac.emulator.")
    }
    assert not offenders


def test_emulator_imports_only_stdlib_and_allowed_libraries():
    import sys

    for path in PACKAGE_DIR.glob("*.py"):
        for module in imported_modules(path):
            top = module.split(".")[0]
            allowed = top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY or top == "qrvey_iac"
            allowed = allowed or module == "__future__"
            assert allowed, f"{path.name} imports {module}"


def test_import_check_would_catch_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from qrvey_iac.core.errors import QrveyIacError\nimport qrvey_iac.adapters\n")
    assert imported_modules(bad) == {"qrvey_iac.core.errors", "qrvey_iac.adapters"}


def test_config_fields_and_defaults_are_the_agreed_ones():
    defaults = {field.name: field.default if field.default_factory is dataclasses.MISSING else field.default_factory()
                for field in dataclasses.fields(EmulatorConfig)}
    assert defaults == {
        "api_key": "local",
        "data_file": None,
        "autosave": True,
        "save_interval": 2.0,
        "seed": 0,
        "latency_ms": 0,
        "faults": None,
        "terminal_status": "LOADED",
        "load_polls": 2,
        "load_seconds": 0.0,
        "on_source_delete": "orphan",
        "unknown_apps": "create",
        "list_shape": "cursor",
        "max_body_bytes": 16 * 1024 * 1024,
        "max_body_depth": 64,
        "body_timeout": 30.0,
        "head_timeout": 10.0,
        "routes": {},
    }


def test_config_rejects_unknown_modes():
    for bad in ({"terminal_status": "DONE"}, {"on_source_delete": "ignore"}, {"load_polls": -1},
                {"save_interval": 0}, {"max_body_bytes": 0}, {"max_body_depth": 0}, {"body_timeout": 0}, {"head_timeout": 0}):
        try:
            EmulatorConfig(**bad)
        except ValueError as exc:
            assert next(iter(bad)) in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")


def test_public_callables_have_the_agreed_signatures():
    assert list(inspect.signature(create_app).parameters) == ["config"]
    assert list(inspect.signature(parse_faults).parameters) == ["spec"]
    assert list(inspect.signature(serve).parameters) == ["config", "host", "port", "on_exit"]
    assert inspect.signature(serve).parameters["on_exit"].default is None
    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(serve).parameters["port"].default == 8787
    assert list(inspect.signature(running_server).parameters) == ["config", "host"]
    assert issubclass(EmulatorTransport, httpx.AsyncBaseTransport)
    for name in ("to_json", "from_json", "save", "load"):
        assert callable(getattr(World, name))


def test_app_state_holds_the_emulator():
    app = create_app(EmulatorConfig(api_key="k"))
    emulator = app.state.emulator
    assert emulator.config.api_key == "k"
    assert isinstance(emulator.world, World)
    assert callable(emulator.save)
