"""Dataset routes: create (two ways), get, list, update, apply changes, delete, load."""

from __future__ import annotations

import copy
import time

from qrvey_iac.emulator import views
from qrvey_iac.emulator.columns import build_columns, fresh_columns, synthetic_columns
from qrvey_iac.emulator.context import Call, utc_now
from qrvey_iac.emulator.errors import invalid, missing, not_found, refused
from qrvey_iac.emulator.listing import list_page
from qrvey_iac.emulator.records import MANAGED, VIEW, new_dataset
from qrvey_iac.emulator.validation import (
    check_dataset_id,
    optional_object,
    optional_text,
    require_object,
    require_text,
    validate_definition,
)

LOAD_MESSAGE = "statusMessage"     # why the last load FAILED (the field name is the emulator's choice)
PENDING_RELOAD = "pendingReload"   # set by a structural PUT; Apply Changes then sets the status to DRAFT

# Kept from the stored dataset on Update (pendingChanges and updateDate are set anew).
PRESERVED_ON_UPDATE = frozenset(
    {
        "datasetId", "appId", "userId", "status", "datasetType", "connectionId", "isPublic",
        "sourceDataset", "sourceStatus", "createDate", "statusMessage",
    }
)


def create_dataset(call: Call) -> dict:
    """POST /qollect/dataset: create from a full definition (seed 000)."""
    definition = validate_definition(call.body)
    dataset = new_dataset(call, _choose_dataset_id(call), definition["name"], MANAGED)
    _apply_definition(call, dataset, definition)
    call.world.put_dataset(dataset)
    return dataset


def create_from_connection(call: Call) -> dict:
    """POST /qollect/dataset/datasource: one table or query of an existing connection."""
    body = require_object(call.body, "body")
    connection_id = require_text(body, "connectionId")
    name = require_text(body, "name")
    source = _table_or_query(body)
    connection = call.world.connections.get(connection_id)
    if connection is None:
        raise not_found("Connection", connection_id)
    dataset = new_dataset(call, _choose_dataset_id(call), name, MANAGED)
    datasource = {
        "datasourceId": call.mint_uuid(),
        "name": name,
        "connectionId": connection_id,
        "connectorType": connection["connectorType"],
    }
    database = optional_text(body, "database")
    if database is not None:
        datasource["database"] = database
    dataset["datasources"] = [{**datasource, **source}]
    dataset["columns"] = synthetic_columns(call, dataset["datasetId"])
    dataset["customAttributes"] = copy.deepcopy(optional_object(body, "customAttributes") or {})
    call.world.put_dataset(dataset)
    return dataset


def get_dataset(call: Call) -> dict:
    """GET /qollect/dataset/{id}; each GET also moves a running load forward."""
    dataset = call.owned_dataset(call.params["datasetId"])
    _advance_load(call, dataset)
    views.follow_source(call, dataset)
    return dataset


def list_datasets(call: Call) -> dict:
    """POST /qollect/dataset/all: the path app's datasets, views included, in creation order.
    The views on the page follow their sources (the others are followed when they are read:
    following every view of the app for each page made a 1,500-dataset listing quadratic)."""
    mine = [dataset for dataset in call.world.ordered_datasets() if call.owns(dataset, "appId", "userId")]
    return list_page(call.body, mine, call.world.dataset_order, shape=call.config.list_shape,
                     read=lambda dataset: views.follow_source(call, dataset))


def update_dataset(call: Call) -> dict:
    """PUT /qollect/dataset/{id}: replace the client-owned fields; marks pending changes."""
    dataset_id = call.params["datasetId"]
    stored = call.owned_dataset(dataset_id)
    body = require_object(call.body, "body")
    if "datasetId" in body and body["datasetId"] != dataset_id:
        raise invalid(f"datasetId {body['datasetId']} does not match the datasetId {dataset_id} in the path")
    definition = validate_definition(body)
    if stored["datasetType"] == VIEW:
        views.follow_source(call, stored)
        views.check_view_update(stored, definition)
        definition["datasources"] = copy.deepcopy(stored["datasources"])
    server_fields = {key: value for key, value in stored.items() if key in PRESERVED_ON_UPDATE}
    updated = {**server_fields, "pendingChanges": True, "updateDate": utc_now()}
    _apply_definition(call, updated, definition, previous=stored)
    if stored.get(PENDING_RELOAD) or (stored["datasetType"] != VIEW and _structure(stored) != _structure(updated)):
        updated[PENDING_RELOAD] = True
    call.world.put_dataset(updated)
    for view in call.world.views_of(dataset_id):     # a view's columns follow its source's
        views.follow_source(call, view)
    return updated


def apply_changes(call: Call) -> dict:
    """POST /qollect/dataset/{id}/applyChanges (path is the emulator's choice). Committing a
    structural change (types, datasources, query: qrvey-api.md D5) leaves the dataset needing a
    reload: its status goes back to DRAFT (a load running is dropped), its views' with it."""
    dataset = call.owned_dataset(call.params["datasetId"])
    dataset["pendingChanges"] = False
    dataset["updateDate"] = utc_now()
    if dataset.pop(PENDING_RELOAD, False):
        call.world.loads.pop(dataset["datasetId"], None)
        views.set_status(call.world, dataset, "DRAFT")
    call.world.mark_changed()
    return dataset


