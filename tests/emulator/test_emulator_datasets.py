"""Create (full definition and from a connection), get, scoping and delete."""

from __future__ import annotations

import re

import pytest
from emulator_helpers import (
    EMEA,
    SALES,
    connection_body,
    create_dataset,
    dataset_body,
    error_message,
    ok,
)

pytestmark = pytest.mark.anyio

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SHORT_ID = re.compile(r"^[A-Za-z0-9_-]{9}$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


async def test_create_returns_the_stored_dataset_with_server_fields(client, emulator):
    created = await create_dataset(client)
    assert SHORT_ID.match(created["datasetId"])
    assert SHORT_ID.match(created["connectionId"])
    assert created["connectionId"] != created["datasetId"]
    assert created["appId"] == "a-sales" and created["userId"] == "u-sales"
    assert (created["status"], created["datasetType"]) == ("DRAFT", "MANAGED")
    assert created["isPublic"] is False and created["pendingChanges"] is False
    assert created["customAttributes"] == {}
    assert "dataSync" not in created
    assert ISO_MS.match(created["createDate"]) and created["updateDate"] == created["createDate"]
    assert emulator.world.datasets[created["datasetId"]] == created


async def test_create_keeps_datasources_and_fills_column_server_fields(client):
    created = await create_dataset(client)
    [source] = created["datasources"]
    assert source == dataset_body()["datasources"][0]
    total, region = created["columns"]
    assert total["columnName"] == "Total" and total["appId"] == "a-sales"
    assert total["datasetId"] == created["datasetId"]
    assert total["origColumnSourceName"] == "Total" and total["origColumnType"] == "NUMBER"
    assert region["origColumnType"] == "STRING"
    assert SHORT_ID.match(total["columnId"]) and total["columnId"] != region["columnId"]


async def test_create_mints_a_uuid_datasource_id_when_absent(client):
    body = dataset_body()
    del body["datasources"][0]["datasourceId"]
    created = ok(await client.post(f"{SALES}/qollect/dataset", json=body))
    assert UUID4.match(created["datasources"][0]["datasourceId"])


async def test_create_stores_data_sync_custom_attributes_and_unknown_keys(client):
    created = await create_dataset(
        client, dataSync={"schedule": {"cron": "0 3 * * *"}}, customAttributes={"managedBy": "qrvey-iac"}, extra=[1]
    )
    assert created["dataSync"] == {"schedule": {"cron": "0 3 * * *"}}
    assert created["customAttributes"] == {"managedBy": "qrvey-iac"}
    assert created["extra"] == [1]


async def test_create_ignores_server_owned_fields_in_the_body(client):
    created = await create_dataset(client, status="LOADED", isPublic=True, datasetType="VIEW", connectionId="mine")
    assert (created["status"], created["isPublic"], created["datasetType"]) == ("DRAFT", False, "MANAGED")
    assert created["connectionId"] != "mine"


async def test_create_replaces_a_client_column_id(client):
    body = dataset_body(columns=[{"columnName": "A", "columnType": "NUMBER", "columnId": "client-id"}])
    created = ok(await client.post(f"{SALES}/qollect/dataset", json=body))
    assert created["columns"][0]["columnId"] != "client-id"


async def test_client_supplied_dataset_id_is_kept(client):
    created = await create_dataset(client, datasetId="orders-2024_v1")
    assert created["datasetId"] == "orders-2024_v1"
    assert ok(await client.get(f"{SALES}/qollect/dataset/orders-2024_v1"))["name"] == "Orders"


async def test_client_dataset_id_taken_in_any_app_is_400(client):
    await create_dataset(client, datasetId="dup")
    response = await client.post(f"{EMEA}/qollect/dataset", json=dataset_body(datasetId="dup"))
    assert error_message(response, 400) == "datasetId dup is already taken"


@pytest.mark.parametrize("bad_id", ["", "has space", "a/b", "x" * 65, 42])
async def test_malformed_client_dataset_id_is_400(client, bad_id):
    response = await client.post(f"{SALES}/qollect/dataset", json=dataset_body(datasetId=bad_id))
    assert "datasetId must match" in error_message(response, 400)


def without(body: dict, path: str) -> dict:
    """``body`` with the field at a dotted path (list indexes as numbers) removed."""
    *parents, last = path.split(".")
    node = body
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    del node[last]
    return body


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("name", "name"),
        ("datasources", "datasources"),
        ("columns", "columns"),
        ("datasources.0.name", "datasources[0].name"),
        ("datasources.0.connectionId", "datasources[0].connectionId"),
        ("datasources.0.connectorType", "datasources[0].connectorType"),
        ("columns.0.columnName", "columns[0].columnName"),
        ("columns.1.columnType", "columns[1].columnType"),
    ],
)
async def test_missing_required_field_is_400_naming_it(client, path, field):
    response = await client.post(f"{SALES}/qollect/dataset", json=without(dataset_body(), path))
    assert error_message(response, 400) == f"ValidationError: {field} is a required property"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"name": ""}, "name must be a non-empty string"),
        ({"name": 7}, "name must be a non-empty string"),
        ({"datasources": []}, "datasources must contain at least one item"),
        ({"datasources": {"name": "x"}}, "datasources must be an array"),
        ({"datasources": ["x"]}, "datasources[0] must be an object"),
        ({"columns": "Total"}, "columns must be an array"),
        ({"columns": [{"columnName": "A", "columnType": 1}]}, "columns[0].columnType must be a non-empty string"),
        (
            {"columns": [{"columnName": "A", "columnType": "X", "visible": "yes"}]},
            "columns[0].visible must be a boolean",
        ),
        ({"columns": [{"columnName": "A", "columnType": "X", "accessRoles": [1]}]}, "columns[0].accessRoles must be"),
        ({"dataSync": "daily"}, "dataSync must be an object"),
        ({"customAttributes": []}, "customAttributes must be an object"),
    ],
)
async def test_invalid_field_is_400_naming_it(client, overrides, expected):
    response = await client.post(f"{SALES}/qollect/dataset", json=dataset_body(**overrides))
    assert error_message(response, 400).startswith(f"ValidationError: {expected}")


