"""What the client puts on the wire, and what it makes of well-formed answers."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from client_fakes import API_KEY, APP, PREFIX, Script, ok

from qrvey_iac.adapters.qrvey.client import QrveyClient
from qrvey_iac.core.errors import ApiError, LoadFailedError, LoadTimeoutError, RouteConfigError, UnusableAnswerError
from qrvey_iac.core.keys import AppRef

pytestmark = pytest.mark.anyio

SOURCE = AppRef(user_id="SqIvsYF", app_id="KuvOXfLiZ")

# method name, args, kwargs, expected HTTP method, expected path after PREFIX, expected JSON body
OPERATIONS = [
    ("get_dataset", ("ds1",), {}, "GET", "/qollect/dataset/ds1", None),
    ("create_dataset", ({"name": "Orders", "datasetId": "ds1"},), {}, "POST", "/qollect/dataset",
     {"name": "Orders", "datasetId": "ds1"}),
    ("create_dataset_from_connection", ({"connectionId": "c1", "name": "N"},), {}, "POST",
     "/qollect/dataset/datasource", {"connectionId": "c1", "name": "N"}),
    ("update_dataset", ("ds1", {"name": "New"}), {}, "PUT", "/qollect/dataset/ds1", {"name": "New"}),
    ("apply_changes", ("ds1",), {}, "POST", "/qollect/dataset/ds1/applyChanges", None),
    ("delete_dataset", ("ds1",), {}, "DELETE", "/qollect/dataset/ds1", None),
    ("load_dataset", ("ds1",), {}, "POST", "/qollect/dataset/ds1/load", None),
    ("set_shared", ("ds1", True), {}, "POST",
     "/qollect/dataset/ds1/publishVersion?runPublicTrigger=true", {"isPublic": True}),
    ("set_shared", ("ds1", False), {}, "POST",
     "/qollect/dataset/ds1/publishVersion?runPublicTrigger=true", {"isPublic": False}),
    ("create_view", (SOURCE, "conn9"), {}, "POST", "/qollect/dataset/clone/connection/conn9",
     {"appId": "KuvOXfLiZ", "userId": "SqIvsYF"}),
    ("create_view", (SOURCE, "conn9"), {"name": "EMEA", "custom_attributes": {"managedBy": "qrvey-iac"}},
     "POST", "/qollect/dataset/clone/connection/conn9",
     {"appId": "KuvOXfLiZ", "userId": "SqIvsYF", "name": "EMEA", "customAttributes": {"managedBy": "qrvey-iac"}}),
    ("create_connection", ({"name": "db", "connectorType": "MYSQL_LIVE"},), {}, "POST", "/connections",
     {"name": "db", "connectorType": "MYSQL_LIVE"}),
    ("get_connection", ("c1",), {}, "GET", "/connections/c1", None),
    ("update_connection", ("c1", {"name": "db2"}), {}, "PUT", "/connections/c1", {"name": "db2"}),
    ("delete_connection", ("c1",), {}, "DELETE", "/connections/c1", None),
]


@pytest.mark.parametrize(("name", "args", "kwargs", "method", "path", "body"), OPERATIONS)
async def test_each_operation_sends_its_method_path_and_body(make_client, name, args, kwargs, method, path, body):
    answer = {"datasetId": "ds1", "connectorid": "c1", "echo": name}   # each names the id it is about
    script = Script(ok(answer))
    async with make_client(script) as client:
        result = await getattr(client, name)(APP, *args, **kwargs)
    assert result == answer
    [request] = script.requests
    assert request.method == method
    assert request.url.raw_path.decode() == PREFIX + path
    assert script.bodies() == [body]


@pytest.mark.parametrize(("call", "answer", "complaint"), [
    (("create_connection", {"name": "db", "connectorType": "MYSQL_LIVE"}), {"name": "db"},
     "the answer names no connectorid (it has None)"),
    (("get_connection", "c1"), {"connectorid": "c2"}, "the answer names connectorid 'c2', not 'c1'"),
])
async def test_a_connection_answer_must_name_its_connection(make_client, call, answer, complaint):
    """Qrvey mints a connection's id: a create's answer without one, or a read's naming another,
    is refused rather than recorded (the engine would record whatever id it was handed)."""
    async with make_client(Script(ok(answer))) as client:
        with pytest.raises(UnusableAnswerError, match=re.escape(complaint)):
            await getattr(client, call[0])(APP, *call[1:])


async def test_every_request_carries_the_key_and_json_headers(make_client):
    script = Script(ok({}))
    async with make_client(script) as client:
        await client.get_dataset(APP, "ds1")
        await client.update_dataset(APP, "ds1", {"name": "x"})
    for request in script.requests:
        assert request.headers["x-api-key"] == API_KEY
        assert request.headers["content-type"] == "application/json"


async def test_url_joins_a_base_with_a_path_and_trailing_slash():
    script = Script(ok({}))
    client = QrveyClient("http://emulator:8080/prefix/", "k", transport=httpx.MockTransport(script))
    async with client:
        await client.get_dataset(AppRef("u 1", "a/2"), "d?3")
    assert str(script.requests[0].url) == (
        "http://emulator:8080/prefix/devapi/v4/user/u%201/app/a%2F2/qollect/dataset/d%3F3"
    )


async def test_call_fills_placeholders_and_sends_extra_params_as_query(make_client):
    script = Script(ok([1, 2]))
    async with make_client(script) as client:
        result = await client.call("dataset.publish", APP, params={"datasetId": "d1", "dryRun": "yes"},
                                   body={"isPublic": True})
    assert result == [1, 2]
    url = script.requests[0].url
    assert url.path == PREFIX + "/qollect/dataset/d1/publishVersion"
    assert dict(url.params) == {"runPublicTrigger": "true", "dryRun": "yes"}


async def test_call_rejects_an_unknown_route_and_a_missing_id(make_client):
    script = Script(ok({}))
    async with make_client(script) as client:
        with pytest.raises(ValueError, match="unknown route 'dataset.explode'"):
            await client.call("dataset.explode", APP)
        with pytest.raises(ValueError, match="datasetId"):
            await client.call("dataset.get", APP)
    assert script.requests == []


async def test_an_empty_success_body_is_none_for_call_and_an_error_for_typed_methods(make_client):
    script = Script(httpx.Response(200, content=b""))
    async with make_client(script) as client:
        assert await client.call("dataset.load", APP, params={"datasetId": "d"}) is None
        with pytest.raises(UnusableAnswerError, match=r"POST .*/qollect/dataset/d/load -> HTTP 200: "
                                                      r"expected a JSON object, the answer is empty"):
            await client.load_dataset(APP, "d")


async def test_a_success_that_is_not_an_object_is_an_api_error_for_typed_methods(make_client):
    async with make_client(Script(ok([1, 2]))) as client:
        with pytest.raises(UnusableAnswerError, match="expected a JSON object, the answer is an array"):
            await client.get_dataset(APP, "d")


async def test_route_override_changes_what_is_sent(make_client):
    script = Script(ok({}))
    routes = {"dataset.update": "POST /qollect/dataset/{datasetId}/update"}
    async with make_client(script, routes=routes) as client:
        await client.update_dataset(APP, "d1", {"name": "x"})
    assert script.requests[0].method == "POST"
    assert script.requests[0].url.path == PREFIX + "/qollect/dataset/d1/update"


def test_a_bad_route_override_fails_at_construction(make_client):
    with pytest.raises(RouteConfigError, match="routes.dataset.update"):
        make_client(Script(ok({})), routes={"dataset.update": "PUT /qollect/dataset/{id}"})


# -- lists -------------------------------------------------------------------

def paged_store(items: list[dict]):
    """A handler paging ``items`` DynamoDB-style with limit / ExclusiveStartKey."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        start = body.get("ExclusiveStartKey", {}).get("n", 0)
        page = items[start:start + body["limit"]]
        reply = {"Count": len(page), "Items": page}
        if start + body["limit"] < len(items):
            reply["LastEvaluatedKey"] = {"n": start + body["limit"]}
        return ok(reply)

    return handler


