"""list_app / list_datasets never return part of a listing as the whole, whatever the paging
(qrvey-api.md §5, §8 N8): ``Items`` or ``items``, a cursor or none, a ``Count`` / ``Total``
larger than what came back. Each envelope is answered by the emulator itself
(``EmulatorConfig.list_shape``), then a few a scripted server gives."""

from __future__ import annotations

import asyncio

import pytest
from client_fakes import APP, Script, ok

from qrvey_iac.adapters.qrvey.client import QrveyClient
from qrvey_iac.adapters.qrvey.gateway import QrveyGateway
from qrvey_iac.core.errors import UnusableAnswerError
from qrvey_iac.core.keys import AppRef
from qrvey_iac.emulator import EmulatorConfig, EmulatorTransport, create_app

pytestmark = pytest.mark.anyio
BODY = {"datasources": [{"name": "T", "connectionId": "c", "connectorType": "MSSQL_LIVE", "tableName": "t"}],
        "columns": [{"columnName": "Total", "columnType": "NUMBER"}]}


async def listing(shape: str, count: int, page_size: int = 3) -> list[str]:
    """The names list_datasets reads from an emulator answering in ``shape`` holding ``count`` datasets."""
    app = create_app(EmulatorConfig(list_shape=shape))
    async with QrveyClient("http://emulator", "local", transport=EmulatorTransport(app)) as client:
        for index in range(count):
            await client.create_dataset(APP, {**BODY, "datasetId": f"ds-{index}", "name": f"ds-{index}"})
        return [d["name"] for d in await client.list_datasets(APP, page_size=page_size)]


@pytest.mark.parametrize("shape", ["cursor", "items-token"])
async def test_a_listing_with_a_cursor_is_read_to_its_end(shape):
    assert await listing(shape, 7) == [f"ds-{i}" for i in range(7)]


@pytest.mark.parametrize("shape", ["cursor", "items-token", "total", "count", "unpaged"])
async def test_a_listing_that_fits_in_one_page_is_whole_in_every_shape(shape):
    assert await listing(shape, 2) == ["ds-0", "ds-1"]


@pytest.mark.parametrize(("shape", "said"), [("total", "a total of 5"), ("count", "a count of 5")])
async def test_a_number_larger_than_what_came_back_without_a_cursor_is_an_error(shape, said):
    with pytest.raises(UnusableAnswerError, match=f"says {said} but answered 3 items and no cursor"):
        await listing(shape, 5)


async def test_a_full_page_with_no_cursor_and_no_number_is_an_error():
    with pytest.raises(UnusableAnswerError, match=r"full page \(3 items.*neither a cursor nor a count"):
        await listing("unpaged", 5)


async def test_the_gateways_list_app_pages_the_same_way():
    app = create_app(EmulatorConfig(list_shape="items-token"))
    async with QrveyClient("http://emulator", "local", transport=EmulatorTransport(app)) as client:
        for index in range(150):
            await client.create_dataset(APP, {**BODY, "datasetId": f"ds-{index}", "name": f"ds-{index}"})
        assert len(await QrveyGateway(client).list_app(APP)) == 150


async def test_a_count_larger_than_a_page_read_with_a_cursor_is_whole_at_its_end(make_client):
    """A Count of the whole listing on every page, with a cursor: complete once every item is read."""
    pages = [ok({"Count": 3, "Items": [{"datasetId": "a"}, {"datasetId": "b"}], "LastEvaluatedKey": {"id": "b"}}),
             ok({"Count": 3, "Items": [{"datasetId": "c"}]})]
    async with make_client(Script(*pages)) as client:
        assert [d["datasetId"] for d in await client.list_datasets(APP)] == ["a", "b", "c"]


async def test_a_lower_case_cursor_is_sent_back(make_client):
    script = Script(ok({"items": [{"datasetId": "a"}], "lastEvaluatedKey": {"id": "a"}}),
                    ok({"items": [{"datasetId": "b"}]}))
    async with make_client(script) as client:
        assert [d["datasetId"] for d in await client.list_datasets(APP)] == ["a", "b"]
    assert script.bodies()[1] == {"limit": 100, "exclusiveStartKey": {"id": "a"}}


async def test_items_that_are_not_an_array_are_an_error(make_client):
    async with make_client(Script(ok({"items": {"a": 1}}))) as client:
        with pytest.raises(UnusableAnswerError, match="'items' is not an array"):
            await client.list_datasets(APP)


async def test_get_app_reads_the_app_and_a_missing_one_is_none_asked_once(make_client):
    emulator = create_app(EmulatorConfig(unknown_apps="refuse"))
    async with QrveyClient("http://emulator", "local", transport=EmulatorTransport(emulator)) as client:
        gateway = QrveyGateway(client)
        missing = AppRef("u-none", "a-none")
        assert await gateway.get_app(missing) is None
        assert await gateway.get_app(missing) is None
        assert emulator.state.emulator.request_counts["GET /user/{userId}/app/{appId}"] == 1
    open_world = create_app(EmulatorConfig())
    async with QrveyClient("http://emulator", "local", transport=EmulatorTransport(open_world)) as client:
        got = await client.get_app(APP)
    assert (got["userid"], got["appid"]) == (APP.user_id, APP.app_id)


async def test_a_listings_pages_go_out_before_single_reads_waiting_for_a_slot():
    """A listing is a chain of pages: queued behind a refresh's reads, each page would wait for
    all of them (the listing became a tail of round trips at the end). With one slot, each page
    takes the slot freed after the page before it, at most one read between two pages."""
    app = create_app(EmulatorConfig())
    sent: list[str] = []

    class Recording(EmulatorTransport):
        async def handle_async_request(self, request):
            sent.append("page" if request.url.path.endswith("/all") else "read")
            return await super().handle_async_request(request)

    async with QrveyClient("http://emulator", "local", transport=Recording(app), parallelism=1) as client:
        for index in range(7):
            await client.create_dataset(APP, {**BODY, "datasetId": f"ds-{index}", "name": f"ds-{index}"})
        sent.clear()
        reads = [asyncio.ensure_future(client.get_dataset(APP, f"ds-{index % 7}")) for index in range(12)]
        names = await client.list_datasets(APP, page_size=3)       # 3 pages: 3, 3 and 1 item
        await asyncio.gather(*reads)
    assert [d["name"] for d in names] == [f"ds-{i}" for i in range(7)]
    pages = [index for index, what in enumerate(sent) if what == "page"]
    assert len(pages) == 3 and len(sent) == 15
    assert pages[-1] <= 5, sent          # FIFO slots: the pages at 12, 13 and 14


async def test_an_app_check_goes_before_single_reads_waiting_for_a_slot():
    """Planning waits on the check that each app exists: with one slot and 12 reads queued, the
    check goes out with the next freed slot, so a missing app is said before the last read."""
    app = create_app(EmulatorConfig())
    sent: list[str] = []

    class Recording(EmulatorTransport):
        async def handle_async_request(self, request):
            sent.append("read" if "/qollect/" in request.url.path else "app")
            return await super().handle_async_request(request)

    async with QrveyClient("http://emulator", "local", transport=Recording(app), parallelism=1) as client:
        await client.create_dataset(APP, {**BODY, "datasetId": "ds-0", "name": "ds-0"})
        sent.clear()
        reads = [asyncio.ensure_future(client.get_dataset(APP, "ds-0")) for _ in range(12)]
        await asyncio.sleep(0)             # the reads are queued first
        await client.get_app(APP)
        await asyncio.gather(*reads)
    assert sent.index("app") <= 1, sent
