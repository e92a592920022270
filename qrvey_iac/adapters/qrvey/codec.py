"""Managed documents <-> Qrvey API JSON. Pure functions, no I/O."""

from __future__ import annotations

import copy
from typing import Any

from qrvey_iac.core.keys import AppRef

CLIENT_FIELDS = ("name", "datasources", "columns", "dataSync", "customAttributes")
REBUILT_FIELDS = ("name", "columns", "customAttributes")  # update_body replaces these: copying them is waste


def create_body(desired: dict[str, Any], app: AppRef, dataset_id: str) -> dict[str, Any]:
    """Create Dataset (full definition) body, with the client-chosen datasetId."""
    datasources = [_datasource(name, record) for name, record in desired["datasources"].items()]
    connection = datasources[0]["connectionId"]
    columns = [_new_column(name, record, app, connection) for name, record in desired["columns"].items()]
    body: dict[str, Any] = {
        "datasetId": dataset_id,
        "name": desired["name"],
        "datasources": datasources,
        "columns": columns,
        "customAttributes": desired.get("customAttributes", {}),
    }
    if "dataSync" in desired:
        body["dataSync"] = desired["dataSync"]
    return body


def update_body(live: dict[str, Any], desired: dict[str, Any], is_view: bool) -> dict[str, Any]:
    """A full-replace PUT body: the live definition with the managed fields overlaid."""
    body = {k: live[k] if k in REBUILT_FIELDS else copy.deepcopy(live[k]) for k in CLIENT_FIELDS if k in live}
    body["datasetId"] = live["datasetId"]
    body["name"] = desired["name"]
    attributes = dict(live.get("customAttributes") or {})
    for key, value in desired.get("customAttributes", {}).items():
        if value is None:
            attributes.pop(key, None)          # no longer in the manifest: remove it
        else:
            attributes[key] = value
    body["customAttributes"] = attributes
    if is_view:
        body["columns"] = _view_columns(live.get("columns") or [], desired.get("columns", {}))
        return body
    by_name = {d.get("name"): d for d in live.get("datasources") or []}
    body["datasources"] = [
        _merged(by_name.get(name), _datasource(name, record)) for name, record in desired["datasources"].items()
    ]
    app = AppRef(live.get("userId", ""), live.get("appId", ""))
    connection = body["datasources"][0]["connectionId"]
    columns = {c.get("columnName"): c for c in live.get("columns") or []}
    body["columns"] = [
        _merged(columns.get(name), {"columnName": name, **record}) if name in columns
        else _new_column(name, record, app, connection)
        for name, record in desired["columns"].items()
    ]
    if "dataSync" in desired:
        if desired["dataSync"] is None:
            body.pop("dataSync", None)         # no longer in the manifest: remove it
        else:
            body["dataSync"] = desired["dataSync"]
    return body


def needs_view_update(view: dict[str, Any], desired: dict[str, Any]) -> bool:
    """After a clone: do name, column overrides or attributes still differ?"""
    body = update_body(view, desired, is_view=True)
    return any(body.get(k) != view.get(k) for k in ("name", "columns", "customAttributes"))


def _datasource(name: str, record: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, **{k: v for k, v in record.items() if v is not None}}


def _new_column(name: str, record: dict[str, Any], app: AppRef, connection: str) -> dict[str, Any]:
    column = {"columnName": name, **record}
    column.setdefault("origColumnType", record["columnType"])
    column.update({"appId": app.app_id, "userId": app.user_id, "connectionId": connection})
    return column


def _merged(live: dict[str, Any] | None, wanted: dict[str, Any]) -> dict[str, Any]:
    merged = dict(live or {})
    for key in ("database", "tableName", "query"):
        if key in merged and key not in wanted and "connectorType" in wanted:
            del merged[key]             # a datasource switched from table to query, or back
    merged.update(wanted)
    return merged


def _view_columns(columns: list[dict[str, Any]], overrides: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for column in columns:
        key = column.get("origColumnSourceName") or column.get("columnName")
        override = overrides.get(key, {})
        if override is None:                   # override removed: back to the source's name, shown
            override = {"columnName": key, "visible": True}
        out.append({**column, **override})
    return out
