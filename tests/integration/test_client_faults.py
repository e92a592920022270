"""The client under the emulator's injected faults.

For each fault it either succeeds after retries or raises the typed error
that says what is known; and nothing it retried lands twice. Creates are the
interesting case: a lost answer (lost-500, lost-drop) raises
OutcomeUnknownError, and the caller settles it the way a later layer would
(a GET for a client-chosen id, a list for a view).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest
from emulator_backends import EMEA, SALES, Backend, in_process, make_config, recording_sleep, seed_dataset_body

from qrvey_iac.adapters.qrvey.client import QrveyClient, RetryPolicy
from qrvey_iac.core.errors import NotFoundError, OutcomeUnknownError, TransportError
from qrvey_iac.emulator import parse_faults
from qrvey_iac.emulator.testing import running_server

pytestmark = pytest.mark.anyio

FAULT_KINDS = ["latency=20ms", "429", "500", "503", "drop", "lost-500", "lost-drop"]
LOST = {"lost-500", "lost-drop"}  # committed, then the answer is lost
REFUSED = {"500", "503", "drop"}  # not committed, but the client cannot know
MIXED = "500@0.05, 503@0.05, 429@0.05 retry-after=1, drop@0.05, lost-500@0.05, lost-drop@0.06"


def kind_of(action: str) -> str:
    return action.split("=")[0]


@pytest.fixture(params=["in-process", "http"])
def mode(request) -> str:
    return request.param


def start(mode: str, spec: str, stack: list) -> Backend:
    config = make_config(faults=parse_faults(spec))
    if mode == "in-process":
        return in_process(config)
    server = running_server(config)
    stack.append(server)
    running = server.__enter__()
    return Backend("http", running.emulator, running.base_url)


@pytest.fixture
def servers() -> Iterator[list]:
    stack: list = []
    yield stack
    for server in reversed(stack):
        server.__exit__(None, None, None)


async def settle_create(client: QrveyClient, body: dict) -> dict:
    """Create a dataset with a client-chosen id, settling an unknown outcome."""
    try:
        return await client.create_dataset(SALES, body)
    except OutcomeUnknownError:
        return await settle_unknown_create(client, body)


async def settle_unknown_create(client: QrveyClient, body: dict) -> dict:
    """What a later layer does after OutcomeUnknownError: GET decides, then create again if absent."""
    while True:
        try:
            return await client.get_dataset(SALES, body["datasetId"])
        except NotFoundError:
            pass  # it did not land: creating again cannot duplicate it
        try:
            return await client.create_dataset(SALES, body)
        except OutcomeUnknownError:
            continue


@pytest.mark.parametrize("action", FAULT_KINDS)
async def test_updates_shares_and_deletes_ride_out_each_fault(mode, servers, action):
    spec = "; ".join(f"{target}: {action}@first=2" for target in (
        "PUT /qollect/dataset/d1", "POST /qollect/dataset/d1/publishVersion", "DELETE /qollect/dataset/d1"))
    backend = start(mode, spec, servers)
    async with backend.client() as client:
        body = seed_dataset_body(SALES, "d1", "conn")
        await client.create_dataset(SALES, body)
        assert (await client.update_dataset(SALES, "d1", {**body, "name": "Renamed"}))["name"] == "Renamed"
        assert (await client.set_shared(SALES, "d1", True))["isPublic"] is True
        assert await client.delete_dataset(SALES, "d1") == {"datasetId": "d1"}
    assert backend.datasets == {}
    fired = 3 if kind_of(action) == "latency" else 6  # latency slows a call, nothing to retry
    assert backend.emulator.fault_counts[kind_of(action)] == fired


@pytest.mark.parametrize("action", FAULT_KINDS)
async def test_a_create_hit_by_each_fault_lands_exactly_once(mode, servers, action):
    backend = start(mode, f"POST /qollect/dataset: {action}@first=1", servers)
    kind = kind_of(action)
    async with backend.client() as client:
        body = seed_dataset_body(SALES, "c1", "conn")
        if kind in LOST | REFUSED:
            with pytest.raises(OutcomeUnknownError):
                await client.create_dataset(SALES, body)
            assert list(backend.datasets) == (["c1"] if kind in LOST else [])
            created = await settle_unknown_create(client, body)
        else:
            created = await client.create_dataset(SALES, body)
    assert created["datasetId"] == "c1"
    assert list(backend.datasets) == ["c1"]
    # The client itself repeated only the 429; the settling layer re-sent only what surely did not land.
    expected_posts = {"latency": 1, "429": 2, **dict.fromkeys(REFUSED, 2), **dict.fromkeys(LOST, 1)}
    assert backend.emulator.request_counts["POST /qollect/dataset"] == expected_posts[kind]
    assert backend.emulator.fault_counts[kind] == 1


async def test_a_view_create_with_a_lost_answer_is_found_by_listing():
    backend = in_process(make_config(faults=parse_faults("POST /qollect/dataset/clone/connection/*: lost-500@first=1")))
    marker = {"qrveyIacAddress": "view.orders-emea"}
    async with backend.client() as client:
        await client.create_dataset(SALES, seed_dataset_body(SALES, "src", "conn"))
        shared = await client.set_shared(SALES, "src", True)
        with pytest.raises(OutcomeUnknownError):
            await client.create_view(EMEA, SALES, shared["connectionId"], custom_attributes=marker)
        found = [d for d in await client.list_datasets(EMEA)
                 if d.get("customAttributes") == marker and d["sourceDataset"]["datasetId"] == "src"]
    assert len(found) == 1
    assert [d["datasetType"] for d in backend.datasets.values()] == ["MANAGED", "VIEW"]


async def test_retry_after_from_the_emulator_is_honoured():
    backend = in_process(make_config(faults=parse_faults("GET *: 429@first=2 retry-after=3")))
    delays: list[float] = []
    retry = RetryPolicy(attempts=3, base_delay=0.001, max_delay=5.0)
    async with backend.client(retry=retry, sleep=recording_sleep(delays)) as client:
        await client.create_dataset(SALES, seed_dataset_body(SALES, "d1", "conn"))
        assert (await client.get_dataset(SALES, "d1"))["datasetId"] == "d1"
    assert delays == [3.0, 3.0]


async def test_a_read_timeout_is_retried_then_reported(servers):
    backend = start("http", "GET *: latency=400ms", servers)
    async with backend.client(timeout=0.1, retry=RetryPolicy(attempts=2, base_delay=0.001)) as client:
        with pytest.raises(TransportError, match="ReadTimeout"):
            await client.get_dataset(SALES, "d1")
    assert backend.emulator.request_counts["GET /qollect/dataset/{datasetId}"] == 2


# -- many calls under mixed faults ----------------------------------------------

def mixed_faults_backend() -> Backend:
    targets = ["PUT /qollect/dataset/*", "POST /qollect/dataset/*/publishVersion", "DELETE /qollect/dataset/*",
               "POST /qollect/dataset"]
    return in_process(make_config(seed=5, faults=parse_faults("; ".join(f"{t}: {MIXED}" for t in targets))))


async def test_fifty_datasets_created_updated_shared_deleted_under_thirty_percent_faults():
    backend = mixed_faults_backend()
    ids = [f"bulk{i:02d}" for i in range(50)]
    bodies = {i: seed_dataset_body(SALES, i, "conn", name=f"Dataset {i}") for i in ids}
    retry = RetryPolicy(attempts=12, base_delay=0.001, max_delay=0.002)
    async with backend.client(retry=retry, parallelism=8, rng=random.Random(3)) as client:
        await asyncio.gather(*(settle_create(client, bodies[i]) for i in ids))
        assert sorted(backend.datasets) == ids

        await asyncio.gather(*(client.update_dataset(SALES, i, {**bodies[i], "name": f"New {i}"}) for i in ids))
        assert sorted(d["name"] for d in backend.datasets.values()) == [f"New {i}" for i in ids]

        await asyncio.gather(*(client.set_shared(SALES, i, True) for i in ids))
        assert all(d["isPublic"] for d in backend.datasets.values()) and len(backend.datasets) == 50

        deleted = await asyncio.gather(*(client.delete_dataset(SALES, i) for i in ids))
    assert deleted == [{"datasetId": i} for i in ids]
    assert backend.datasets == {}
    counts = backend.emulator.fault_counts
    assert all(counts[kind] > 0 for kind in ("500", "503", "429", "drop", "lost-500", "lost-drop")), counts
    assert sum(counts.values()) >= 40  # about 30% of 200+ calls were faulted
