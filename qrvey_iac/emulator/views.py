"""Sharing (publishVersion), dataset views (clone/connection) and what sources do to views."""

from __future__ import annotations

import copy

from qrvey_iac.emulator.columns import copied_columns, match_columns
from qrvey_iac.emulator.context import Call, utc_now
from qrvey_iac.emulator.errors import ApiError, invalid, refused
from qrvey_iac.emulator.records import VIEW, new_dataset
from qrvey_iac.emulator.validation import optional_object, optional_text, require_bool, require_object, require_text
from qrvey_iac.emulator.world import World

VIEW_CONNECTOR_TYPE = "DATASET_VIEW"
STRUCTURAL_COLUMN_FIELDS = ("columnType", "origColumnType", "origColumnSourceName")


def publish_version(call: Call) -> dict:
    """POST or PUT /qollect/dataset/{id}/publishVersion: share or unshare a dataset."""
    dataset_id = call.params["datasetId"]
    dataset = call.owned_dataset(dataset_id)
    is_public = require_bool(require_object(call.body, "body"), "isPublic")
    if dataset["datasetType"] == VIEW:
        raise refused(f"Dataset {dataset_id} is a dataset view: a view cannot be shared")
    dataset["isPublic"] = is_public
    dataset["updateDate"] = utc_now()
    before, after = ("UNSHARED", "AVAILABLE") if is_public else ("AVAILABLE", "UNSHARED")
    for view in call.world.views_of(dataset_id):
        if view.get("sourceStatus") == before:
            view["sourceStatus"] = after
    call.world.mark_changed()
    return dataset


def clone_view(call: Call) -> dict:
    """POST (or PUT) /qollect/dataset/clone/connection/{connectionId}: create a dataset view.

    The path names the target user and app; the body names the source's app and owner.
    """
    body = require_object(call.body, "body")
    source_app = require_text(body, "appId")
    source_user = require_text(body, "userId")
    name = optional_text(body, "name")
    custom_attributes = optional_object(body, "customAttributes")
    source = _shared_source(call, call.params["connectionId"], source_app, source_user)
    view = new_dataset(call, call.mint_short_id(), name or source["name"], VIEW)
    view["status"] = source["status"]
    view["datasources"] = [
        {
            "datasourceId": call.mint_uuid(),
            "name": source["name"],
            "connectionId": source["connectionId"],
            "connectorType": VIEW_CONNECTOR_TYPE,
        }
    ]
    view["columns"] = copied_columns(call, view["datasetId"], source["columns"])
    view["customAttributes"] = copy.deepcopy(custom_attributes or {})
    view["sourceDataset"] = {key: source[key] for key in ("datasetId", "appId", "userId", "connectionId")}
    view["sourceStatus"] = "AVAILABLE"
    call.world.put_dataset(view)
    return view


def _shared_source(call: Call, connection_id: str, source_app: str, source_user: str) -> dict:
    source = next(iter(call.world.with_connection(connection_id)), None)
    if source is None:
        raise ApiError(404, f"No dataset has connectionId {connection_id}")
    if source["datasetType"] == VIEW:
        raise refused(f"Dataset {source['datasetId']} is itself a dataset view: a view cannot be a view's source")
    if source["appId"] != source_app:
        raise invalid(f"appId {source_app} is not the app of the dataset with connectionId {connection_id}")
    if source["userId"] != source_user:
        raise invalid(f"userId {source_user} is not the owner of the dataset with connectionId {connection_id}")
    if not source.get("isPublic"):
        raise refused(f"Dataset {source['datasetId']} is not shared: share it with publishVersion first")
    return source


def check_view_update(view: dict, definition: dict) -> None:
    """Refuse the edits a view does not allow: sync, datasources, column types, adding or removing."""
    if "dataSync" in definition:
        raise invalid("dataSync cannot be set on a dataset view")
    if not _same_datasources(definition["datasources"], view["datasources"]):
        raise invalid("datasources cannot be changed on a dataset view")
    sent = definition["columns"]
    matches = match_columns(sent, view["columns"])
    for index, (column, match) in enumerate(zip(sent, matches)):
        if match is None:
            raise invalid(f"columns[{index}] ({column['columnName']}) cannot be added to a dataset view")
        for field in STRUCTURAL_COLUMN_FIELDS:
            if field in column and column[field] != match.get(field):
                raise invalid(f"columns[{index}].{field} cannot be changed on a dataset view")
    kept = {id(match) for match in matches}
    for column in view["columns"]:
        if id(column) not in kept:
            raise invalid(f"columns: column {column['columnName']} cannot be removed from a dataset view")


def _same_datasources(sent: list[dict], stored: list[dict]) -> bool:
    if len(sent) != len(stored):
        return False
    for new, old in zip(sent, stored):
        if "datasourceId" not in new:
            old = {key: value for key, value in old.items() if key != "datasourceId"}
        if new != old:
            return False
    return True


def before_source_delete(call: Call, dataset: dict) -> list[str]:
    """Apply config.on_source_delete to the views of ``dataset``; returns views to delete too."""
    dependants = call.world.views_of(dataset["datasetId"])
    if not dependants:
        return []
    view_ids = [view["datasetId"] for view in dependants]
    mode = call.config.on_source_delete
    if mode == "refuse":
        raise refused(
            f"Dataset {dataset['datasetId']} is the source of dataset views {', '.join(view_ids)}: delete them first"
        )
    if mode == "cascade":
        return view_ids
    for view in dependants:
        view["sourceStatus"] = "DELETED"
    return []


def follow_source(call: Call, view: dict) -> None:
    """A view's columns follow its source's current columns (qrvey-api.md §4: "changes to the
    source show up in every view"; §8 N6): a column added to the source appears in the view,
    one removed from it leaves the view, a retyped one is retyped. What the view sets itself
    (its columnName, visibility, formats) stays on the columns it keeps. A view column is the
    source column with the same origColumnSourceName (columnName when that is missing).

    Called whenever a view is read or written, and for every view of a source that is updated,
    so a source edited any way (the API, or the world file by hand) is followed. A view whose
    source is gone (deleted, orphaned) keeps the columns it has."""
    if view.get("datasetType") != VIEW:
        return
    source = call.world.datasets.get((view.get("sourceDataset") or {}).get("datasetId"))
    if source is None:
        return
    have = {_source_key(column): column for column in view.get("columns", [])}
    followed = []
    for column in source.get("columns", []):
        mine = have.get(_source_key(column))
        if mine is None:
            followed.extend(copied_columns(call, view["datasetId"], [column]))
        else:
            followed.append({**mine, **{key: column[key] for key in STRUCTURAL_COLUMN_FIELDS if key in column}})
    if followed != view.get("columns"):
        view["columns"] = followed
        view["updateDate"] = utc_now()
        call.world.mark_changed()


def _source_key(column: dict) -> object:
    return column.get("origColumnSourceName") or column.get("columnName")


def set_status(world: World, dataset: dict, status: str) -> None:
    """Set a dataset's status; its views mirror their source's status."""
    dataset["status"] = status
    for view in world.views_of(dataset["datasetId"]):
        view["status"] = status
    world.mark_changed()
