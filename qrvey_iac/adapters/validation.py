"""Turn pydantic's validation errors into file:line: field: message problems, and keep what
is valid of a document that failed (``salvage``)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Annotated, Any, get_args

from pydantic import BaseModel, TypeAdapter, ValidationError

from qrvey_iac.adapters.yaml_source import YamlDocument, format_path
from qrvey_iac.core.errors import Problem, did_you_mean
from qrvey_iac.core.kinds import KINDS
from qrvey_iac.core.manifest import INSTRUCTION_KINDS, MovedDocument, RemovedDocument, document_kinds

# pydantic names the member of a union it tried in an error's location: not a field
UNION_LABELS = {"str", "constrained-str", "ExternalSource", "dict[str,any]", *KINDS.names, *INSTRUCTION_KINDS}
INSTRUCTION_DOCUMENTS = {"Moved": MovedDocument, "Removed": RemovedDocument}


def problems_from(
    exc: ValidationError, document: YamlDocument, prefix: tuple = (), model: type[BaseModel] | None = None,
    reported: Iterable[tuple] = (),
) -> list[Problem]:
    """One problem per field. An unknown field or kind gets a "did you mean" when a known one
    is close; ``model`` is what the document is validated as (default: a manifest document).
    A field at or under a ``reported`` path (a value that did not interpolate) has its
    problem already: it gets no second one."""
    reported = tuple(reported)
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
        if any(path[: len(done)] == done for done in reported):
            continue
        shown = format_path(path)
        if shown in problems:
            continue          # one line per field, even when a union tried several shapes
        message = describe(error, shown) + _suggestion(error, loc, document.data, model)
        problems[shown] = Problem(document.file, document.line_of(path), shown, message)
    return list(problems.values())


def _suggestion(error: dict[str, Any], loc: tuple, data: Any, model: type[BaseModel] | None) -> str:
    if error["type"] == "union_tag_invalid":
        return did_you_mean(str((error.get("ctx") or {}).get("tag")), document_kinds())
    if error["type"] != "extra_forbidden" or not loc or not isinstance(loc[-1], str):
        return ""
    if model is None:
        kind = data.get("kind") if isinstance(data, dict) else None
        if kind in INSTRUCTION_DOCUMENTS:
            model = INSTRUCTION_DOCUMENTS[kind]
        elif kind in KINDS.names:
            model = KINDS[kind].document
        else:
            return ""
    return did_you_mean(loc[-1], fields_at(model, loc[:-1]))


def fields_at(model: type[BaseModel], loc: Iterable[Any]) -> set[str]:
    """The field names a mapping at ``loc`` of a ``model`` document may hold (empty when the
    path leads to no model). A list index or a mapping key leaves the models as they are."""
    models = [model]
    for part in loc:
        inner = [m for current in models if part in current.model_fields
                 for m in _models_in(current.model_fields[part].annotation)]
        if inner or not any(part in current.model_fields for current in models):
            models = inner or models
    return {info.alias or name for current in models for name, info in current.model_fields.items()}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation holds: itself, or inside Optional, a tuple, a dict, a union."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def salvage(model: type[BaseModel], data: Any, unusable: Iterable[tuple] = ()) -> tuple[BaseModel, frozenset[tuple]]:
    """What is valid of ``data`` as a ``model``, field by field, and the paths that are not.

    The result is built from the fields that validate on their own (pydantic's
    ``model_construct``): a field that fails, or that is required and absent, is left out and
    its path is in the set (``("shared",)``); of a list of mappings, each item is kept as far
    as it is valid and only its own broken fields are named (``("columns", 1, "columnType")``).
    ``unusable`` paths (a value that did not interpolate) count as broken whatever they hold.
    Checks across documents read the result only outside the broken paths (core.manifest.Salvaged).
    """
    unusable = set(unusable)
    if not isinstance(data, dict):     # every field is broken
        return model.model_construct(), frozenset((name,) for name in model.model_fields)
    values: dict[str, Any] = {}
    broken: set[tuple] = {(key,) for key in data if key not in model.model_fields}
    for name, info in model.model_fields.items():
        if name not in data:
            if info.is_required():
                broken.add((name,))
            continue
        inner = {path[1:] for path in unusable if path[:1] == (name,)}
        if not inner:
            try:
                values[name] = _field_adapter(model, name).validate_python(data[name])
                continue
            except ValidationError:
                pass
        partial = None if () in inner else _salvage_items(info.annotation, data[name], inner)
        if partial is None:
            broken.add((name,))
        else:
            values[name], item_broken = partial
            broken.update((name, *path) for path in item_broken)
    return model.model_construct(**values), frozenset(broken)


def _salvage_items(annotation: Any, value: Any, unusable: set[tuple]) -> tuple[tuple, set[tuple]] | None:
    """A list of mappings salvaged item by item: (items, their broken paths), or None when
    ``value`` is not such a list (then the field as a whole is broken)."""
    models = _models_in(annotation)
    if len(models) != 1 or not isinstance(value, list) or not value:
        return None
    items, broken = [], set()
    for index, item in enumerate(value):
        inner = {path[1:] for path in unusable if path[:1] == (index,)}
        if not isinstance(item, dict) or () in inner:
            broken.add((index,))
            continue
        if not inner:
            try:
                items.append(_item_adapter(models[0]).validate_python(item))
                continue
            except ValidationError:
                pass
        salvaged, item_broken = salvage(models[0], item, inner)
        items.append(salvaged)
        # no field of its own broken: the item fails as a whole (e.g. tableName and query both given)
        broken.update((index, *path) for path in item_broken or {()})
    return tuple(items), broken


@functools.cache
def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter:
    info = model.model_fields[name]
    return TypeAdapter(Annotated[info.annotation, info])


@functools.cache
def _item_adapter(model: type[BaseModel]) -> TypeAdapter:
    return TypeAdapter(model)


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
        return f"required field kind is missing ({', '.join(document_kinds())})"
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
