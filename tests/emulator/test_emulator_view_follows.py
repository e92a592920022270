"""A view's columns follow its source (qrvey-api.md §4 "changes to the source show up in every
view", §8 N6): columns added, removed or retyped on the source, through the API or by hand in
the world, show in the view; what the view set itself stays."""

from __future__ import annotations

import pytest
from emulator_helpers import EMEA, SALES, create_dataset, create_view, dataset_body, ok, share, shared_dataset_with_view

pytestmark = pytest.mark.anyio


def by_source_name(dataset: dict) -> dict[str, dict]:
    return {column["origColumnSourceName"]: column for column in dataset["columns"]}


async def update(client, prefix: str, dataset: dict, **changes) -> dict:
    body = {key: dataset[key] for key in ("name", "datasources", "columns")}
    body.update(changes)
    answer = ok(await client.put(f"{prefix}/qollect/dataset/{dataset['datasetId']}", json=body))
    ok(await client.post(f"{prefix}/qollect/dataset/{dataset['datasetId']}/applyChanges"))
    return answer


async def get(client, prefix: str, dataset_id: str) -> dict:
    return ok(await client.get(f"{prefix}/qollect/dataset/{dataset_id}"))


async def test_a_column_added_removed_and_retyped_on_the_source_shows_in_its_view(client):
    source, view = await shared_dataset_with_view(client)
    renamed = [{**c, "columnName": "Order total"} if c["columnName"] == "Total" else c for c in view["columns"]]
    await update(client, EMEA, view, columns=renamed)
    columns = [{**c, "columnType": "STRING"} if c["columnName"] == "Total" else c
               for c in source["columns"] if c["columnName"] != "Region"]
    columns.append({"columnName": "Country", "columnType": "STRING"})
    await update(client, SALES, source, columns=columns)

    followed = by_source_name(await get(client, EMEA, view["datasetId"]))
    assert set(followed) == {"Total", "Country"}                    # Region left, Country came
    assert followed["Total"]["columnType"] == "STRING"             # retyped with its source
    assert followed["Total"]["columnName"] == "Order total"        # the view's own rename stays
    assert followed["Country"]["datasetId"] == view["datasetId"]
    assert followed["Country"]["columnId"] not in {c["columnId"] for c in (await get(client, SALES,
                                                                                    source["datasetId"]))["columns"]}


async def test_a_source_column_removed_by_hand_in_the_world_leaves_the_view(client, emulator):
    source, view = await shared_dataset_with_view(client)
    stored = emulator.world.datasets[source["datasetId"]]
    stored["columns"] = [c for c in stored["columns"] if c["columnName"] != "Total"]
    assert "Total" not in by_source_name(await get(client, EMEA, view["datasetId"]))
    listed = ok(await client.post(f"{EMEA}/qollect/dataset/all", json={}))["Items"]
    assert [set(by_source_name(item)) for item in listed] == [{"Region"}]


async def test_a_view_update_after_its_source_lost_a_column_is_accepted(client, emulator):
    """The view's columns are its source's before its update is checked: sending what Get
    Dataset answered is not refused as removing a column."""
    source, view = await shared_dataset_with_view(client)
    await update(client, SALES, source, columns=[c for c in source["columns"] if c["columnName"] != "Region"])
    current = await get(client, EMEA, view["datasetId"])
    answer = await update(client, EMEA, current, name="Renamed view")
    assert answer["name"] == "Renamed view"
    assert set(by_source_name(answer)) == {"Total"}


async def test_a_view_of_a_deleted_source_keeps_its_columns(client):
    source, view = await shared_dataset_with_view(client)
    ok(await client.delete(f"{SALES}/qollect/dataset/{source['datasetId']}"))
    assert (await get(client, EMEA, view["datasetId"]))["columns"] == view["columns"]


async def test_reading_a_view_that_follows_already_changes_nothing(client, emulator):
    _, view = await shared_dataset_with_view(client)
    before = emulator.world.revision
    await get(client, EMEA, view["datasetId"])
    assert emulator.world.revision == before


async def test_a_dataset_that_is_not_a_view_is_left_alone(client):
    created = ok(await client.post(f"{SALES}/qollect/dataset", json=dataset_body()))
    assert (await get(client, SALES, created["datasetId"]))["columns"] == created["columns"]


async def test_a_listing_page_follows_the_views_it_answers_with_and_no_others(client, emulator):
    """Each page's views follow their sources; the views of later pages are followed when their
    page is read (following the whole app for every page made a long listing quadratic)."""
    source = await create_dataset(client)
    await share(client, source["datasetId"])
    views = [await create_view(client, source, name=f"view {index}") for index in range(5)]
    stored = emulator.world.datasets[source["datasetId"]]
    stored["columns"] = [c for c in stored["columns"] if c["columnName"] != "Total"]

    first = ok(await client.post(f"{EMEA}/qollect/dataset/all", json={"limit": 2}))
    assert [set(by_source_name(item)) for item in first["Items"]] == [{"Region"}, {"Region"}]
    unread = [emulator.world.datasets[view["datasetId"]] for view in views[2:]]
    assert all("Total" in by_source_name(view) for view in unread)      # not on the page: untouched

    rest = ok(await client.post(f"{EMEA}/qollect/dataset/all",
                                json={"limit": 10, "ExclusiveStartKey": first["LastEvaluatedKey"]}))
    assert [set(by_source_name(item)) for item in rest["Items"]] == [{"Region"}] * 3
