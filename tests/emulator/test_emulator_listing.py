"""Get All Datasets: app scoping, CONTAINS search, limit and the ExclusiveStartKey cursor."""

from __future__ import annotations

import pytest
from emulator_helpers import EMEA, SALES, create_dataset, error_message, ok
from hypothesis import given
from hypothesis import strategies as st

from qrvey_iac.emulator.listing import list_page

pytestmark = pytest.mark.anyio


async def list_all(client, body=None, prefix=SALES):
    return ok(await client.post(f"{prefix}/qollect/dataset/all", json=body))


async def test_empty_app_lists_nothing(client):
    assert await list_all(client) == {"Count": 0, "Items": []}


async def test_list_returns_full_objects_of_the_path_app_in_creation_order(client):
    names = ["b", "a", "c"]
    created = [await create_dataset(client, name=name) for name in names]
    await create_dataset(client, prefix=EMEA, name="elsewhere")
    listed = await list_all(client, {})
    assert listed == {"Count": 3, "Items": created}


async def test_list_with_no_body_at_all(client):
    await create_dataset(client)
    response = await client.post(f"{SALES}/qollect/dataset/all")
    assert ok(response)["Count"] == 1


async def test_pagination_walks_every_item_exactly_once(client):
    created = [(await create_dataset(client, name=f"ds-{index}"))["datasetId"] for index in range(7)]
    seen, body, pages = [], {"limit": 3}, 0
    while True:
        page = await list_all(client, body)
        pages += 1
        assert page["Count"] == len(page["Items"]) <= 3
        seen += [item["datasetId"] for item in page["Items"]]
        if "LastEvaluatedKey" not in page:
            break
        assert page["LastEvaluatedKey"] == {"datasetId": seen[-1]}
        body = {"limit": 3, "ExclusiveStartKey": page["LastEvaluatedKey"]}
    assert seen == created
    assert pages == 3


async def test_no_cursor_when_the_page_ends_exactly_at_the_last_item(client):
    for _ in range(3):
        await create_dataset(client)
    page = await list_all(client, {"limit": 3})
    assert page["Count"] == 3 and "LastEvaluatedKey" not in page


async def test_default_limit_is_100(client, emulator):
    template = await create_dataset(client)
    for index in range(104):  # inserted directly: fast, and tests that hand-made worlds list too
        emulator.world.put_dataset(dict(template, datasetId=f"bulk-{index:03d}"))
    page = await list_all(client, {})
    assert page["Count"] == 100
    assert page["LastEvaluatedKey"] == {"datasetId": "bulk-098"}
    rest = await list_all(client, {"ExclusiveStartKey": page["LastEvaluatedKey"]})
    assert [item["datasetId"] for item in rest["Items"]] == ["bulk-099", "bulk-100", "bulk-101", "bulk-102", "bulk-103"]


async def test_cursor_survives_deleting_the_item_it_points_at(client):
    ids = [(await create_dataset(client))["datasetId"] for _ in range(4)]
    page = await list_all(client, {"limit": 2})
    ok(await client.delete(f"{SALES}/qollect/dataset/{ids[1]}"))
    rest = await list_all(client, {"limit": 2, "ExclusiveStartKey": page["LastEvaluatedKey"]})
    assert [item["datasetId"] for item in rest["Items"]] == ids[2:]


async def test_contains_search_is_a_case_insensitive_name_match(client):
    for name in ("Orders EMEA", "orders", "Customers", "Back-ORDERS"):
        await create_dataset(client, name=name)
    search = [{"filterType": "CONTAINS", "column": "search", "value": "orders"}]
    listed = await list_all(client, {"limit": 10, "filters": search, "warning": False})
    assert [item["name"] for item in listed["Items"]] == ["Orders EMEA", "orders", "Back-ORDERS"]


async def test_search_combines_with_pagination(client):
    for name in ("a1", "b1", "a2", "a3"):
        await create_dataset(client, name=name)
    search = [{"filterType": "CONTAINS", "column": "search", "value": "A"}]
    first = await list_all(client, {"limit": 2, "filters": search})
    second = await list_all(client, {"limit": 2, "filters": search, "ExclusiveStartKey": first["LastEvaluatedKey"]})
    assert [item["name"] for item in first["Items"] + second["Items"]] == ["a1", "a2", "a3"]
    assert "LastEvaluatedKey" not in second


async def test_duplicate_names_are_all_listed(client):
    for _ in range(2):
        await create_dataset(client, name="Same")
    assert (await list_all(client))["Count"] == 2


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"limit": 0}, "limit must be an integer from 1 to 1000"),
        ({"limit": 1001}, "limit must be an integer from 1 to 1000"),
        ({"limit": "10"}, "limit must be an integer from 1 to 1000"),
        ({"limit": True}, "limit must be an integer from 1 to 1000"),
        ({"filters": {}}, "filters must be an array"),
        ({"filters": [{"filterType": "EQUALS", "column": "search", "value": "x"}]}, "filters[0].filterType 'EQUALS'"),
        ({"filters": [{"filterType": "CONTAINS", "column": "name", "value": "x"}]}, "filters[0].column 'name'"),
        (
            {"filters": [{"filterType": "CONTAINS", "column": "search", "value": 3}]},
            "filters[0].value must be a string",
        ),
        ({"ExclusiveStartKey": "abc"}, "ExclusiveStartKey must be an object"),
        ({"ExclusiveStartKey": {"datasetId": "never-existed"}}, "ExclusiveStartKey.datasetId never-existed"),
        ([1], "body must be an object"),
    ],
)
async def test_bad_list_bodies_are_400_naming_the_field(client, body, expected):
    response = await client.post(f"{SALES}/qollect/dataset/all", json=body)
    assert error_message(response, 400).startswith(f"ValidationError: {expected}")


@given(total=st.integers(0, 30), limit=st.integers(1, 12), deleted=st.sets(st.integers(0, 29)))
def test_list_page_cursor_visits_every_remaining_item_once_in_order(total, limit, deleted):
    order = {f"id{index}": index + 1 for index in range(total)}
    items = [{"datasetId": key, "name": key} for key in order if int(key[2:]) not in deleted]
    seen, body = [], {"limit": limit}
    for _ in range(total + 1):
        page = list_page(body, items, order)
        assert page["Count"] == len(page["Items"]) <= limit
        seen += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        body = {"limit": limit, "ExclusiveStartKey": page["LastEvaluatedKey"]}
    assert seen == items
