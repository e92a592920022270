"""Injected faults against the app: what the client sees, and what did or did not commit."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest
from emulator_helpers import SALES, create_dataset, dataset_body, error_message, make_client, ok

from qrvey_iac.emulator import EmulatorConfig, FaultRule, FaultSet, create_app, parse_faults

pytestmark = pytest.mark.anyio


def faulty(spec: str, **config) -> EmulatorConfig:
    return EmulatorConfig(faults=parse_faults(spec), **config)


async def post_dataset(client, **overrides):
    return await client.post(f"{SALES}/qollect/dataset", json=dataset_body(**overrides))


@pytest.mark.parametrize("config", [faulty("POST /qollect/dataset: 429@first=1 retry-after=7")])
async def test_429_has_retry_after_and_does_not_commit(client, emulator):
    response = await post_dataset(client, datasetId="d1")
    assert response.headers["retry-after"] == "7"
    assert "Too Many Requests" in error_message(response, 429)
    assert emulator.world.datasets == {}
    assert ok(await post_dataset(client, datasetId="d1"))["datasetId"] == "d1"  # the retry is a clean create
    assert emulator.fault_counts == {"429": 1}


@pytest.mark.parametrize(("kind", "status"), [("500", 500), ("503", 503)])
async def test_5xx_rejects_do_not_commit(kind, status):
    app = create_app(faulty(f"* *: {kind}@first=1"))
    async with make_client(app) as client:
        error_message(await post_dataset(client), status)
    assert app.state.emulator.world.datasets == {}
    assert app.state.emulator.fault_counts == {kind: 1}


@pytest.mark.parametrize("config", [faulty("* /qollect/dataset: drop@first=1")])
async def test_drop_is_a_transport_error_and_does_not_commit(client, emulator):
    with pytest.raises(httpx.ReadError):
        await post_dataset(client)
    assert emulator.world.datasets == {}
    assert emulator.fault_counts == {"drop": 1}


@pytest.mark.parametrize("config", [faulty("POST /qollect/dataset: lost-500@first=1")])
async def test_lost_500_commits_then_answers_500(client, emulator):
    response = await post_dataset(client, datasetId="kept")
    assert "committed" in error_message(response, 500)
    assert list(emulator.world.datasets) == ["kept"]
    retry = await post_dataset(client, datasetId="kept")
    assert error_message(retry, 400) == "datasetId kept is already taken"


@pytest.mark.parametrize("config", [faulty("DELETE *: lost-drop@first=1")])
async def test_lost_drop_commits_then_drops_the_connection(client, emulator):
    created = await create_dataset(client)
    with pytest.raises(httpx.ReadError):
        await client.delete(f"{SALES}/qollect/dataset/{created['datasetId']}")
    assert emulator.world.datasets == {}
    assert emulator.fault_counts == {"lost-drop": 1}


@pytest.mark.parametrize("config", [faulty("GET /qollect/dataset/*: 503@every=2", load_polls=1)])
async def test_rejected_polls_do_not_advance_a_load(client):
    dataset_id = (await create_dataset(client))["datasetId"]
    ok(await client.post(f"{SALES}/qollect/dataset/{dataset_id}/load"))
    statuses = []
    for _ in range(4):
        response = await client.get(f"{SALES}/qollect/dataset/{dataset_id}")
        statuses.append(response.json()["status"] if response.status_code == 200 else response.status_code)
    assert statuses == ["LOADING", 503, "LOADED", 503]


async def test_python_built_fault_set_first_two_gets_fail():
    faults = FaultSet([FaultRule("GET", "/qollect/dataset/*", "503", first=2)])
    async with make_client(create_app(EmulatorConfig(faults=faults))) as client:
        dataset_id = (await create_dataset(client))["datasetId"]
        codes = [(await client.get(f"{SALES}/qollect/dataset/{dataset_id}")).status_code for _ in range(3)]
    assert codes == [503, 503, 200]


async def test_faults_apply_only_to_matching_method_and_route():
    async with make_client(create_app(faulty("* */publishVersion: 500"))) as client:
        created = await create_dataset(client)
        ok(await client.get(f"{SALES}/qollect/dataset/{created['datasetId']}"))
        url = f"{SALES}/qollect/dataset/{created['datasetId']}/publishVersion"
        for method in ("POST", "PUT"):
            error_message(await client.request(method, url, json={"isPublic": True}), 500)


async def timed_concurrent_gets(app, count: int) -> float:
    async with make_client(app) as client:
        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(count):
                group.start_soon(client.post, f"{SALES}/qollect/dataset/all")
        return time.perf_counter() - started


@pytest.mark.parametrize("config", [EmulatorConfig(latency_ms=100), faulty("POST *: latency=100ms")])
async def test_latency_delays_each_call_and_concurrent_calls_overlap(app):
    elapsed = await timed_concurrent_gets(app, 5)
    assert 0.1 <= elapsed < 0.4


async def run_script(seed: int) -> tuple[list, list]:
    """A fixed request sequence; returns the status codes seen and the ids minted."""
    app = create_app(faulty("* *: 503@0.3, lost-500@0.2; POST /qollect/dataset: drop@0.25", seed=seed))
    codes = []
    async with make_client(app) as client:
        for index in range(40):
            try:
                codes.append((await post_dataset(client, name=f"n{index}")).status_code)
            except httpx.ReadError:
                codes.append("drop")
    return codes, list(app.state.emulator.world.datasets)


async def test_same_seed_same_faults_and_same_ids():
    first, second, other = await run_script(3), await run_script(3), await run_script(4)
    assert first == second
    assert first != other
    codes = first[0]
    assert {200, 503, 500, "drop"} <= set(codes)
    assert codes.count(200) + codes.count(500) == len(first[1])  # lost-500 committed, rejects did not


async def test_ids_do_not_depend_on_the_fault_dice():
    async def ids(spec):
        app = create_app(faulty(spec, seed=5))
        async with make_client(app) as client:
            return [(await create_dataset(client))["datasetId"] for _ in range(3)]

    assert await ids("") == await ids("GET *: 503@0.5")


async def test_auth_failures_and_unknown_routes_draw_no_faults():
    app = create_app(faulty("* *: 503"))
    async with make_client(app, api_key="bad") as client:
        error_message(await client.get(f"{SALES}/qollect/dataset/x"), 401)
    async with make_client(app) as client:
        error_message(await client.get(f"{SALES}/nowhere"), 404)
    assert app.state.emulator.fault_counts == {}
