"""The client against the emulator's hostile-server faults, in-process and over real HTTP:
each answer it cannot use is an error naming the call, never a value (issue 12, point 7)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from emulator_backends import SALES, Backend, in_process, make_config, seed_dataset_body

from qrvey_iac.adapters.qrvey.client import RetryPolicy
from qrvey_iac.core.errors import OutcomeUnknownError, TransportError, UnusableAnswerError
from qrvey_iac.emulator import parse_faults
from qrvey_iac.emulator.testing import running_server

pytestmark = pytest.mark.anyio

ONCE = RetryPolicy(attempts=1)
CREATE = "POST /devapi/v4/user/VkRfd5iis/app/9b21hQU3D/qollect/dataset"


@pytest.fixture(params=["in-process", "http"])
def start(request) -> Iterator:
    servers: list = []

    def starter(spec: str) -> Backend:
        config = make_config(faults=parse_faults(spec))
        if request.param == "in-process":
            return in_process(config)
        server = running_server(config)
        servers.append(server)
        running = server.__enter__()
        return Backend("http", running.emulator, running.base_url)

    yield starter
    for server in servers:
        server.__exit__(None, None, None)


@pytest.mark.parametrize(("kind", "message"), [
    ("body=null", "expected a JSON object, the answer is null"),
    ("body=empty", "expected a JSON object, the answer is empty"),
    ("body=html", "the answer is not valid JSON: '<html>"),
    ("body=error", "the answer is an error body despite the success status: Internal server error"),
    ("other-id", "the answer names datasetId 'other-d1', not 'd1', the one sent; nothing was recorded from it"),
])
async def test_a_create_answered_badly_is_an_error_naming_the_call_and_the_write_landed(start, kind, message):
    backend = start(f"POST /qollect/dataset: {kind}@first=1")
    async with backend.client() as client:
        with pytest.raises(UnusableAnswerError) as caught:
            await client.create_dataset(SALES, seed_dataset_body(SALES, "d1", "c1"))
        assert str(caught.value).startswith(f"Qrvey API {CREATE} -> HTTP 200: {message}")
        assert (await client.get_dataset(SALES, "d1"))["datasetId"] == "d1"    # a GET settles it
    assert list(backend.datasets) == ["d1"]


async def test_a_trickled_answer_is_stopped_by_the_deadline(start):
    backend = start("GET *: trickle=200ms")        # each byte far within the 10 s read timeout
    async with backend.client(retry=ONCE, deadline=1.0) as client:
        await client.create_dataset(SALES, seed_dataset_body(SALES, "d1", "c1"))
        started = time.monotonic()
        with pytest.raises(TransportError, match="CallDeadlineError: no complete answer within 1 s"):
            await client.get_dataset(SALES, "d1")
        assert time.monotonic() - started < 3.0


async def test_a_trickled_create_is_an_unknown_outcome(start):
    backend = start("POST /qollect/dataset: trickle=200ms")
    async with backend.client(deadline=1.0) as client:
        with pytest.raises(OutcomeUnknownError, match="CallDeadlineError"):
            await client.create_dataset(SALES, seed_dataset_body(SALES, "d1", "c1"))
    assert list(backend.datasets) == ["d1"]


async def test_an_endless_listing_stops(start):
    backend = start("POST */all: endless")
    async with backend.client(max_list_pages=30) as client:
        with pytest.raises(UnusableAnswerError, match="the listing did not end after 30 pages"):
            await client.list_datasets(SALES)
    assert backend.emulator.fault_counts["endless"] == 30
