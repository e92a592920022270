"""Normalise both sides and compare them: the only importer of deepdiff.

A resource's *document* holds only the fields a manifest manages, with lists
of named things keyed by name, so a change reads ``columns.Total.columnType``
and never ``columns[3]``. Server-owned fields (ids, status, dates) never enter
a document, so they can never show as a change.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from qrvey_iac.core.manifest import Resource
from qrvey_iac.core.models import ColumnSpec, DatasetSpec, DatasetViewSpec, ViewColumnSpec

OWNER_ATTRIBUTE = "qrveyIacAddress"   # customAttributes key naming the managing address
DATASOURCE_KEYS = ("connectionId", "connectorType", "database", "tableName", "query")
COLUMN_DEFAULT_KEYS = ("columnType",)
NAMED_MAPS = ("datasources", "columns")
# What compared_part keeps: the fields the normalisers below and the planner read
# (isPublic: sharing, sourceStatus: a view whose source is gone).
_COMPARED_KEYS = ("name", "datasources", "columns", "dataSync", "customAttributes", "isPublic", "sourceStatus")
_DATASOURCE_READ = ("name", "datasourceId", *DATASOURCE_KEYS)
_COLUMN_READ = tuple(dict.fromkeys((*ColumnSpec.model_fields, *ViewColumnSpec.model_fields)))


class FieldChange(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    before: Any = None
    after: Any = None


def canonical_hash(document: Any) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def desired_document(resource: Resource) -> dict[str, Any]:
    """The managed fields of a manifest resource (``shared`` is handled apart)."""
    spec = resource.spec
    attributes = dict(spec.customAttributes or {})
    attributes[OWNER_ATTRIBUTE] = resource.address
    if isinstance(spec, DatasetSpec):
        dumped = spec.model_dump(include={"datasources", "columns"})   # one call, not one per column
        document: dict[str, Any] = {
            "name": spec.name,
            "datasources": {d["name"]: _datasource_fields(d) for d in dumped["datasources"]},
            "columns": {c["columnName"]: _given(c, skip="columnName") for c in dumped["columns"]},
            "customAttributes": attributes,
        }
        if spec.dataSync is not None:
            document["dataSync"] = spec.dataSync
        return document
    assert isinstance(spec, DatasetViewSpec)
    return {
        "name": spec.name,
        "columns": {c["column"]: _given(c, skip="column") for c in spec.model_dump(include={"columns"})["columns"]},
        "customAttributes": attributes,
    }


def managed_fields(document: dict[str, Any] | None) -> dict[str, list[str]]:
    """What a document manages beyond its fixed fields: recorded in state so removals show."""
    document = document or {}
    is_view = "datasources" not in document
    managed = {
        "customAttributes": sorted(k for k, v in (document.get("customAttributes") or {}).items() if v is not None),
        "dataSync": ["*"] if document.get("dataSync") is not None else [],
        "overrides": sorted(k for k, v in (document.get("columns") or {}).items() if v) if is_view else [],
    }
    return {k: v for k, v in managed.items() if v}


def with_removals(desired: dict[str, Any], managed: dict[str, list[str]], is_view: bool) -> dict[str, Any]:
    """Mark what the manifest managed before and no longer does (None = remove / reset)."""
    document = dict(desired)
    attributes = dict(document.get("customAttributes") or {})
    for key in managed.get("customAttributes", ()):
        attributes.setdefault(key, None)
    document["customAttributes"] = attributes
    if managed.get("dataSync") and "dataSync" not in document:
        document["dataSync"] = None
    if is_view:
        columns = dict(document.get("columns") or {})
        for name in managed.get("overrides", ()):
            columns.setdefault(name, None)        # back to the source's name, visible
        document["columns"] = columns
    return document


def document_hash(document: dict[str, Any] | None) -> str:
    """The applied hash: a document without its removal marks."""
    return canonical_hash(_without_removals(document or {}))


def _without_removals(document: dict[str, Any]) -> dict[str, Any]:
    cleaned = {k: v for k, v in document.items() if not (k == "dataSync" and v is None)}
    for key in ("customAttributes", "columns"):
        if isinstance(cleaned.get(key), dict) and key in cleaned:
            if key == "columns" and "datasources" in cleaned:
                continue
            cleaned[key] = {k: v for k, v in cleaned[key].items() if v is not None}
    return cleaned


def live_document(live: dict[str, Any], desired: dict[str, Any], is_view: bool) -> dict[str, Any]:
    """Project a live Get Dataset answer onto the fields ``desired`` manages."""
    full = _normalise_live_view(live) if is_view else _normalise_live_dataset(live)
    projected: dict[str, Any] = {}
    for key, wanted in desired.items():
        have = full.get(key)
        if key in NAMED_MAPS and isinstance(wanted, dict):
            projected[key] = _project_named(have or {}, wanted, key, keep_extra=not is_view)
        elif key == "customAttributes":
            have = have if isinstance(have, dict) else {}
            projected[key] = {k: have.get(k) for k in wanted}
        else:
            projected[key] = have
    return projected


def compared_part(live: dict[str, Any] | None) -> dict[str, Any] | None:
    """The part of a Get Dataset answer that planning reads: live_document and the planner
    look at nothing else. A refresh keeps this instead of the whole answer once it has the
    answer's fingerprint: at 10,000 datasets the ids repeated in every column (datasetId,
    appId, userId, columnId, ...) were ~140 MB of a plan's heap."""
    if live is None:
        return None
    kept = {key: live[key] for key in _COMPARED_KEYS if key in live}
    if isinstance(kept.get("datasources"), list):
        kept["datasources"] = [_only(source, _DATASOURCE_READ) for source in kept["datasources"]]
    if isinstance(kept.get("columns"), list):
        kept["columns"] = [_only(column, _COLUMN_READ) for column in kept["columns"]]
    return kept


