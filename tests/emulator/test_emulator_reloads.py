"""Reloads as qrvey-api.md has them (issue 16 point 4): a structural change committed with Apply
Changes leaves the dataset needing a reload (D5: status back to DRAFT; metadata changes need
none), a dataset whose connection was deleted cannot be reloaded (N5), a FAILED load says why."""

from __future__ import annotations

import anyio
import pytest
from emulator_helpers import (
    EMEA, SALES, connection_body, create_dataset, create_view, dataset_body, error_message, ok, share,
)

from qrvey_iac.emulator import EmulatorConfig, FaultRule, FaultSet

pytestmark = pytest.mark.anyio


async def loaded_dataset(client, **overrides) -> dict:
    dataset = await create_dataset(client, **overrides)
    url = f"{SALES}/qollect/dataset/{dataset['datasetId']}"
    ok(await client.post(f"{url}/load"))
    statuses = [ok(await client.get(url))["status"] for _ in range(3)]
    assert statuses[-1] == "LOADED"
    return ok(await client.get(url))


async def put_and_apply(client, dataset: dict, **changes) -> dict:
    url = f"{SALES}/qollect/dataset/{dataset['datasetId']}"
    edited = {**dataset, **changes}
    ok(await client.put(url, json=edited))
    ok(await client.post(f"{url}/applyChanges"))
    return ok(await client.get(url))


def with_column_type(dataset: dict, name: str, column_type: str) -> list[dict]:
    return [{**c, "columnType": column_type} if c["columnName"] == name else c for c in dataset["columns"]]


def renamed_column(dataset: dict, name: str, new_name: str) -> list[dict]:
    return [{**c, "columnName": new_name} if c["columnName"] == name else c for c in dataset["columns"]]


async def test_a_type_change_applied_sets_the_status_back_to_draft(client):
    dataset = await loaded_dataset(client)
    after = await put_and_apply(client, dataset, columns=with_column_type(dataset, "Total", "STRING"))
    assert after["status"] == "DRAFT"
    assert "pendingReload" not in after


async def test_a_datasource_change_applied_sets_the_status_back_to_draft(client):
    dataset = await loaded_dataset(client)
    source = {**dataset["datasources"][0], "tableName": None, "query": "select 1 as Total"}
    source = {k: v for k, v in source.items() if v is not None}
    assert (await put_and_apply(client, dataset, datasources=[source]))["status"] == "DRAFT"


async def test_a_new_column_applied_sets_the_status_back_to_draft(client):
    dataset = await loaded_dataset(client)
    columns = [*dataset["columns"], {"columnName": "Extra", "columnType": "NUMBER"}]
    assert (await put_and_apply(client, dataset, columns=columns))["status"] == "DRAFT"


async def test_metadata_changes_applied_keep_the_status(client):
    dataset = await loaded_dataset(client)
    after = await put_and_apply(client, dataset, name="Renamed", customAttributes={"team": "x"},
                                columns=renamed_column(dataset, "Total", "Order total"))
    assert after["status"] == "LOADED"


async def test_the_status_changes_only_when_the_changes_are_applied(client):
    dataset = await loaded_dataset(client)
    url = f"{SALES}/qollect/dataset/{dataset['datasetId']}"
    ok(await client.put(url, json={**dataset, "columns": with_column_type(dataset, "Total", "STRING")}))
    ok(await client.put(url, json={**dataset, "name": "Then renamed"}))       # still owed: the first PUT's
    assert ok(await client.get(url))["status"] == "LOADED"
    ok(await client.post(f"{url}/applyChanges"))
    assert ok(await client.get(url))["status"] == "DRAFT"


async def test_views_follow_their_source_back_to_draft(client):
    dataset = await loaded_dataset(client)
    await share(client, dataset["datasetId"])
    view = await create_view(client, dataset)
    await put_and_apply(client, dataset, columns=with_column_type(dataset, "Total", "STRING"))
    assert ok(await client.get(f"{EMEA}/qollect/dataset/{view['datasetId']}"))["status"] == "DRAFT"


async def test_a_dataset_whose_connection_was_deleted_cannot_be_reloaded(client):
    connection = ok(await client.post(f"{SALES}/connections", json=connection_body()))
    dataset_id = (await create_dataset(client))["datasetId"]
    url = f"{SALES}/qollect/dataset/{dataset_id}"
    source = {**dataset_body()["datasources"][0], "connectionId": connection["connectorid"]}
    ok(await client.put(url, json=dataset_body(datasources=[source])))
    ok(await client.post(f"{url}/load"))                                      # its connection exists: loads
    ok(await client.delete(f"{SALES}/connections/{connection['connectorid']}"))
    message = error_message(await client.post(f"{url}/load"), 400)
    assert message == (f"Dataset {dataset_id} cannot be reloaded: its connection {connection['connectorid']} "
                       "was deleted")
    assert ok(await client.get(url))["datasetId"] == dataset_id               # the dataset itself stays


async def test_a_connection_id_never_created_here_does_not_stop_a_load(client):
    dataset_id = (await create_dataset(client))["datasetId"]     # the tutorial's arbitrary connection UUID
    assert ok(await client.post(f"{SALES}/qollect/dataset/{dataset_id}/load"))["status"] == "LOADING"


@pytest.mark.parametrize(
    "config", [EmulatorConfig(load_polls=0, faults=FaultSet([FaultRule("POST", "*/load", "load-fail", first=1)]))],
)
async def test_a_failed_load_says_why_until_the_next_load(client):
    dataset_id = (await create_dataset(client))["datasetId"]
    url = f"{SALES}/qollect/dataset/{dataset_id}"
    ok(await client.post(f"{url}/load"))
    failed = ok(await client.get(url))
    assert failed["status"] == "FAILED" and "could not be loaded" in failed["statusMessage"]
    ok(await client.put(url, json=failed))                                     # GET-edit-PUT keeps it server-owned
    ok(await client.post(f"{url}/load"))
    loaded = ok(await client.get(url))
    assert loaded["status"] == "LOADED" and "statusMessage" not in loaded


@pytest.mark.parametrize("config", [EmulatorConfig(load_polls=0, load_seconds=0.3)])
async def test_a_load_can_take_time(client):
    dataset_id = (await create_dataset(client))["datasetId"]
    url = f"{SALES}/qollect/dataset/{dataset_id}"
    ok(await client.post(f"{url}/load"))
    assert [ok(await client.get(url))["status"] for _ in range(3)] == ["LOADING"] * 3
    await anyio.sleep(0.35)
    assert ok(await client.get(url))["status"] == "LOADED"


def test_load_seconds_must_not_be_negative():
    with pytest.raises(ValueError, match="load_seconds must be >= 0"):
        EmulatorConfig(load_seconds=-1)