async def test_list_datasets_pages_through_everything_in_order(make_client):
    items = [{"datasetId": f"d{i}"} for i in range(23)]
    script = Script(paged_store(items))
    async with make_client(script) as client:
        listed = await client.list_datasets(APP, page_size=10)
    assert listed == items
    bodies = script.bodies()
    assert bodies == [
        {"limit": 10},
        {"limit": 10, "ExclusiveStartKey": {"n": 10}},
        {"limit": 10, "ExclusiveStartKey": {"n": 20}},
    ]
    assert all(r.url.path == PREFIX + "/qollect/dataset/all" for r in script.requests)


async def test_list_datasets_sends_a_lower_cased_contains_filter(make_client):
    script = Script(ok({"Count": 0, "Items": []}))
    async with make_client(script) as client:
        assert await client.list_datasets(APP, search="Orders EMEA") == []
    assert script.bodies() == [{
        "limit": 100,
        "filters": [{"filterType": "CONTAINS", "column": "search", "value": "orders emea"}],
    }]


async def test_list_connections_pages_too(make_client):
    items = [{"connectorid": f"c{i}"} for i in range(5)]
    script = Script(paged_store(items))
    async with make_client(script) as client:
        assert await client.list_connections(APP, page_size=2) == items
    assert len(script.requests) == 3
    assert script.requests[0].url.path == PREFIX + "/connections/all"