def delete_dataset(call: Call) -> dict:
    """DELETE /qollect/dataset/{id}; views of it follow config.on_source_delete."""
    dataset_id = call.params["datasetId"]
    dataset = call.owned_dataset(dataset_id)
    doomed_views = views.before_source_delete(call, dataset)
    call.world.remove_dataset(dataset_id)
    for view_id in doomed_views:
        call.world.remove_dataset(view_id)
    return {"datasetId": dataset_id}


def load_dataset(call: Call) -> dict:
    """POST /qollect/dataset/{id}/load: start a load; a second trigger while LOADING is ignored.
    A dataset whose connection was deleted cannot be reloaded (qrvey-api.md N5): 400."""
    dataset_id = call.params["datasetId"]
    dataset = call.owned_dataset(dataset_id)
    if dataset["datasetType"] == VIEW:
        raise refused(f"Dataset {dataset_id} is a dataset view: views hold no data and cannot be loaded")
    deleted = _deleted_connections(call, dataset)
    if deleted:
        raise refused(f"Dataset {dataset_id} cannot be reloaded: its connection {', '.join(deleted)} was deleted")
    if dataset["status"] != "LOADING":
        dataset.pop(LOAD_MESSAGE, None)
        call.world.loads[dataset_id] = {"pollsLeft": call.config.load_polls, "fails": call.load_fails}
        if call.config.load_seconds:
            call.world.loads[dataset_id]["endsAt"] = time.time() + call.config.load_seconds
        views.set_status(call.world, dataset, "LOADING")
    return {"datasetId": dataset_id, "status": "LOADING"}


def _apply_definition(call: Call, dataset: dict, definition: dict, previous: dict | None = None) -> None:
    dataset_id = dataset["datasetId"]
    dataset["name"] = definition["name"]
    if previous is None:
        dataset["datasources"] = _fill_datasource_ids(call, definition["datasources"], [])
        dataset["columns"] = fresh_columns(call, dataset_id, definition["columns"])
    else:
        dataset["datasources"] = _fill_datasource_ids(call, definition["datasources"], previous["datasources"])
        dataset["columns"] = build_columns(call, dataset_id, definition["columns"], previous["columns"])
    dataset["customAttributes"] = definition.get("customAttributes", {})
    for key, value in definition.items():
        if key not in ("name", "datasources", "columns", "customAttributes"):
            dataset[key] = value


def _fill_datasource_ids(call: Call, datasources: list[dict], previous: list[dict]) -> list[dict]:
    """Keep sent datasourceIds; reuse a previous one with the same name; else mint a UUID."""
    sent_ids = {source["datasourceId"] for source in datasources if "datasourceId" in source}
    reusable = [source for source in previous if source.get("datasourceId") not in sent_ids]
    filled = []
    for source in datasources:
        if "datasourceId" not in source:
            same_name = next((old for old in reusable if old.get("name") == source["name"]), None)
            if same_name is not None:
                reusable.remove(same_name)
            source = {"datasourceId": same_name["datasourceId"] if same_name else call.mint_uuid(), **source}
        filled.append(source)
    return filled


def _choose_dataset_id(call: Call) -> str:
    requested = call.body.get("datasetId") if isinstance(call.body, dict) else None
    if requested is None:
        return call.mint_short_id()
    dataset_id = check_dataset_id(requested)
    if dataset_id in call.world.datasets:
        raise refused(f"datasetId {dataset_id} is already taken")
    return call.world.claim_id(dataset_id)


def _table_or_query(body: dict) -> dict:
    table = optional_text(body, "tableName")
    query = optional_text(body, "query")
    if table is None and query is None:
        raise missing("tableName")
    if table is not None and query is not None:
        raise invalid("query cannot be set together with tableName")
    return {"tableName": table} if table is not None else {"query": query}


def _structure(dataset: dict) -> tuple:
    """What a change of needs a reload (D5): the datasources' sources, the columns and their types.
    Names, visibility, formats and attributes are metadata."""
    sources = sorted(
        tuple(str(source.get(key)) for key in ("connectionId", "connectorType", "database", "tableName", "query"))
        for source in dataset.get("datasources") or [] if isinstance(source, dict)
    )
    columns = sorted(
        tuple(str(column.get(key)) for key in ("origColumnSourceName", "columnType", "origColumnType"))
        for column in dataset.get("columns") or [] if isinstance(column, dict)
    )
    return tuple(sources), tuple(columns)


def _deleted_connections(call: Call, dataset: dict) -> list[str]:
    """The connections ``dataset`` reads that were created in this world and deleted since (an
    id never seen as a connection, as the tutorial's arbitrary UUIDs, is not checked)."""
    used = [source.get("connectionId") for source in dataset.get("datasources") or [] if isinstance(source, dict)]
    return sorted({c for c in used if c in call.world.connection_order and c not in call.world.connections})


def _advance_load(call: Call, dataset: dict) -> None:
    load = call.world.loads.get(dataset["datasetId"])
    if load is None:
        return
    if load["pollsLeft"] > 0:
        load["pollsLeft"] -= 1
        call.world.mark_changed()
        return
    if time.time() < load.get("endsAt", 0):
        return                     # still LOADING: the load takes load_seconds
    del call.world.loads[dataset["datasetId"]]
    if load["fails"]:
        dataset[LOAD_MESSAGE] = "the data could not be loaded (emulator fault load-fail)"
    views.set_status(call.world, dataset, "FAILED" if load["fails"] else call.config.terminal_status)
