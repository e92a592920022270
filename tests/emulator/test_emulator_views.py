"""Sharing, dataset views, view edit rules and what a source's unshare or delete does to views."""

from __future__ import annotations

import pytest
from emulator_helpers import (
    EMEA,
    SALES,
    create_dataset,
    create_view,
    error_message,
    ok,
    share,
    shared_dataset_with_view,
)

from qrvey_iac.emulator import EmulatorConfig

pytestmark = pytest.mark.anyio

SALES_OWNER = {"appId": "a-sales", "userId": "u-sales"}


async def get(client, dataset, prefix=None):
    prefix = prefix or f"/devapi/v4/user/{dataset['userId']}/app/{dataset['appId']}"
    return ok(await client.get(f"{prefix}/qollect/dataset/{dataset['datasetId']}"))


async def test_publish_version_shares_and_unshares_with_post_and_put(client):
    created = await create_dataset(client)
    url = f"{SALES}/qollect/dataset/{created['datasetId']}/publishVersion?runPublicTrigger=true"
    assert ok(await client.post(url, json={"isPublic": True}))["isPublic"] is True
    assert ok(await client.put(url, json={"isPublic": False}))["isPublic"] is False
    assert (await get(client, created))["isPublic"] is False


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, "ValidationError: isPublic is a required property"),
        ({"isPublic": "true"}, "ValidationError: isPublic must be a boolean"),
        (None, "ValidationError: body is a required property"),
    ],
)
async def test_publish_version_requires_a_boolean(client, body, expected):
    created = await create_dataset(client)
    response = await client.post(f"{SALES}/qollect/dataset/{created['datasetId']}/publishVersion", json=body)
    assert error_message(response, 400) == expected


async def test_view_is_created_in_the_target_app_from_the_source_connection_id(client):
    source = await create_dataset(client, customAttributes={"team": "sales"})
    await share(client, source["datasetId"])
    view = await create_view(client, source)
    assert (view["appId"], view["userId"], view["datasetType"]) == ("a-emea", "u-emea", "VIEW")
    assert view["datasetId"] != source["datasetId"] and view["connectionId"] != source["connectionId"]
    assert view["name"] == source["name"] and view["status"] == source["status"]
    assert view["customAttributes"] == {} and view["isPublic"] is False
    [datasource] = view["datasources"]
    assert datasource["connectionId"] == source["connectionId"]
    assert datasource["connectorType"] == "DATASET_VIEW"
    assert view["sourceDataset"] == {key: source[key] for key in ("datasetId", "appId", "userId", "connectionId")}
    assert view["sourceStatus"] == "AVAILABLE"
    assert [col["columnName"] for col in view["columns"]] == [col["columnName"] for col in source["columns"]]
    assert all(col["datasetId"] == view["datasetId"] for col in view["columns"])
    assert not {col["columnId"] for col in view["columns"]} & {col["columnId"] for col in source["columns"]}
    assert await get(client, view) == view


async def test_view_accepts_a_name_and_custom_attributes_and_put(client):
    source = await create_dataset(client)
    await share(client, source["datasetId"])
    body = {"appId": "a-sales", "userId": "u-sales", "name": "Orders (EMEA)", "customAttributes": {"tag": 1}}
    view = ok(await client.put(f"{EMEA}/qollect/dataset/clone/connection/{source['connectionId']}", json=body))
    assert (view["name"], view["customAttributes"]) == ("Orders (EMEA)", {"tag": 1})


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        ({"userId": "u-sales"}, 400, "ValidationError: appId is a required property"),
        ({"appId": "a-sales"}, 400, "ValidationError: userId is a required property"),
        ({"appId": "a-other", "userId": "u-sales"}, 400, "appId a-other is not the app"),
        ({"appId": "a-sales", "userId": "u-other"}, 400, "userId u-other is not the owner"),
    ],
)
async def test_clone_body_must_name_the_source_app_and_owner(client, emulator, body, status, expected):
    source = await create_dataset(client)
    await share(client, source["datasetId"])
    response = await client.post(f"{EMEA}/qollect/dataset/clone/connection/{source['connectionId']}", json=body)
    assert expected in error_message(response, status)
    assert len(emulator.world.datasets) == 1


async def test_clone_of_an_unshared_dataset_is_400(client):
    source = await create_dataset(client)
    response = await client.post(
        f"{EMEA}/qollect/dataset/clone/connection/{source['connectionId']}", json=SALES_OWNER
    )
    assert "is not shared" in error_message(response, 400)


async def test_clone_of_an_unknown_connection_id_is_404(client):
    response = await client.post(f"{EMEA}/qollect/dataset/clone/connection/nope", json={"appId": "a", "userId": "u"})
    assert error_message(response, 404) == "No dataset has connectionId nope"


async def test_clone_of_a_view_is_400(client):
    _, view = await shared_dataset_with_view(client)
    response = await client.post(
        f"{SALES}/qollect/dataset/clone/connection/{view['connectionId']}", json={"appId": "a-emea", "userId": "u-emea"}
    )
    assert "is itself a dataset view" in error_message(response, 400)


async def test_a_view_cannot_be_shared_or_loaded(client):
    _, view = await shared_dataset_with_view(client)
    url = f"{EMEA}/qollect/dataset/{view['datasetId']}"
    response = await client.post(f"{url}/publishVersion", json={"isPublic": True})
    assert "a view cannot be shared" in error_message(response, 400)
    assert "cannot be loaded" in error_message(await client.post(f"{url}/load"), 400)