async def test_a_list_whose_cursor_never_moves_is_an_error_not_a_hang(make_client):
    script = Script(ok({"Count": 1, "Items": [{"datasetId": "d"}], "LastEvaluatedKey": {"n": 1}}))
    async with make_client(script) as client:
        with pytest.raises(ApiError, match="pagination repeats LastEvaluatedKey"):
            await client.list_datasets(APP)
    assert len(script.requests) == 2


async def test_a_list_answer_without_items_is_an_api_error(make_client):
    async with make_client(Script(ok({"Count": 0}))) as client:
        with pytest.raises(ApiError, match="no 'Items' array"):
            await client.list_datasets(APP)


# -- waiting for a load ---------------------------------------------------------

@pytest.mark.parametrize("terminal", ["LOADED", "ACTIVE"])
async def test_wait_until_loaded_polls_until_a_loaded_status(make_client, fake_sleep, terminal):
    script = Script(ok({"status": "DRAFT"}), ok({"status": "LOADING"}), ok({"status": terminal, "x": 1}))
    async with make_client(script) as client:
        dataset = await client.wait_until_loaded(APP, "d1", poll_interval=2.5)
    assert dataset == {"status": terminal, "x": 1}
    assert fake_sleep.delays == [2.5, 2.5]
    assert {r.url.path for r in script.requests} == {PREFIX + "/qollect/dataset/d1"}


async def test_wait_until_loaded_raises_on_failed(make_client):
    script = Script(ok({"status": "LOADING"}), ok({"status": "FAILED", "statusMessage": "bad query"}))
    async with make_client(script) as client:
        with pytest.raises(LoadFailedError, match="bad query") as caught:
            await client.wait_until_loaded(APP, "d1")
    assert (caught.value.dataset_id, caught.value.status) == ("d1", "FAILED")


async def test_wait_until_loaded_gives_up_at_the_timeout(make_client, fake_sleep):
    script = Script(ok({"status": "LOADING"}))
    async with make_client(script) as client:
        with pytest.raises(LoadTimeoutError, match="still LOADING") as caught:
            await client.wait_until_loaded(APP, "d1", poll_interval=1.0, timeout=2.5)
    assert fake_sleep.delays == [1.0, 1.0, 0.5]
    assert len(script.requests) == 4
    assert caught.value.status == "LOADING"


async def test_use_route_moves_one_operation_and_keeps_the_environments_overrides(make_client):
    script = Script(ok({"datasetId": "ds1"}), ok({"datasetId": "ds1"}), ok({"datasetId": "ds1"}))
    moved_apply = {"dataset.apply_changes": "POST /qollect/dataset/{datasetId}/apply"}
    async with make_client(script, routes=moved_apply) as client:
        client.use_route("dataset.update", "POST /qollect/dataset/{datasetId}/update")
        await client.update_dataset(APP, "ds1", {"name": "New"})
        await client.apply_changes(APP, "ds1")
        with pytest.raises(RouteConfigError, match="must use"):
            client.use_route("dataset.update", "PUT /qollect/dataset/update")
        await client.update_dataset(APP, "ds1", {"name": "New"})     # the refused one changed nothing
        assert str(client.route("dataset.update")) == "POST /qollect/dataset/{datasetId}/update"
    assert [(r.method, r.url.raw_path.decode()) for r in script.requests] == [
        ("POST", PREFIX + "/qollect/dataset/ds1/update"), ("POST", PREFIX + "/qollect/dataset/ds1/apply"),
        ("POST", PREFIX + "/qollect/dataset/ds1/update")]
