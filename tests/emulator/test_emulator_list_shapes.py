"""The list envelopes the emulator can answer (EmulatorConfig.list_shape, listing.py), so a
client can be tested against each shape a real instance might use (qrvey-api.md §5, §8 N8)."""

from __future__ import annotations

import pytest
from emulator_helpers import SALES, connection_body, create_dataset, make_client, ok

from qrvey_iac.emulator import EmulatorConfig, create_app

pytestmark = pytest.mark.anyio


async def listed(shape: str, count: int, body: dict, route: str = "qollect/dataset/all"):
    app = create_app(EmulatorConfig(list_shape=shape))
    async with make_client(app) as client:
        for index in range(count):
            if route.startswith("connections"):
                ok(await client.post(f"{SALES}/connections", json=connection_body(name=f"c{index}")))
            else:
                await create_dataset(client, name=f"ds-{index}")
        return ok(await client.post(f"{SALES}/{route}", json=body))


async def test_items_token_pages_with_a_next_token():
    first = await listed("items-token", 3, {"limit": 2})
    assert set(first) == {"count", "items", "nextToken"} and first["count"] == 2
    app = create_app(EmulatorConfig(list_shape="items-token"))
    async with make_client(app) as client:
        names = [(await create_dataset(client, name=f"ds-{i}"))["name"] for i in range(3)]
        page = ok(await client.post(f"{SALES}/qollect/dataset/all", json={"limit": 2}))
        rest = ok(await client.post(f"{SALES}/qollect/dataset/all", json={"limit": 2, "nextToken": page["nextToken"]}))
    assert [d["name"] for d in page["items"] + rest["items"]] == names
    assert "nextToken" not in rest


@pytest.mark.parametrize(("shape", "keys", "number"), [
    ("total", {"Total", "Items"}, 3), ("count", {"Count", "Items"}, 3), ("unpaged", {"Items"}, None),
    ("cursor", {"Count", "Items", "LastEvaluatedKey"}, 2),
])
async def test_shapes_without_a_cursor_cut_the_listing_at_the_limit(shape, keys, number):
    page = await listed(shape, 3, {"limit": 2})
    assert set(page) == keys
    assert len(page["Items"]) == 2
    assert page.get("Total", page.get("Count")) == number


async def test_connection_listings_take_the_same_shape_and_hide_passwords():
    page = await listed("items-token", 2, {}, route="connections/all")
    assert [c["name"] for c in page["items"]] == ["c0", "c1"]
    assert all("password" not in c for c in page["items"])


def test_an_unknown_shape_is_refused():
    with pytest.raises(ValueError, match="list_shape"):
        EmulatorConfig(list_shape="pages")