async def test_views_mirror_their_source_status_during_a_load(client):
    source, view = await shared_dataset_with_view(client)
    ok(await client.post(f"{SALES}/qollect/dataset/{source['datasetId']}/load"))
    assert (await get(client, view))["status"] == "LOADING"
    for _ in range(3):
        await get(client, source)
    assert (await get(client, view))["status"] == "LOADED"


# -- view edits ------------------------------------------------------------------------------


async def put_view(client, view, **changes):
    return await client.put(f"{EMEA}/qollect/dataset/{view['datasetId']}", json=dict(view, **changes))


async def test_view_accepts_renames_visibility_formats_and_custom_attributes(client):
    _, view = await shared_dataset_with_view(client)
    columns = [dict(view["columns"][0], columnName="Sum", visible=False, format={"decimals": 2}), view["columns"][1]]
    updated = ok(await put_view(client, view, name="Renamed", columns=columns, customAttributes={"x": 1}))
    assert updated["name"] == "Renamed" and updated["pendingChanges"] is True
    assert (updated["columns"][0]["columnName"], updated["columns"][0]["visible"]) == ("Sum", False)
    assert updated["datasources"] == view["datasources"] and updated["sourceDataset"] == view["sourceDataset"]


def retyped(columns):
    return [dict(columns[0], columnType="STRING"), *columns[1:]]


@pytest.mark.parametrize(
    ("make_change", "expected"),
    [
        (
            lambda view: {"datasources": [dict(view["datasources"][0], connectionId="other")]},
            "datasources cannot be changed",
        ),
        (lambda view: {"dataSync": {"schedule": "daily"}}, "dataSync cannot be set on a dataset view"),
        (lambda view: {"columns": retyped(view["columns"])}, "columns[0].columnType cannot be changed"),
        (lambda view: {"columns": view["columns"][:1]}, "column Region cannot be removed"),
        (
            lambda view: {"columns": [*view["columns"], {"columnName": "New", "columnType": "NUMBER"}]},
            "columns[2] (New) cannot be added",
        ),
    ],
)
async def test_view_refuses_structural_edits(client, emulator, make_change, expected):
    _, view = await shared_dataset_with_view(client)
    response = await put_view(client, view, **make_change(view))
    assert expected in error_message(response, 400)
    assert emulator.world.datasets[view["datasetId"]] == view


# -- unshare and delete of the source ------------------------------------------------------


async def test_unsharing_flags_views_and_resharing_restores_them(client):
    source, view = await shared_dataset_with_view(client)
    await share(client, source["datasetId"], is_public=False)
    assert (await get(client, view))["sourceStatus"] == "UNSHARED"
    response = await client.post(
        f"{EMEA}/qollect/dataset/clone/connection/{source['connectionId']}", json=SALES_OWNER
    )
    assert "is not shared" in error_message(response, 400)
    await share(client, source["datasetId"])
    assert (await get(client, view))["sourceStatus"] == "AVAILABLE"


async def test_source_delete_orphans_views_by_default(client):
    source, view = await shared_dataset_with_view(client)
    ok(await client.delete(f"{SALES}/qollect/dataset/{source['datasetId']}"))
    orphan = await get(client, view)
    assert orphan["sourceStatus"] == "DELETED"
    await share(client, (await create_dataset(client))["datasetId"])  # sharing others leaves it alone
    assert (await get(client, view))["sourceStatus"] == "DELETED"


@pytest.mark.parametrize("config", [EmulatorConfig(on_source_delete="refuse")])
async def test_source_delete_is_refused_while_views_exist(client):
    source, view = await shared_dataset_with_view(client)
    second = await create_view(client, source, name="second")
    response = await client.delete(f"{SALES}/qollect/dataset/{source['datasetId']}")
    message = error_message(response, 400)
    assert view["datasetId"] in message and second["datasetId"] in message
    for dataset_id in (view["datasetId"], second["datasetId"]):
        ok(await client.delete(f"{EMEA}/qollect/dataset/{dataset_id}"))
    ok(await client.delete(f"{SALES}/qollect/dataset/{source['datasetId']}"))


@pytest.mark.parametrize("config", [EmulatorConfig(on_source_delete="cascade")])
async def test_source_delete_cascades_to_views(client, emulator):
    source, view = await shared_dataset_with_view(client)
    other = await create_dataset(client, prefix=EMEA, name="unrelated")
    deleted = ok(await client.delete(f"{SALES}/qollect/dataset/{source['datasetId']}"))
    assert deleted == {"datasetId": source["datasetId"]}
    assert list(emulator.world.datasets) == [other["datasetId"]]
    error_message(await client.get(f"{EMEA}/qollect/dataset/{view['datasetId']}"), 404)


async def test_deleting_a_view_leaves_the_source(client, emulator):
    source, view = await shared_dataset_with_view(client)
    ok(await client.delete(f"{EMEA}/qollect/dataset/{view['datasetId']}"))
    assert list(emulator.world.datasets) == [source["datasetId"]]


async def test_views_are_listed_in_their_own_app(client):
    source, view = await shared_dataset_with_view(client)
    emea = ok(await client.post(f"{EMEA}/qollect/dataset/all", json={}))
    sales = ok(await client.post(f"{SALES}/qollect/dataset/all", json={}))
    assert [item["datasetId"] for item in emea["Items"]] == [view["datasetId"]]
    assert [item["datasetId"] for item in sales["Items"]] == [source["datasetId"]]
