"""The emulator as a hostile or broken server (fault kinds of faults.ANSWER_KINDS), and as a
server that refuses hostile request bodies (issue 12, points 7 and 9)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from emulator_helpers import SALES, dataset_body, error_message, make_client, ok

from qrvey_iac.emulator import EmulatorConfig, FaultRule, FaultSet, create_app, parse_faults

pytestmark = pytest.mark.anyio


def app_with(spec: str = "", **config):
    return create_app(EmulatorConfig(faults=parse_faults(spec), **config))


async def post_dataset(client, **overrides):
    return await client.post(f"{SALES}/qollect/dataset", json=dataset_body(**overrides))


# -- the spec ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "rule"), [
    ("POST /qollect/dataset: body=null", FaultRule("POST", "/qollect/dataset", "body=null")),
    ("GET *: body=empty@first=2", FaultRule("GET", "*", "body=empty", first=2)),
    ("* *: body=html@5%", FaultRule("*", "*", "body=html", probability=0.05)),
    ("* *: body=error@every=3", FaultRule("*", "*", "body=error", every=3)),
    ("POST /qollect/dataset: other-id", FaultRule("POST", "/qollect/dataset", "other-id")),
    ("GET *: trickle=20s", FaultRule("GET", "*", "trickle", pause_ms=20_000)),
    ("GET *: trickle=5ms@0.5", FaultRule("GET", "*", "trickle", pause_ms=5, probability=0.5)),
    ("POST */all: endless", FaultRule("POST", "*/all", "endless")),
])
def test_the_hostile_kinds_parse_and_print_back(spec, rule):
    assert parse_faults(spec) == FaultSet((rule,))
    assert parse_faults(str(parse_faults(spec))) == FaultSet((rule,))


@pytest.mark.parametrize(("spec", "message"), [
    ("GET *: trickle", "unknown fault 'trickle'"),
    ("GET *: trickle=slow", "bad duration 'slow'"),
    ("GET *: body=xml", "unknown fault 'body=xml'"),
    ("GET *: nope", r"trickle=DURATION\)"),
])
def test_bad_hostile_kinds_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_faults(spec)


# -- what the client sees, and what committed ----------------------------------------------

@pytest.mark.parametrize(("kind", "content", "content_type"), [
    ("body=null", b"null", "application/json"),
    ("body=empty", b"", "application/json"),
    ("body=html", b"<html>", "text/html"),
])
async def test_a_garbled_answer_comes_after_the_write_committed(kind, content, content_type):
    app = app_with(f"POST /qollect/dataset: {kind}@first=1")
    async with make_client(app) as client:
        response = await post_dataset(client, datasetId="kept")
        assert response.status_code == 200
        assert response.content.startswith(content) and response.headers["content-type"].startswith(content_type)
        assert ok(await client.get(f"{SALES}/qollect/dataset/kept"))["datasetId"] == "kept"
    assert list(app.state.emulator.world.datasets) == ["kept"]
    assert app.state.emulator.fault_counts == {kind: 1}


async def test_body_error_is_a_200_in_qrveys_error_shape():
    app = app_with("GET *: body=error")
    async with make_client(app) as client:
        response = await client.get(f"{SALES}/qollect/dataset/x")
    assert response.status_code == 200
    assert "an error body with status 200" in error_message(httpx.Response(400, content=response.content), 400)


async def test_other_id_answers_a_create_with_another_id_but_stores_the_sent_one():
    app = app_with("POST /qollect/dataset: other-id@first=1; POST /connections: other-id")
    async with make_client(app) as client:
        answered = ok(await post_dataset(client, datasetId="sent"))
        assert answered["datasetId"] != "sent" and answered["name"] == "Orders"
        assert ok(await client.get(f"{SALES}/qollect/dataset/sent"))["datasetId"] == "sent"
        refused = await post_dataset(client, datasetId="sent")     # an error answer keeps its id-less body
        assert error_message(refused, 400) == "datasetId sent is already taken"
        connection = ok(await client.post(f"{SALES}/connections", json={"name": "c", "connectorType": "X"}))
    assert connection["connectorid"].startswith("other-")
    assert list(app.state.emulator.world.datasets) == ["sent"]


async def test_trickle_sends_the_answer_a_byte_at_a_time():
    app = app_with("GET *: trickle=2ms")
    async with make_client(app) as client:
        await post_dataset(client, datasetId="d1")
        started = time.monotonic()
        answer = ok(await client.get(f"{SALES}/qollect/dataset/d1"))
    assert answer["datasetId"] == "d1"
    assert time.monotonic() - started >= len(json.dumps(answer)) * 0.002 * 0.9


async def test_endless_answers_a_listing_with_new_cursors_forever():
    app = app_with("POST */all: endless")
    async with make_client(app) as client:
        await post_dataset(client, datasetId="d1")           # not a listing: not affected
        keys = []
        for _ in range(5):
            page = ok(await client.post(f"{SALES}/qollect/dataset/all", json={"ExclusiveStartKey": keys[-1:]}))
            assert page["Items"] == [] and page["Count"] == 0
            keys.append(page["LastEvaluatedKey"])
    assert len({json.dumps(key) for key in keys}) == 5
    assert app.state.emulator.fault_counts == {"endless": 5}


# -- hostile request bodies (point 9) ---------------------------------------------------------

async def test_a_body_declared_over_the_limit_is_413_before_a_byte_is_read():
    app = app_with(max_body_bytes=1024)
    read = []

    async def body():
        for _ in range(300):
            read.append(1)
            yield b" " * 1024

    async with make_client(app) as client:
        declared = await client.post(f"{SALES}/qollect/dataset", content=b" " * 2048)
        assert "over the 1024 byte limit" in error_message(declared, 413)
        streamed = await client.post(f"{SALES}/qollect/dataset", content=body())
        assert "Payload Too Large" in error_message(streamed, 413)
    assert len(read) <= 3          # stopped at the limit, not after 300 KiB
    assert app.state.emulator.world.datasets == {}


async def test_a_body_at_the_limit_is_read():
    body = json.dumps(dataset_body(datasetId="d1")).encode()
    app = app_with(max_body_bytes=len(body))
    async with make_client(app) as client:
        assert ok(await client.post(f"{SALES}/qollect/dataset", content=body))["datasetId"] == "d1"


@pytest.mark.parametrize("text", ["[" * 100_000, "[" * 65 + "]" * 65, '{"a":' * 65 + "1" + "}" * 65,
                                  "[" * 200_000 + "]" * 200_000])
async def test_a_body_nested_too_deep_is_400_without_a_recursion_error(text):
    app = app_with()
    async with make_client(app) as client:       # an exception in the app would reach this test
        response = await client.post(f"{SALES}/qollect/dataset", content=text.encode())
    assert error_message(response, 400) == "ValidationError: body is nested deeper than 64 levels"


async def test_brackets_inside_strings_do_not_count_as_nesting():
    app = app_with()
    name = '[{"' * 100 + '\\"[['
    async with make_client(app) as client:
        created = ok(await post_dataset(client, datasetId="d1", name=name))
        deep_enough = {"datasetId": "d2", **dataset_body(), "customAttributes": {"a": [[[[[[1]]]]]]}}
        ok(await client.post(f"{SALES}/qollect/dataset", json=deep_enough))
    assert created["name"] == name


async def test_a_body_slower_than_the_body_timeout_is_408():
    app = app_with(body_timeout=0.2)

    async def slow():
        yield b"{"
        await asyncio.sleep(1.0)
        yield b"}"

    started = time.monotonic()
    async with make_client(app) as client:
        response = await client.post(f"{SALES}/qollect/dataset", content=slow())
    assert "did not arrive within 0.2 s" in error_message(response, 408)
    assert time.monotonic() - started < 0.9
