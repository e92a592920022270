"""Connections: lower-case ids, password kept but never returned, app scoping."""

from __future__ import annotations

import pytest
from emulator_helpers import EMEA, SALES, connection_body, error_message, ok

pytestmark = pytest.mark.anyio


async def create_connection(client, prefix=SALES, **overrides):
    return ok(await client.post(f"{prefix}/connections", json=connection_body(**overrides)))


async def test_create_returns_lower_case_ids_and_no_password(client, emulator):
    created = await create_connection(client, port=3306)
    assert set(created) == {"connectorid", "name", "connectorType", "host", "user", "port", "appid", "userid"}
    assert (created["appid"], created["userid"]) == ("a-sales", "u-sales")
    assert emulator.world.connections[created["connectorid"]]["password"] == "s3cret"


async def test_password_never_appears_in_any_response(client):
    created = await create_connection(client)
    url = f"{SALES}/connections/{created['connectorid']}"
    responses = [
        await client.get(url),
        await client.post(f"{SALES}/connections/all", json={}),
        await client.put(url, json=connection_body(name="Renamed")),
        await client.delete(url),
    ]
    for response in responses:
        assert response.status_code == 200
        assert "s3cret" not in response.text and "password" not in response.text


async def test_get_list_update_delete(client, emulator):
    first = await create_connection(client)
    second = await create_connection(client, name="Second", connectorType="MSSQL_LIVE")
    await create_connection(client, prefix=EMEA, name="Elsewhere")
    assert ok(await client.get(f"{SALES}/connections/{first['connectorid']}")) == first
    listed = ok(await client.post(f"{SALES}/connections/all"))
    assert listed == {"Count": 2, "Items": [first, second]}
    url = f"{SALES}/connections/{first['connectorid']}"
    updated = ok(await client.put(url, json={"name": "N", "connectorType": "X"}))
    assert updated == {
        "connectorid": first["connectorid"], "name": "N", "connectorType": "X", "appid": "a-sales", "userid": "u-sales"
    }
    assert emulator.world.connections[first["connectorid"]]["password"] == "s3cret"  # kept when omitted
    assert ok(await client.delete(f"{SALES}/connections/{second['connectorid']}")) == second
    assert second["connectorid"] not in emulator.world.connections


async def test_update_can_change_the_password(client, emulator):
    created = await create_connection(client)
    ok(await client.put(f"{SALES}/connections/{created['connectorid']}", json=connection_body(password="new")))
    assert emulator.world.connections[created["connectorid"]]["password"] == "new"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_unknown_or_foreign_connection_is_404(client, method):
    created = await create_connection(client)
    for prefix, connection_id in ((SALES, "nope"), (EMEA, created["connectorid"])):
        response = await client.request(method, f"{prefix}/connections/{connection_id}", json=connection_body())
        assert error_message(response, 404) == f"Connection {connection_id} not found"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"connectorType": "MYSQL_LIVE"}, "ValidationError: name is a required property"),
        ({"name": "x"}, "ValidationError: connectorType is a required property"),
        ({"name": "", "connectorType": "X"}, "ValidationError: name must be a non-empty string"),
        (None, "ValidationError: body is a required property"),
    ],
)
async def test_invalid_connection_bodies_are_400(client, body, expected):
    assert error_message(await client.post(f"{SALES}/connections", json=body), 400) == expected


async def test_deleting_a_connection_leaves_datasets_built_on_it(client, emulator):
    created = await create_connection(client)
    body = {"connectionId": created["connectorid"], "name": "D", "tableName": "t"}
    dataset = ok(await client.post(f"{SALES}/qollect/dataset/datasource", json=body))
    ok(await client.delete(f"{SALES}/connections/{created['connectorid']}"))
    kept = ok(await client.get(f"{SALES}/qollect/dataset/{dataset['datasetId']}"))
    assert kept["datasources"][0]["connectionId"] == created["connectorid"]
