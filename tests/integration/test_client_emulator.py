"""Every client method against the emulator: in-process, and the core set over real HTTP."""

from __future__ import annotations

import pytest
from emulator_backends import EMEA, SALES, connection_body, in_process, make_config, seed_dataset_body

from qrvey_iac.core.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    LoadFailedError,
    NotFoundError,
)
from qrvey_iac.emulator import parse_faults

pytestmark = pytest.mark.anyio


async def test_connection_lifecycle(backend):
    async with backend.client() as client:
        created = await client.create_connection(SALES, connection_body())
        connection_id = created["connectorid"]
        assert (created["appid"], created["userid"]) == (SALES.app_id, SALES.user_id)
        assert "password" not in created
        assert (await client.get_connection(SALES, connection_id))["name"] == "Shop DB"
        await client.update_connection(SALES, connection_id, connection_body("Renamed DB"))
        listed = await client.list_connections(SALES)
        assert [c["name"] for c in listed] == ["Renamed DB"]
        assert (await client.delete_connection(SALES, connection_id))["connectorid"] == connection_id
        with pytest.raises(NotFoundError):
            await client.get_connection(SALES, connection_id)
    assert backend.emulator.world.connections == {}


async def test_dataset_lifecycle(backend):
    async with backend.client() as client:
        connection_id = (await client.create_connection(SALES, connection_body()))["connectorid"]
        body = seed_dataset_body(SALES, "orders-1", connection_id)
        created = await client.create_dataset(SALES, body)
        assert created["datasetId"] == "orders-1" and created["status"] == "DRAFT"

        fetched = await client.get_dataset(SALES, "orders-1")
        assert fetched["columns"][0]["columnName"] == "TheNameofThecolumn"

        updated = await client.update_dataset(SALES, "orders-1", {**body, "name": "Orders v2"})
        assert updated["pendingChanges"] is True
        applied = await client.apply_changes(SALES, "orders-1")
        assert applied["pendingChanges"] is False and applied["name"] == "Orders v2"

        assert (await client.set_shared(SALES, "orders-1", True))["isPublic"] is True
        assert backend.datasets["orders-1"]["isPublic"] is True

        assert (await client.delete_dataset(SALES, "orders-1")) == {"datasetId": "orders-1"}
        with pytest.raises(NotFoundError):
            await client.get_dataset(SALES, "orders-1")
    assert backend.datasets == {}


async def test_create_from_connection_then_load_until_loaded(backend):
    async with backend.client() as client:
        connection_id = (await client.create_connection(SALES, connection_body()))["connectorid"]
        created = await client.create_dataset_from_connection(
            SALES, {"connectionId": connection_id, "name": "Customers", "database": "shop", "tableName": "customers"},
        )
        dataset_id = created["datasetId"]
        assert created["datasources"][0]["tableName"] == "customers"
        assert (await client.load_dataset(SALES, dataset_id))["status"] == "LOADING"
        loaded = await client.wait_until_loaded(SALES, dataset_id, poll_interval=0.001, timeout=5)
    assert loaded["status"] == "LOADED"
    assert backend.datasets[dataset_id]["status"] == "LOADED"


async def test_wait_accepts_active_and_reports_a_failed_load():
    faults = parse_faults("POST /qollect/dataset/*/load: load-fail@every=2")
    backend = in_process(make_config(terminal_status="ACTIVE", faults=faults))
    async with backend.client() as client:
        connection_id = (await client.create_connection(SALES, connection_body()))["connectorid"]
        for dataset_id in ("first", "second"):
            await client.create_dataset(SALES, seed_dataset_body(SALES, dataset_id, connection_id))
            await client.load_dataset(SALES, dataset_id)
        assert (await client.wait_until_loaded(SALES, "first", poll_interval=0.001))["status"] == "ACTIVE"
        with pytest.raises(LoadFailedError) as caught:
            await client.wait_until_loaded(SALES, "second", poll_interval=0.001)
    assert caught.value.dataset_id == "second"


