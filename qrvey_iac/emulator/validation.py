"""Checks of request bodies; every failure is a 400 whose message names the field."""

from __future__ import annotations

import copy
import re
from typing import Any

from qrvey_iac.emulator.errors import invalid, missing, wrong_type

DATASET_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# Fields the server owns: accepted in a body (GET, edit, PUT is the documented flow) but ignored.
SERVER_OWNED_FIELDS = frozenset(
    {
        "datasetId", "appId", "userId", "status", "connectionId", "datasetType", "isPublic",
        "pendingChanges", "sourceDataset", "sourceStatus", "createDate", "updateDate",
        "pendingReload", "statusMessage",     # a structural change not applied yet; why a load FAILED
    }
)
DEFINITION_FIELDS = ("name", "datasources", "columns", "dataSync", "customAttributes")


def require_object(value: Any, field: str) -> dict:
    if value is None:
        raise missing(field)
    if not isinstance(value, dict):
        raise wrong_type(field, "an object")
    return value


def require_text(obj: dict, key: str, prefix: str = "") -> str:
    field = prefix + key
    if key not in obj or obj[key] is None:
        raise missing(field)
    value = obj[key]
    if not isinstance(value, str) or not value.strip():
        raise wrong_type(field, "a non-empty string")
    return value


def optional_text(obj: dict, key: str, prefix: str = "") -> str | None:
    if key not in obj:
        return None
    return require_text(obj, key, prefix)


def optional_object(obj: dict, key: str, prefix: str = "") -> dict | None:
    if key not in obj:
        return None
    return require_object(obj[key], prefix + key)


def require_bool(obj: dict, key: str) -> bool:
    if key not in obj or obj[key] is None:
        raise missing(key)
    if not isinstance(obj[key], bool):
        raise wrong_type(key, "a boolean")
    return obj[key]


def require_list(obj: dict, key: str, *, non_empty: bool = False) -> list:
    if key not in obj or obj[key] is None:
        raise missing(key)
    value = obj[key]
    if not isinstance(value, list):
        raise wrong_type(key, "an array")
    if non_empty and not value:
        raise invalid(f"{key} must contain at least one item")
    return value


def check_dataset_id(value: Any) -> str:
    if not isinstance(value, str) or not DATASET_ID_PATTERN.match(value):
        raise invalid("datasetId must match ^[A-Za-z0-9_-]{1,64}$")
    return value


def validate_definition(body: Any) -> dict:
    """The client-owned part of a dataset body, checked and copied.

    Returns name, datasources, columns, the optional dataSync and customAttributes, and any
    unknown top-level key (passed through as client data). Server-owned keys are dropped.
    """
    body = require_object(body, "body")
    definition = {"name": require_text(body, "name")}
    definition["datasources"] = _validate_datasources(require_list(body, "datasources", non_empty=True))
    definition["columns"] = [
        _validate_column(column, index) for index, column in enumerate(require_list(body, "columns"))
    ]
    for key in ("dataSync", "customAttributes"):
        value = optional_object(body, key)
        if value is not None:
            definition[key] = copy.deepcopy(value)
    for key, value in body.items():
        if key not in SERVER_OWNED_FIELDS and key not in DEFINITION_FIELDS:
            definition[key] = copy.deepcopy(value)
    return definition


def _validate_datasources(datasources: list) -> list[dict]:
    seen: set[str] = set()
    checked = []
    for index, datasource in enumerate(datasources):
        prefix = f"datasources[{index}]."
        datasource = require_object(datasource, f"datasources[{index}]")
        for key in ("name", "connectionId", "connectorType"):
            require_text(datasource, key, prefix)
        for key in ("database", "tableName", "query"):
            optional_text(datasource, key, prefix)
        if "tableName" in datasource and "query" in datasource:
            raise invalid(f"{prefix}query cannot be set together with {prefix}tableName")
        datasource_id = optional_text(datasource, "datasourceId", prefix)
        if datasource_id is not None:
            if datasource_id in seen:
                raise invalid(f"{prefix}datasourceId {datasource_id} is used twice in this dataset")
            seen.add(datasource_id)
        checked.append(copy.deepcopy(datasource))
    return checked


def _validate_column(column: Any, index: int) -> dict:
    prefix = f"columns[{index}]."
    column = require_object(column, f"columns[{index}]")
    require_text(column, "columnName", prefix)
    require_text(column, "columnType", prefix)
    for key in ("columnId", "origColumnType", "origColumnSourceName"):
        optional_text(column, key, prefix)
    if "visible" in column and not isinstance(column["visible"], bool):
        raise wrong_type(prefix + "visible", "a boolean")
    if "accessRoles" in column and not _is_roles(column["accessRoles"]):
        raise wrong_type(prefix + "accessRoles", "a string or an array of strings")
    return copy.deepcopy(column)


def _is_roles(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, list) and all(isinstance(role, str) for role in value)
