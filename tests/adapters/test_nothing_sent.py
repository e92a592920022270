"""Which failed calls prove that nothing reached Qrvey (issue 13, point 8): a call whose every
attempt failed to connect, or that was answered 401/403 before any attempt may have been acted
on, raises an error marked ``nothing_sent``; a call with an earlier attempt that may have been
acted on never is. A 401 or 403 says which key to check, never the key."""

from __future__ import annotations

import socket

import httpx
import pytest
from client_fakes import API_KEY, APP, BASE_URL, Script, ok, qrvey_error

from qrvey_iac.adapters.qrvey.client import RetryPolicy
from qrvey_iac.core.errors import AuthError, OutcomeUnknownError, ServerError, TransportError

pytestmark = pytest.mark.anyio

DNS_FAILURE = httpx.ConnectError("[Errno -2] Name or service not known")
DNS_FAILURE.__cause__ = socket.gaierror(-2, "Name or service not known")


@pytest.mark.parametrize("failure", [
    pytest.param(httpx.ConnectError("connection refused"), id="refused"),
    pytest.param(DNS_FAILURE, id="dns"),
    pytest.param(httpx.ConnectTimeout("connect timed out"), id="connect-timeout"),
])
async def test_a_create_that_never_connected_is_marked_nothing_sent(make_client, failure):
    script = Script(failure)
    async with make_client(script, retry=RetryPolicy(attempts=3, base_delay=0.0)) as client:
        with pytest.raises(TransportError) as caught:
            await client.create_dataset(APP, {"datasetId": "d1"})
    assert len(script.requests) == 3
    assert caught.value.nothing_sent


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_key_is_marked_nothing_sent_and_names_where_the_key_comes_from(make_client, status):
    script = Script(qrvey_error(status, f"Unauthorized {API_KEY}"))
    async with make_client(script, key_name="QRVEY_API_KEY") as client:
        with pytest.raises(AuthError) as caught:
            await client.create_dataset(APP, {"datasetId": "d1"})
    assert len(script.requests) == 1
    assert caught.value.nothing_sent
    said = str(caught.value)
    assert said.startswith(f"Qrvey refused the API key (HTTP {status}) for {BASE_URL} (POST ")
    assert said.endswith("check the environment variable QRVEY_API_KEY")
    assert API_KEY not in said


@pytest.mark.parametrize("earlier", [
    pytest.param(httpx.ReadTimeout("read timed out"), id="read-timeout"),
    pytest.param(qrvey_error(503, "unavailable"), id="503"),
])
@pytest.mark.parametrize("last", [
    pytest.param(httpx.ConnectError("connection refused"), id="then-refused"),
    pytest.param(qrvey_error(401, "Unauthorized"), id="then-401"),
])
async def test_a_call_an_earlier_attempt_may_have_reached_is_never_marked(make_client, earlier, last):
    script = Script(earlier, last)
    async with make_client(script, retry=RetryPolicy(attempts=3, base_delay=0.0)) as client:
        with pytest.raises((TransportError, AuthError)) as caught:
            await client.update_dataset(APP, "d1", {"name": "n"})
    assert not caught.value.nothing_sent


@pytest.mark.parametrize("failure, error", [
    (httpx.ReadError("connection reset"), OutcomeUnknownError),
    (qrvey_error(500, "boom"), OutcomeUnknownError),
    (qrvey_error(400, "bad"), Exception),
])
async def test_a_create_that_was_sent_is_never_marked(make_client, failure, error):
    async with make_client(Script(failure)) as client:
        with pytest.raises(error) as caught:
            await client.create_dataset(APP, {"datasetId": "d1"})
    assert not caught.value.nothing_sent


async def test_a_read_that_outlived_its_retries_on_5xx_is_not_marked(make_client):
    async with make_client(Script(qrvey_error(503, "x")), retry=RetryPolicy(attempts=2, base_delay=0.0)) as client:
        with pytest.raises(ServerError) as caught:
            await client.get_dataset(APP, "d1")
    assert not caught.value.nothing_sent


async def test_a_call_that_connected_in_the_end_answers(make_client):
    script = Script(httpx.ConnectError("refused"), ok({"datasetId": "d1"}))
    async with make_client(script) as client:
        assert await client.create_dataset(APP, {"datasetId": "d1"}) == {"datasetId": "d1"}
