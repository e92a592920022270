"""Writes that land late: the emulator, like a real server, finishes a request whose client
stopped waiting (it timed out, or it was cancelled), in-process and over real HTTP; and
``late=DURATION`` makes a write land after the client's timeout on purpose."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from emulator_backends import SALES, Backend, in_process, make_config, seed_dataset_body

from qrvey_iac.core.errors import OutcomeUnknownError
from qrvey_iac.emulator import parse_faults
from qrvey_iac.emulator.testing import running_server

pytestmark = pytest.mark.anyio

CLIENT_TIMEOUT = 0.3


@pytest.fixture(params=["in-process", "http"])
def mode(request) -> str:
    return request.param


@pytest.fixture
def started() -> Iterator[list]:
    servers: list = []
    yield servers
    for server in reversed(servers):
        server.__exit__(None, None, None)


def start(mode: str, spec: str, servers: list) -> Backend:
    config = make_config(faults=parse_faults(spec))
    if mode == "in-process":
        return in_process(config)
    server = running_server(config)
    servers.append(server)
    running = server.__enter__()
    return Backend("http", running.emulator, running.base_url)


async def wait_for_dataset(backend: Backend, dataset_id: str, within: float) -> float:
    """Seconds until ``dataset_id`` is in the emulator's world; fails after ``within``."""
    began = time.monotonic()
    while dataset_id not in backend.datasets:
        assert time.monotonic() - began < within, f"{dataset_id} never landed"
        await asyncio.sleep(0.02)
    return time.monotonic() - began


@pytest.mark.parametrize("action", ["latency=800ms", "late=800ms"])
async def test_a_create_held_past_the_client_timeout_still_lands(mode, started, action):
    """The client gives up at its timeout (outcome unknown); the server commits the create
    anyway once the stall is over: the write lands late, it is not dropped."""
    backend = start(mode, f"POST /qollect/dataset: {action}@first=1", started)
    async with backend.client(timeout=CLIENT_TIMEOUT) as client:
        began = time.monotonic()
        with pytest.raises(OutcomeUnknownError):
            await client.create_dataset(SALES, seed_dataset_body(SALES, "late-1", "conn"))
        assert time.monotonic() - began < 0.7              # the client's timeout, not the server's stall
        assert "late-1" not in backend.datasets            # not yet: the server still holds it
        await wait_for_dataset(backend, "late-1", within=3.0)
    assert backend.emulator.request_counts["POST /qollect/dataset"] == 1
    assert backend.emulator.fault_counts[action.split("=")[0]] == 1


async def test_a_cancelled_in_process_request_is_finished_by_the_emulator():
    """In-process the app runs in the caller's event loop: cancelling the caller (Ctrl-C, an
    apply level torn down) must not cancel the handler, as a socket's server would not know."""
    backend = in_process(make_config(faults=parse_faults("POST /qollect/dataset: latency=300ms@first=1")))
    async with backend.client() as client:
        call = asyncio.ensure_future(client.create_dataset(SALES, seed_dataset_body(SALES, "gone-1", "conn")))
        await asyncio.sleep(0.1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert "gone-1" not in backend.datasets
        await wait_for_dataset(backend, "gone-1", within=3.0)


async def test_closing_the_in_process_client_waits_for_abandoned_requests():
    """Leaving the client (the end of a command) lets abandoned requests end first, so the
    in-process world saved after it holds their writes."""
    backend = in_process(make_config(faults=parse_faults("POST /qollect/dataset: late=400ms@first=1")))
    async with backend.client(timeout=0.1) as client:
        with pytest.raises(OutcomeUnknownError):
            await client.create_dataset(SALES, seed_dataset_body(SALES, "late-2", "conn"))
    assert "late-2" in backend.datasets


async def test_a_late_fault_on_a_client_that_waits_long_enough_is_just_slow(mode, started):
    backend = start(mode, "POST /qollect/dataset: late=200ms", started)
    async with backend.client(timeout=5.0) as client:
        created = await client.create_dataset(SALES, seed_dataset_body(SALES, "slow-1", "conn"))
    assert created["datasetId"] == "slow-1"