def _only(item: Any, keys: tuple[str, ...]) -> Any:
    if not isinstance(item, dict):
        return item
    return {key: item[key] for key in keys if key in item}


def diff_documents(before: dict[str, Any], after: dict[str, Any]) -> tuple[FieldChange, ...]:
    """Per-field changes that turn ``before`` (live) into ``after`` (desired)."""
    if canonical_hash(before) == canonical_hash(after):
        return ()
    from deepdiff import DeepDiff  # imported on first use: it pulls in numpy (~0.15 s of every start-up)

    tree = DeepDiff(before, after, verbose_level=2, view="tree")
    changes: dict[str, FieldChange] = {}
    for report in tree.values():
        for item in report:
            path = ".".join(str(part) for part in item.path(output_format="list"))
            changes[path] = FieldChange(
                path=path, before=_plain(item.t1), after=_plain(item.t2)
            )
    return tuple(changes[p] for p in sorted(changes))


def _plain(value: Any) -> Any:
    """deepdiff marks a missing side with a sentinel: show it as None."""
    if type(value).__name__ == "NotPresent":
        return None
    return value


def _given(fields: dict[str, Any], skip: str) -> dict[str, Any]:
    return {k: _jsonable(v) for k, v in fields.items() if v is not None and k != skip}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _datasource_fields(fields: dict[str, Any]) -> dict[str, Any]:
    record = {k: fields.get(k) for k in DATASOURCE_KEYS}
    if fields.get("datasourceId"):
        record["datasourceId"] = fields["datasourceId"]
    return record


def _normalise_live_dataset(live: dict[str, Any]) -> dict[str, Any]:
    datasources = {}
    for source in live.get("datasources") or []:
        record = {k: source.get(k) for k in DATASOURCE_KEYS}
        record["datasourceId"] = source.get("datasourceId")
        datasources[str(source.get("name"))] = record
    columns = {str(c.get("columnName")): dict(c) for c in live.get("columns") or []}
    return {
        "name": live.get("name"),
        "datasources": datasources,
        "columns": columns,
        "dataSync": live.get("dataSync"),
        "customAttributes": live.get("customAttributes"),
    }


def _normalise_live_view(live: dict[str, Any]) -> dict[str, Any]:
    columns = {}
    for column in live.get("columns") or []:
        key = column.get("origColumnSourceName") or column.get("columnName")
        columns[str(key)] = {
            "columnName": column.get("columnName"),
            "visible": column.get("visible", True),
        }
    return {
        "name": live.get("name"),
        "columns": columns,
        "customAttributes": live.get("customAttributes"),
    }


def _project_named(
    have: dict[str, dict], wanted: dict[str, dict], key: str, keep_extra: bool
) -> dict[str, Any]:
    default = DATASOURCE_KEYS if key == "datasources" else COLUMN_DEFAULT_KEYS
    names = set(wanted) | (set(have) if keep_extra else set())
    projected = {}
    for name in sorted(names):
        if name not in have:
            continue
        if name in wanted and wanted[name] is None:      # a removed view override: reset or not
            column = have[name]
            at_reset = column.get("columnName") == name and column.get("visible", True) is True
            projected[name] = None if at_reset else column
            continue
        fields = wanted.get(name, {}).keys() or default
        projected[name] = {f: _jsonable(have[name].get(f)) for f in fields if have[name].get(f) is not None or f in DATASOURCE_KEYS}
    return projected
