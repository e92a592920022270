"""Pins the client's public interface (other layers are written against it) and its imports."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import qrvey_iac.adapters.qrvey as package
from qrvey_iac.adapters.qrvey.client import QrveyClient, RetryPolicy

CLIENT_MODULES = ["client.py", "sender.py", "retry.py", "paths.py", "responses.py"]
FORBIDDEN_IMPORTS = ("qrvey_iac.engine", "qrvey_iac.cli", "qrvey_iac.emulator", "qrvey_iac.wiring")

METHODS = {
    "call": ["self", "route", "app", "params", "body", "idempotent"],
    "get_dataset": ["self", "app", "dataset_id"],
    "list_datasets": ["self", "app", "search", "page_size"],
    "create_dataset": ["self", "app", "body"],
    "create_dataset_from_connection": ["self", "app", "body"],
    "update_dataset": ["self", "app", "dataset_id", "body"],
    "apply_changes": ["self", "app", "dataset_id"],
    "delete_dataset": ["self", "app", "dataset_id"],
    "load_dataset": ["self", "app", "dataset_id"],
    "wait_until_loaded": ["self", "app", "dataset_id", "poll_interval", "timeout"],
    "set_shared": ["self", "app", "dataset_id", "shared"],
    "create_view": ["self", "target", "source", "connection_id", "name", "custom_attributes"],
    "create_connection": ["self", "app", "body"],
    "get_connection": ["self", "app", "connection_id"],
    "list_connections": ["self", "app", "page_size"],
    "update_connection": ["self", "app", "connection_id", "body"],
    "delete_connection": ["self", "app", "connection_id"],
    "aclose": ["self"],
}


@pytest.mark.parametrize(("name", "parameters"), sorted(METHODS.items()))
def test_each_method_keeps_its_name_and_parameters(name, parameters):
    method = getattr(QrveyClient, name)
    assert inspect.iscoroutinefunction(method)
    assert list(inspect.signature(method).parameters) == parameters


def test_constructor_parameters_and_defaults():
    parameters = inspect.signature(QrveyClient.__init__).parameters
    defaults = {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}
    assert list(parameters) == ["self", "base_url", "api_key", "transport", "parallelism", "timeout", "retry",
                                "routes", "rate_limit", "sleep", "rng", "secrets", "deadline", "max_answer_bytes",
                                "max_list_pages", "key_name"]
    assert defaults["parallelism"] == 10 and defaults["timeout"] == 30.0
    assert defaults["secrets"] == ()
    assert defaults["deadline"] == 120.0 and defaults["max_answer_bytes"] == 64 * 1024 * 1024
    assert defaults["max_list_pages"] == 1_000
    assert defaults["key_name"] == ""
    assert defaults["retry"] == RetryPolicy() == RetryPolicy(attempts=5, base_delay=0.2, max_delay=20.0)
    assert defaults["routes"] is None and defaults["rate_limit"] is None and defaults["rng"] is None


@pytest.mark.parametrize("module", CLIENT_MODULES)
def test_the_client_imports_no_engine_cli_or_emulator(module):
    tree = ast.parse((Path(package.__file__).parent / module).read_text())
    imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert not [name for name in imported if name.startswith(FORBIDDEN_IMPORTS)]
