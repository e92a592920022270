"""Retries: what is repeated, how long the client waits, when it gives up, and what it never repeats."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest
from client_fakes import APP, Script, ok, qrvey_error

from qrvey_iac.adapters.qrvey.client import RetryPolicy
from qrvey_iac.core.errors import (
    NotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    ServerError,
    TransportError,
)

pytestmark = pytest.mark.anyio


class CeilingRandom(random.Random):
    """Always draws the top of the range, so the backoff ceiling is visible."""

    def uniform(self, a: float, b: float) -> float:
        return b


SENT_FAILURES = [
    pytest.param(qrvey_error(500, "boom"), id="500"),
    pytest.param(qrvey_error(502, "bad gateway"), id="502"),
    pytest.param(qrvey_error(503, "unavailable"), id="503"),
    pytest.param(qrvey_error(504, "timeout"), id="504"),
    pytest.param(httpx.ReadError("connection reset"), id="read-error"),
    pytest.param(httpx.ReadTimeout("read timed out"), id="read-timeout"),
    pytest.param(httpx.WriteError("broken pipe"), id="write-error"),
    pytest.param(httpx.RemoteProtocolError("Server disconnected without sending a response."), id="drop"),
]
NOT_SENT_FAILURES = [
    pytest.param(qrvey_error(429, "slow down"), id="429"),
    pytest.param(httpx.ConnectError("connection refused"), id="connect-error"),
    pytest.param(httpx.ConnectTimeout("connect timed out"), id="connect-timeout"),
]


@pytest.mark.parametrize("failure", SENT_FAILURES + NOT_SENT_FAILURES)
async def test_an_idempotent_call_is_retried_then_succeeds(make_client, fake_sleep, failure):
    script = Script(failure, failure, ok({"datasetId": "d1"}))
    async with make_client(script) as client:
        assert await client.update_dataset(APP, "d1", {"name": "n"}) == {"datasetId": "d1"}
    assert len(script.requests) == 3
    assert len(fake_sleep.delays) == 2


@pytest.mark.parametrize("failure", SENT_FAILURES)
@pytest.mark.parametrize("operation", ["create_dataset", "create_dataset_from_connection", "create_connection"])
async def test_a_create_that_may_have_landed_is_never_repeated(make_client, fake_sleep, failure, operation):
    script = Script(failure, ok({"datasetId": "dup"}))
    async with make_client(script) as client:
        with pytest.raises(OutcomeUnknownError) as caught:
            await getattr(client, operation)(APP, {"name": "Orders"})
    assert len(script.requests) == 1
    assert fake_sleep.delays == []
    assert caught.value.method == "POST"


async def test_a_view_create_that_may_have_landed_is_never_repeated(make_client):
    script = Script(httpx.ReadError("reset"), ok({}))
    async with make_client(script) as client:
        with pytest.raises(OutcomeUnknownError, match="outcome unknown"):
            await client.create_view(APP, APP, "conn1")
    assert len(script.requests) == 1


@pytest.mark.parametrize("failure", NOT_SENT_FAILURES)
async def test_a_create_the_server_surely_refused_is_retried(make_client, failure):
    script = Script(failure, ok({"datasetId": "d1"}))
    async with make_client(script) as client:
        assert await client.create_dataset(APP, {"datasetId": "d1"}) == {"datasetId": "d1"}
    assert len(script.requests) == 2


async def test_explicit_idempotent_flag_overrides_the_route_default(make_client):
    script = Script(qrvey_error(500, "x"), ok({"ok": 1}))
    async with make_client(script) as client:
        assert await client.call("dataset.create", APP, body={}, idempotent=True) == {"ok": 1}
    script = Script(qrvey_error(503, "x"), ok({}))
    async with make_client(script) as client:
        with pytest.raises(OutcomeUnknownError):
            await client.call("dataset.get", APP, params={"datasetId": "d"}, idempotent=False)
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    ("failure", "error_type"),
    [
        (qrvey_error(429, "slow down"), RateLimitedError),
        (qrvey_error(503, "unavailable"), ServerError),
        (httpx.ReadError("reset"), TransportError),
        (httpx.ConnectError("refused"), TransportError),
    ],
)
async def test_gives_up_after_the_attempts_with_the_last_error(make_client, fake_sleep, failure, error_type):
    script = Script(failure)
    async with make_client(script, retry=RetryPolicy(attempts=3, base_delay=0.1)) as client:
        with pytest.raises(error_type) as caught:
            await client.get_dataset(APP, "d1")
    assert type(caught.value) is error_type
    assert len(script.requests) == 3
    assert len(fake_sleep.delays) == 2


async def test_a_bad_url_scheme_is_not_retried(make_client):
    script = Script(httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'ftp://'."))
    async with make_client(script) as client:
        with pytest.raises(TransportError, match="UnsupportedProtocol"):
            await client.get_dataset(APP, "d1")
    assert len(script.requests) == 1


# -- how long it waits -----------------------------------------------------------

async def test_retry_after_in_seconds_is_honoured(make_client, fake_sleep):
    script = Script(qrvey_error(429, "slow", headers={"Retry-After": "7"}), ok({}))
    async with make_client(script) as client:
        await client.get_dataset(APP, "d1")
    assert fake_sleep.delays == [7.0]


async def test_retry_after_as_http_date_is_honoured(make_client, fake_sleep):
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    script = Script(qrvey_error(503, "busy", headers={"Retry-After": when}), ok({}))
    async with make_client(script, retry=RetryPolicy(max_delay=60.0)) as client:
        await client.get_dataset(APP, "d1")
    [delay] = fake_sleep.delays
    assert 28.5 <= delay <= 30.0


async def test_retry_after_is_capped_at_max_delay(make_client, fake_sleep):
    script = Script(qrvey_error(429, "slow", headers={"Retry-After": "3600"}), ok({}))
    async with make_client(script, retry=RetryPolicy(max_delay=20.0)) as client:
        await client.get_dataset(APP, "d1")
    assert fake_sleep.delays == [20.0]


async def test_backoff_doubles_and_is_capped(make_client, fake_sleep):
    script = Script(qrvey_error(503, "busy"))
    policy = RetryPolicy(attempts=7, base_delay=0.5, max_delay=5.0)
    async with make_client(script, retry=policy, rng=CeilingRandom()) as client:
        with pytest.raises(ServerError):
            await client.get_dataset(APP, "d1")
    assert fake_sleep.delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


async def test_backoff_is_jittered_within_the_ceiling_and_reproducible(make_client, fake_sleep):
    policy = RetryPolicy(attempts=6, base_delay=1.0, max_delay=8.0)
    runs = []
    for _ in range(2):
        fake_sleep.delays.clear()
        async with make_client(Script(httpx.ReadError("x")), retry=policy, rng=random.Random(99)) as client:
            with pytest.raises(TransportError):
                await client.get_dataset(APP, "d1")
        runs.append(list(fake_sleep.delays))
    assert runs[0] == runs[1]
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0]
    assert all(0.0 <= d <= c for d, c in zip(runs[0], ceilings, strict=True))
    assert runs[0] != ceilings


DATASET_PATH = "/devapi/v4/user/VkRfd5iis/app/9b21hQU3D/qollect/dataset/d1"


def http_records(caplog, level):
    return [r.getMessage() for r in caplog.records if r.name == "qrvey_iac.http" and r.levelno == level]


async def test_each_attempt_and_each_retry_log_debug_and_the_call_one_warning(make_client, caplog):
    caplog.set_level(logging.DEBUG, logger="qrvey_iac.http")
    script = Script(qrvey_error(503, "busy"), httpx.ReadError("reset"), ok({}))
    async with make_client(script) as client:
        await client.get_dataset(APP, "d1")
    debug = http_records(caplog, logging.DEBUG)
    attempts = [line for line in debug if " -> " in line]
    retries = [line for line in debug if "retrying in" in line]
    assert len(debug) == 5 and len(attempts) == 3 and len(retries) == 2
    assert f"GET {DATASET_PATH} -> HTTP 503" in attempts[0]
    assert "ReadError: reset" in attempts[1] and "(attempt 2 of 5)" in attempts[1]
    assert "-> HTTP 200" in attempts[2] and " ms " in attempts[2]
    assert "HTTP 503: busy" in retries[0] and "attempt 2 of 5" in retries[0]
    assert http_records(caplog, logging.WARNING) == [
        f"GET {DATASET_PATH}: answered on attempt 3 of 5 after 2 retries: HTTP 503: busy; ReadError: reset"]


async def test_a_call_that_keeps_failing_logs_one_warning_with_its_retries_counted(make_client, caplog):
    caplog.set_level(logging.DEBUG, logger="qrvey_iac.http")
    script = Script(*[qrvey_error(503, "busy")] * 5)
    async with make_client(script) as client:
        with pytest.raises(ServerError):
            await client.get_dataset(APP, "d1")
    assert http_records(caplog, logging.WARNING) == [
        f"GET {DATASET_PATH}: failed (ServerError) on attempt 5 of 5 after 4 retries: HTTP 503: busy (x4)"]


async def test_a_retried_call_that_ends_in_another_error_says_so_once(make_client, caplog):
    caplog.set_level(logging.WARNING, logger="qrvey_iac.http")
    script = Script(qrvey_error(429, "slow down"), qrvey_error(404, "Dataset d1 not found"))
    async with make_client(script) as client:
        with pytest.raises(NotFoundError):
            await client.get_dataset(APP, "d1")
    assert http_records(caplog, logging.WARNING) == [
        f"GET {DATASET_PATH}: failed (NotFoundError) on attempt 2 of 5 after 1 retry: HTTP 429: slow down"]


async def test_a_call_answered_at_once_logs_no_warning(make_client, caplog):
    caplog.set_level(logging.DEBUG, logger="qrvey_iac.http")
    async with make_client(Script(ok({}))) as client:
        await client.get_dataset(APP, "d1")
    assert http_records(caplog, logging.WARNING) == []


# -- deletes after a lost answer ----------------------------------------------------

@pytest.mark.parametrize(
    "first", [qrvey_error(500, "lost"), httpx.ReadError("reset"), httpx.RemoteProtocolError("dropped")],
)
async def test_a_404_after_an_unanswered_delete_means_it_is_gone(make_client, first):
    script = Script(first, qrvey_error(404, "Dataset not found"))
    async with make_client(script) as client:
        assert await client.delete_dataset(APP, "d1") == {"datasetId": "d1"}
    assert [r.method for r in script.requests] == ["DELETE", "DELETE"]


async def test_a_404_after_an_unanswered_connection_delete_means_it_is_gone(make_client):
    script = Script(qrvey_error(503, "lost"), qrvey_error(404, "no such connection"))
    async with make_client(script) as client:
        assert await client.delete_connection(APP, "c1") == {"connectorid": "c1"}


@pytest.mark.parametrize(
    "first", [None, qrvey_error(429, "slow"), httpx.ConnectError("refused")], ids=["first", "after-429", "after-connect"],
)
async def test_a_404_is_still_an_error_when_no_earlier_attempt_could_have_deleted(make_client, first):
    steps = ([first] if first is not None else []) + [qrvey_error(404, "Dataset not found")]
    async with make_client(Script(*steps)) as client:
        with pytest.raises(NotFoundError):
            await client.delete_dataset(APP, "d1")


async def test_a_404_on_get_after_a_503_is_still_an_error(make_client):
    async with make_client(Script(qrvey_error(503, "x"), qrvey_error(404, "gone"))) as client:
        with pytest.raises(NotFoundError):
            await client.get_dataset(APP, "d1")


# -- concurrency and rate --------------------------------------------------------

class InFlight:
    """A handler that holds each request briefly and records the peak concurrency."""

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.current += 1
        self.peak = max(self.peak, self.current)
        await asyncio.sleep(0.005)
        self.current -= 1
        return ok({"datasetId": request.url.path.rsplit("/", 1)[-1]})


@pytest.mark.parametrize("parallelism", [1, 3])
async def test_no_more_than_parallelism_requests_are_in_flight(make_client, parallelism):
    handler = InFlight()
    async with make_client(handler, parallelism=parallelism) as client:
        results = await asyncio.gather(*(client.get_dataset(APP, f"d{i}") for i in range(12)))
    assert [r["datasetId"] for r in results] == [f"d{i}" for i in range(12)]
    assert handler.peak == parallelism


async def test_rate_limit_spaces_requests_across_concurrent_calls(make_client, fake_sleep):
    script = Script(ok({}))
    async with make_client(script, rate_limit=10.0) as client:
        await asyncio.gather(*(client.get_dataset(APP, f"d{i}") for i in range(5)))
    assert len(script.requests) == 5
    assert fake_sleep.delays == pytest.approx([0.1, 0.2, 0.3, 0.4], abs=0.02)


async def test_without_a_rate_limit_nothing_waits(make_client, fake_sleep):
    async with make_client(Script(ok({}))) as client:
        await asyncio.gather(*(client.get_dataset(APP, f"d{i}") for i in range(5)))
    assert fake_sleep.delays == []
