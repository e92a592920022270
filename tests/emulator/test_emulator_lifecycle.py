"""Load lifecycle, Update (PUT) with pending changes, and Apply Changes."""

from __future__ import annotations

import pytest
from emulator_helpers import SALES, create_dataset, error_message, ok

from qrvey_iac.emulator import EmulatorConfig, FaultRule, FaultSet

pytestmark = pytest.mark.anyio


async def start_load(client, dataset_id):
    return ok(await client.post(f"{SALES}/qollect/dataset/{dataset_id}/load"))


async def poll(client, dataset_id, times):
    return [ok(await client.get(f"{SALES}/qollect/dataset/{dataset_id}"))["status"] for _ in range(times)]


async def test_load_moves_draft_to_loading_then_loaded_after_two_polls(client):
    dataset_id = (await create_dataset(client))["datasetId"]
    assert await start_load(client, dataset_id) == {"datasetId": dataset_id, "status": "LOADING"}
    assert await poll(client, dataset_id, 4) == ["LOADING", "LOADING", "LOADED", "LOADED"]


@pytest.mark.parametrize("config", [EmulatorConfig(terminal_status="ACTIVE", load_polls=0)])
async def test_terminal_status_and_poll_count_are_configurable(client):
    dataset_id = (await create_dataset(client))["datasetId"]
    await start_load(client, dataset_id)
    assert await poll(client, dataset_id, 2) == ["ACTIVE", "ACTIVE"]


@pytest.mark.parametrize(
    "config",
    [EmulatorConfig(load_polls=1, faults=FaultSet([FaultRule("POST", "*/load", "load-fail", first=1)]))],
)
async def test_load_fail_fault_ends_in_failed_and_a_reload_can_succeed(client, emulator):
    dataset_id = (await create_dataset(client))["datasetId"]
    await start_load(client, dataset_id)
    assert await poll(client, dataset_id, 2) == ["LOADING", "FAILED"]
    await start_load(client, dataset_id)
    assert await poll(client, dataset_id, 2) == ["LOADING", "LOADED"]
    assert emulator.fault_counts["load-fail"] == 1


async def test_second_load_while_loading_is_ignored(client):
    dataset_id = (await create_dataset(client))["datasetId"]
    await start_load(client, dataset_id)
    await poll(client, dataset_id, 1)
    assert (await start_load(client, dataset_id))["status"] == "LOADING"
    assert await poll(client, dataset_id, 2) == ["LOADING", "LOADED"]  # not restarted


async def test_list_does_not_advance_a_load(client):
    dataset_id = (await create_dataset(client))["datasetId"]
    await start_load(client, dataset_id)
    for _ in range(5):
        ok(await client.post(f"{SALES}/qollect/dataset/all"))
    assert await poll(client, dataset_id, 1) == ["LOADING"]


async def test_load_unknown_dataset_is_404(client):
    assert error_message(await client.post(f"{SALES}/qollect/dataset/nope/load"), 404) == "Dataset nope not found"


# -- Update and Apply Changes ---------------------------------------------------------------


async def test_put_replaces_client_fields_and_keeps_server_fields(client):
    created = await create_dataset(client, customAttributes={"a": 1}, dataSync={"x": 1})
    edited = dict(created, name="Orders v2", customAttributes={"b": 2})
    del edited["dataSync"]
    edited["columns"] = [dict(created["columns"][0], columnName="Grand total", accessRoles=["admin"])]
    updated = ok(await client.put(f"{SALES}/qollect/dataset/{created['datasetId']}", json=edited))
    assert updated["name"] == "Orders v2"
    assert updated["customAttributes"] == {"b": 2}
    assert "dataSync" not in updated
    [column] = updated["columns"]
    assert column["columnId"] == created["columns"][0]["columnId"]
    assert (column["columnName"], column["accessRoles"]) == ("Grand total", ["admin"])
    for key in ("datasetId", "appId", "userId", "status", "connectionId", "datasetType", "isPublic", "createDate"):
        assert updated[key] == created[key]
    assert updated["pendingChanges"] is True
    assert updated["updateDate"] >= created["updateDate"]
    assert ok(await client.get(f"{SALES}/qollect/dataset/{created['datasetId']}")) == updated


async def test_put_ignores_server_field_values_sent_by_the_client(client):
    created = await create_dataset(client)
    edited = dict(created, status="LOADED", isPublic=True, connectionId="forged", createDate="2000-01-01T00:00:00.000Z")
    updated = ok(await client.put(f"{SALES}/qollect/dataset/{created['datasetId']}", json=edited))
    for key in ("status", "isPublic", "connectionId", "createDate"):
        assert updated[key] == created[key]


async def test_put_matches_columns_by_source_name_then_by_name_and_mints_new_ones(client):
    created = await create_dataset(client)
    total, region = created["columns"]
    sent = [
        {"columnName": "Renamed", "columnType": "NUMBER", "origColumnSourceName": "Total"},
        {"columnName": "Region", "columnType": "STRING"},
        {"columnName": "New", "columnType": "DATE"},
    ]
    updated = ok(await client.put(f"{SALES}/qollect/dataset/{created['datasetId']}", json=dict(created, columns=sent)))
    ids = [column["columnId"] for column in updated["columns"]]
    assert ids[:2] == [total["columnId"], region["columnId"]]
    assert ids[2] not in (total["columnId"], region["columnId"])
    assert updated["columns"][2]["origColumnSourceName"] == "New"


async def test_put_keeps_datasource_ids_by_name_when_the_client_omits_them(client):
    created = await create_dataset(client)
    sources = [{key: value for key, value in created["datasources"][0].items() if key != "datasourceId"}]
    url = f"{SALES}/qollect/dataset/{created['datasetId']}"
    updated = ok(await client.put(url, json=dict(created, datasources=sources)))
    assert updated["datasources"] == created["datasources"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"datasetId": "other"}, "ValidationError: datasetId other does not match"),
        ({"name": ""}, "ValidationError: name must be a non-empty string"),
        ({"columns": [{"columnId": "unknown", "columnName": "A", "columnType": "X"}]}, "columns[0].columnId unknown"),
        ({"datasources": []}, "ValidationError: datasources must contain at least one item"),
    ],
)
async def test_invalid_put_is_400_and_changes_nothing(client, emulator, change, expected):
    created = await create_dataset(client)
    response = await client.put(f"{SALES}/qollect/dataset/{created['datasetId']}", json=dict(created, **change))
    assert expected in error_message(response, 400)
    assert emulator.world.datasets[created["datasetId"]] == created


async def test_apply_changes_clears_pending_changes(client):
    created = await create_dataset(client)
    ok(await client.put(f"{SALES}/qollect/dataset/{created['datasetId']}", json=dict(created, name="v2")))
    applied = ok(await client.post(f"{SALES}/qollect/dataset/{created['datasetId']}/applyChanges"))
    assert applied["pendingChanges"] is False and applied["name"] == "v2"
    assert ok(await client.get(f"{SALES}/qollect/dataset/{created['datasetId']}"))["pendingChanges"] is False