async def test_list_datasets_pages_and_searches(local):
    async with local.client() as client:
        for index, name in enumerate(["Orders EU", "orders US", "Customers", "ORDERS APAC", "Stock"]):
            await client.create_dataset(SALES, seed_dataset_body(SALES, f"d{index}", "conn", name=name))
        everything = await client.list_datasets(SALES, page_size=2)
        orders = await client.list_datasets(SALES, search="Orders", page_size=1)
        elsewhere = await client.list_datasets(EMEA)
    assert [d["datasetId"] for d in everything] == ["d0", "d1", "d2", "d3", "d4"]
    assert [d["name"] for d in orders] == ["Orders EU", "orders US", "ORDERS APAC"]
    assert elsewhere == []


async def test_view_lifecycle(local):
    async with local.client() as client:
        await client.create_dataset(SALES, seed_dataset_body(SALES, "src", "conn"))
        source = await client.set_shared(SALES, "src", True)
        view = await client.create_view(EMEA, SALES, source["connectionId"], name="Orders (EMEA)",
                                        custom_attributes={"managedBy": "qrvey-iac"})
        assert view["datasetType"] == "VIEW" and view["name"] == "Orders (EMEA)"
        assert view["customAttributes"] == {"managedBy": "qrvey-iac"}
        assert [d["datasetId"] for d in await client.list_datasets(EMEA)] == [view["datasetId"]]
        await client.delete_dataset(EMEA, view["datasetId"])
    assert list(local.datasets) == ["src"]


async def test_a_wrong_key_is_an_auth_error(backend):
    async with backend.client(api_key="not-the-key") as client:
        with pytest.raises(AuthError) as caught:
            await client.list_datasets(SALES)
    assert caught.value.status == 401
    assert "x-api-key" in caught.value.message


async def test_an_unknown_id_is_not_found(backend):
    async with backend.client() as client:
        with pytest.raises(NotFoundError) as caught:
            await client.get_dataset(SALES, "nope123")
    assert caught.value.status == 404 and "nope123" in caught.value.message
    assert caught.value.path.endswith("/qollect/dataset/nope123")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda body: body.pop("name"), "name"),
        (lambda body: body["datasources"][0].pop("connectorType"), "datasources[0].connectorType"),
        (lambda body: body["columns"][0].update(columnType=7), "columns[0].columnType"),
    ],
    ids=["name", "connectorType", "columnType"],
)
async def test_an_invalid_body_is_a_bad_request_naming_the_field(backend, mutate, field):
    body = seed_dataset_body(SALES, "bad", "conn")
    mutate(body)
    async with backend.client() as client:
        with pytest.raises(BadRequestError) as caught:
            await client.create_dataset(SALES, body)
    assert caught.value.status == 400
    assert field in caught.value.message
    assert backend.datasets == {}


async def test_a_taken_client_id_is_refused_not_duplicated(local):
    async with local.client() as client:
        await client.create_dataset(SALES, seed_dataset_body(SALES, "same", "conn"))
        with pytest.raises(ApiError, match="already taken"):
            await client.create_dataset(SALES, seed_dataset_body(SALES, "same", "conn", name="Other"))
    assert [d["name"] for d in local.datasets.values()] == ["Orders"]


async def test_route_overrides_reach_the_emulator(local):
    routes = {"dataset.publish": "PUT /qollect/dataset/{datasetId}/publishVersion?runPublicTrigger=true"}
    async with local.client(routes=routes) as client:
        await client.create_dataset(SALES, seed_dataset_body(SALES, "d1", "conn"))
        await client.set_shared(SALES, "d1", True)
    assert local.emulator.request_counts["PUT /qollect/dataset/{datasetId}/publishVersion"] == 1
    assert local.datasets["d1"]["isPublic"] is True
