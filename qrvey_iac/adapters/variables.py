"""Variables for CI: values files (--var-file) and --var KEY=VALUE, merged in order."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from qrvey_iac.adapters.yaml_source import parse_documents, read_text
from qrvey_iac.core.errors import ConfigError, Problem


def merge_variables(files: Iterable[str], pairs: Iterable[str]) -> dict[str, Any]:
    """Later wins: each values file in order, then each --var."""
    return given_variables(files, pairs)[0]


def given_variables(files: Iterable[str], pairs: Iterable[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The merged variables (later wins: each values file in order, then each --var), and
    where each was given last: ``--var`` or the values file's name. The manifest loader
    refuses a given name that no manifest uses and the environment does not declare."""
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    problems: list[Problem] = []
    for name in files:
        values = _read_values(Path(name), problems)
        merged.update(values)
        origins.update(dict.fromkeys(values, name))
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            problems.append(Problem("--var", None, "", f"expected KEY=VALUE, got {item!r}"))
            continue
        merged[key.strip()] = value
        origins[key.strip()] = "--var"
    if problems:
        raise ConfigError(problems)
    return merged, origins


def _read_values(path: Path, problems: list[Problem]) -> dict[str, Any]:
    shown = str(path)
    text, read_problems = read_text(path, shown, pipes=True)   # --var-file <(...) is a pipe
    problems.extend(read_problems)
    if text is None:
        return {}
    documents, parse_problems = parse_documents(text, shown)
    problems.extend(parse_problems)
    if parse_problems:
        return {}
    data = documents[0].data if documents else {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        problems.append(Problem(shown, 1, "", "a values file is one mapping of variable names to values"))
        return {}
    return data
