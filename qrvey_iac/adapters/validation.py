"""Turn pydantic's validation errors into file:line: field: message problems."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from qrvey_iac.adapters.yaml_source import YamlDocument, format_path
from qrvey_iac.core.errors import Problem
from qrvey_iac.core.kinds import KINDS

# pydantic names the member of a union it tried in an error's location: not a field
UNION_LABELS = {"str", "constrained-str", "ExternalSource", "dict[str,any]", *KINDS.names}


def problems_from(exc: ValidationError, document: YamlDocument, prefix: tuple = ()) -> list[Problem]:
    problems: dict[str, Problem] = {}
    errors = [(tuple(p for p in e["loc"] if not _is_label(p)), e) for e in exc.errors(include_url=False)]
    for loc, error in errors:
        if any(len(other) > len(loc) and other[: len(loc)] == loc for other, _ in errors):
            continue          # a container's complaint is noise beside its item's own
        if error["type"].startswith("union_tag"):
            loc = ("kind",)
        path = (*prefix, *loc)
        if path in document.refused and error["type"] != "extra_forbidden":
            continue          # a value JSON cannot carry is already named, with what to write instead
        shown = format_path(path)
        if shown in problems:
            continue          # one line per field, even when a union tried several shapes
        problems[shown] = Problem(document.file, document.line_of(path), shown, describe(error, shown))
    return list(problems.values())


def _is_label(part: Any) -> bool:
    return isinstance(part, str) and (part in UNION_LABELS or "[" in part or "-" in part and part.startswith("function"))


def describe(error: dict[str, Any], field: str) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if field.endswith("source") and kind in ("string_pattern_mismatch", "model_type", "model_attributes_type"):
        return "expected dataset.<name> or a mapping {appId, userId, datasetId}"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind == "union_tag_invalid":
        return f"unknown kind {ctx.get('tag')!r} (expected {ctx.get('expected_tags')})"
    if kind == "union_tag_not_found":
        return f"required field kind is missing ({' or '.join(KINDS.names)})"
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}, got {_short(value)}"
    if kind == "string_pattern_mismatch":
        return f"{_short(value)} does not match the pattern {ctx.get('pattern')}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        expected = kind.split("_")[0]
        names = {"dict": "a mapping", "model": "a mapping", "list": "a list", "tuple": "a list",
                 "string": "a string", "bool": "true or false", "int": "an integer"}
        return f"expected {names.get(expected, expected)}, got {_short(value)}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return error["msg"]


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."
