"""Auth, routing, the error body and the in-process transport."""

from __future__ import annotations

import httpx
import pytest
from emulator_helpers import SALES, create_dataset, dataset_body, error_message, make_client, ok

pytestmark = pytest.mark.anyio


async def test_missing_api_key_is_401_in_qrvey_error_shape(app):
    async with make_client(app, api_key=None) as client:
        response = await client.post(f"{SALES}/qollect/dataset/all")
    assert "x-api-key" in error_message(response, 401)


async def test_wrong_api_key_is_401_and_does_not_echo_the_key(app):
    async with make_client(app, api_key="not-the-key") as client:
        response = await client.get(f"{SALES}/qollect/dataset/abc")
    message = error_message(response, 401)
    assert "not-the-key" not in response.text
    assert "not valid" in message


async def test_wrong_api_key_changes_nothing(app, emulator):
    async with make_client(app, api_key="wrong") as client:
        response = await client.post(f"{SALES}/qollect/dataset", json=dataset_body())
    error_message(response, 401)
    assert emulator.world.datasets == {}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/devapi/v4/user/u"),
        ("POST", "/devapi/v3/user/u/app/a/qollect/dataset"),
        ("POST", f"{SALES}/qollect/nothing"),
        ("GET", f"{SALES}/qollect/dataset/abc/extra/segments"),
    ],
)
async def test_unknown_routes_are_404_in_qrvey_error_shape(client, method, path):
    assert "not found" in error_message(await client.request(method, path), 404)


async def test_known_path_with_wrong_method_is_405(client):
    assert "PATCH" in error_message(await client.patch(f"{SALES}/qollect/dataset/abc"), 405)


async def test_api_v4_is_an_alias_of_devapi_v4(client):
    created = await create_dataset(client)
    alias = SALES.replace("/devapi/", "/api/")
    assert ok(await client.get(f"{alias}/qollect/dataset/{created['datasetId']}")) == created


async def test_invalid_json_body_is_400_naming_the_body(client):
    response = await client.post(
        f"{SALES}/qollect/dataset", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert error_message(response, 400) == "ValidationError: body is not valid JSON"


async def test_a_body_that_is_not_an_object_is_400(client):
    response = await client.post(f"{SALES}/qollect/dataset", json=["a", "list"])
    assert error_message(response, 400) == "ValidationError: body must be an object"


async def test_percent_encoded_ids_stay_one_segment(client):
    response = await client.get(f"{SALES}/qollect/dataset/a%2Fb")
    assert error_message(response, 404) == "Dataset a/b not found"


async def test_trailing_slash_is_tolerated(client):
    created = await create_dataset(client)
    assert ok(await client.get(f"{SALES}/qollect/dataset/{created['datasetId']}/"))["datasetId"]


async def test_transport_reports_app_bugs_as_exceptions_not_as_drops(monkeypatch, client):
    from qrvey_iac.emulator import routes

    def broken(call):
        raise KeyError("bug")

    patched = tuple(
        routes.Route(route.method, route.template, broken) if route.handler.__name__ == "get_dataset" else route
        for route in routes.ROUTES
    )
    monkeypatch.setattr(routes, "ROUTES", patched)
    with pytest.raises(KeyError):
        await client.get(f"{SALES}/qollect/dataset/abc")


async def test_transport_turns_an_unfinished_response_into_read_error():
    from qrvey_iac.emulator import EmulatorTransport

    async def half_answer(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"12345", "more_body": True})

    async with httpx.AsyncClient(transport=EmulatorTransport(half_answer), base_url="http://x") as client:
        with pytest.raises(httpx.ReadError):
            await client.get("/")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
async def test_a_body_holding_a_non_json_number_is_400(client, constant):
    body = f'{{"name": "Orders", "customAttributes": {{"ratio": {constant}}}}}'.encode()
    response = await client.post(f"{SALES}/qollect/dataset", content=body, headers={"content-type": "application/json"})
    assert error_message(response, 400) == "ValidationError: body is not valid JSON"


async def test_an_integer_beyond_64_bits_comes_back_exact(client):
    huge = 2**70 + 1                # orjson cannot write it: the answer falls back to the json module
    created = await create_dataset(client, customAttributes={"huge": huge, "small": 7})
    read = await client.get(f"{SALES}/qollect/dataset/{created['datasetId']}")
    assert b"1180591620717411303425" in read.content
    assert ok(read)["customAttributes"] == {"huge": huge, "small": 7}