async def test_table_name_and_query_together_is_400(client):
    body = dataset_body()
    body["datasources"][0]["query"] = "select 1"
    response = await client.post(f"{SALES}/qollect/dataset", json=body)
    assert "datasources[0].query cannot be set together with datasources[0].tableName" in error_message(response, 400)


async def test_duplicate_datasource_id_within_a_dataset_is_400(client):
    body = dataset_body()
    body["datasources"].append(dict(body["datasources"][0], name="Second"))
    response = await client.post(f"{SALES}/qollect/dataset", json=body)
    assert "datasources[1].datasourceId" in error_message(response, 400)


async def test_two_datasets_may_share_a_datasource_id_and_a_name(client):
    first = await create_dataset(client)
    second = await create_dataset(client)
    assert first["datasetId"] != second["datasetId"]
    assert first["datasources"][0]["datasourceId"] == second["datasources"][0]["datasourceId"]


async def test_failed_create_stores_nothing(client, emulator):
    await client.post(f"{SALES}/qollect/dataset", json=dataset_body(name=""))
    assert emulator.world.datasets == {}


async def test_get_unknown_dataset_is_404(client):
    assert error_message(await client.get(f"{SALES}/qollect/dataset/nope"), 404) == "Dataset nope not found"


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PUT", "", dataset_body()),
        ("DELETE", "", None),
        ("POST", "/load", None),
        ("POST", "/applyChanges", None),
        ("POST", "/publishVersion", {"isPublic": True}),
    ],
)
async def test_dataset_is_invisible_from_another_app(client, emulator, method, suffix, body):
    created = await create_dataset(client)
    other_user_same_app = "/devapi/v4/user/someone-else/app/a-sales"
    for prefix in (EMEA, other_user_same_app):
        response = await client.request(method, f"{prefix}/qollect/dataset/{created['datasetId']}{suffix}", json=body)
        assert error_message(response, 404) == f"Dataset {created['datasetId']} not found"
    assert emulator.world.datasets[created["datasetId"]] == created


async def test_delete_returns_the_id_and_removes_the_dataset(client, emulator):
    created = await create_dataset(client)
    assert ok(await client.delete(f"{SALES}/qollect/dataset/{created['datasetId']}")) == {
        "datasetId": created["datasetId"]
    }
    assert emulator.world.datasets == {}
    error_message(await client.delete(f"{SALES}/qollect/dataset/{created['datasetId']}"), 404)


async def test_deleted_client_dataset_id_can_be_used_again(client):
    await create_dataset(client, datasetId="again")
    ok(await client.delete(f"{SALES}/qollect/dataset/again"))
    assert (await create_dataset(client, datasetId="again"))["datasetId"] == "again"


# -- Create Dataset from Existing Connection ---------------------------------------------


async def test_create_from_connection_echoes_the_source_and_adds_columns(client):
    connection = ok(await client.post(f"{SALES}/connections", json=connection_body()))
    body = {"connectionId": connection["connectorid"], "name": "My Dataset", "database": "shop", "tableName": "t"}
    created = ok(await client.post(f"{SALES}/qollect/dataset/datasource", json=body))
    assert (created["status"], created["datasetType"], created["name"]) == ("DRAFT", "MANAGED", "My Dataset")
    [source] = created["datasources"]
    assert {key: source[key] for key in ("connectionId", "database", "tableName", "connectorType")} == {
        "connectionId": connection["connectorid"],
        "database": "shop",
        "tableName": "t",
        "connectorType": "MYSQL_LIVE",
    }
    assert "query" not in source and UUID4.match(source["datasourceId"])
    assert [(col["columnName"], col["columnType"]) for col in created["columns"]] == [
        ("id", "NUMBER"),
        ("name", "STRING"),
        ("created_at", "DATE"),
    ]
    assert all(col["datasetId"] == created["datasetId"] for col in created["columns"])


async def test_create_from_connection_with_a_query_and_a_connection_of_another_app(client):
    connection = ok(await client.post(f"{EMEA}/connections", json=connection_body(connectorType="MSSQL_LIVE")))
    body = {"connectionId": connection["connectorid"], "name": "Q", "database": "shop", "query": "select 1"}
    created = ok(await client.post(f"{SALES}/qollect/dataset/datasource", json=body))
    assert created["datasources"][0]["query"] == "select 1"
    assert created["datasources"][0]["connectorType"] == "MSSQL_LIVE"
    assert created["appId"] == "a-sales"


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        ({"name": "x", "tableName": "t"}, 400, "ValidationError: connectionId is a required property"),
        ({"connectionId": "c", "tableName": "t"}, 400, "ValidationError: name is a required property"),
        ({"connectionId": "c", "name": "x"}, 400, "ValidationError: tableName is a required property"),
        ({"connectionId": "c", "name": "x", "tableName": "t", "query": "q"}, 400, "query cannot be set together"),
        ({"connectionId": "nope", "name": "x", "tableName": "t"}, 404, "Connection nope not found"),
    ],
)
async def test_create_from_connection_errors(client, emulator, body, status, expected):
    response = await client.post(f"{SALES}/qollect/dataset/datasource", json=body)
    assert expected in error_message(response, status)
    assert emulator.world.datasets == {}
