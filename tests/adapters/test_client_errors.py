"""Status codes become typed errors; the API key never leaks into logs, errors or reprs."""

from __future__ import annotations

import logging

import httpx
import pytest
from client_fakes import API_KEY, APP, BASE_URL, PREFIX, Script, ok, qrvey_error

from qrvey_iac.adapters.qrvey.client import RetryPolicy
from qrvey_iac.core.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    LoadFailedError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    ServerError,
    TransportError,
)

pytestmark = pytest.mark.anyio

ONCE = RetryPolicy(attempts=1)


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, BadRequestError),
        (401, AuthError),
        (403, AuthError),
        (404, NotFoundError),
        (409, ApiError),
        (422, ApiError),
        (429, RateLimitedError),
        (500, ServerError),
        (501, ServerError),
        (503, ServerError),
    ],
)
async def test_each_status_becomes_its_typed_error(make_client, status, error_type):
    script = Script(qrvey_error(status, "ValidationError: name is required", "second problem"))
    async with make_client(script, retry=ONCE) as client:
        with pytest.raises(ApiError) as caught:
            await client.update_dataset(APP, "ds1", {"x": 1})
    error = caught.value
    assert type(error) is error_type
    assert error.status == status
    assert error.message == "ValidationError: name is required; second problem"
    assert error.method == "PUT"
    assert error.path == PREFIX + "/qollect/dataset/ds1"
    if error_type is AuthError:      # said as what to check (issue 13, point 8)
        assert str(error) == (
            f"Qrvey refused the API key (HTTP {status}) for {BASE_URL} (PUT {PREFIX}/qollect/dataset/ds1: "
            "ValidationError: name is required; second problem): check the environment's API key"
        )
        return
    assert str(error) == (
        f"Qrvey API PUT {PREFIX}/qollect/dataset/ds1 -> HTTP {status}: "
        "ValidationError: name is required; second problem"
    )


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409])
async def test_non_retryable_statuses_are_sent_once(make_client, fake_sleep, status):
    script = Script(qrvey_error(status, "no"))
    async with make_client(script) as client:
        with pytest.raises(ApiError):
            await client.get_dataset(APP, "ds1")
    assert len(script.requests) == 1
    assert fake_sleep.delays == []


async def test_a_non_json_error_body_becomes_a_truncated_message(make_client):
    html = "<html><body>" + "Bad gateway " * 100 + "</body></html>"
    script = Script(httpx.Response(400, text=html))
    async with make_client(script) as client:
        with pytest.raises(BadRequestError) as caught:
            await client.get_dataset(APP, "ds1")
    message = caught.value.message
    assert message.startswith("<html><body>Bad gateway Bad gateway")
    assert message.endswith("...") and len(message) <= 300


async def test_an_empty_error_body_falls_back_to_the_reason_phrase(make_client):
    async with make_client(Script(httpx.Response(404, content=b""))) as client:
        with pytest.raises(NotFoundError, match="Not Found"):
            await client.get_dataset(APP, "ds1")


async def test_a_json_error_without_errors_array_keeps_its_message(make_client):
    script = Script(httpx.Response(401, json={"message": "Unauthorized"}))
    async with make_client(script) as client:
        with pytest.raises(AuthError) as caught:
            await client.get_dataset(APP, "ds1")
    assert caught.value.message == "Unauthorized"


async def test_a_success_with_broken_json_is_an_api_error(make_client):
    script = Script(httpx.Response(200, text="{'datasetId': oops"))
    async with make_client(script) as client:
        with pytest.raises(ApiError, match="not valid JSON") as caught:
            await client.get_dataset(APP, "ds1")
    assert caught.value.status == 200
    assert len(script.requests) == 1


# -- the key never leaks --------------------------------------------------------

def echo_key_steps():
    """Failures whose text echoes the key, as a server or proxy might."""
    return [
        ("qrvey error body", qrvey_error(400, f"bad header x-api-key: {API_KEY}")),
        ("plain text body", httpx.Response(403, text=f"forbidden for key {API_KEY}")),
        ("text cut right after the key", httpx.Response(500, text="x" * 290 + API_KEY + "y" * 50)),
        ("broken 2xx json", httpx.Response(200, text=f"<echo {API_KEY}>")),
        ("transport error", httpx.ReadError(f"peer reset while sending {API_KEY}")),
        ("connect error", httpx.ConnectError(f"refused {API_KEY}")),
    ]


@pytest.mark.parametrize(("label", "step"), echo_key_steps(), ids=[s[0] for s in echo_key_steps()])
async def test_the_key_is_redacted_from_errors_and_logs(make_client, caplog, label, step):
    caplog.set_level(logging.DEBUG, logger="qrvey_iac")
    script = Script(step)
    async with make_client(script, retry=RetryPolicy(attempts=2, base_delay=0.0)) as client:
        with pytest.raises((ApiError, TransportError)) as caught:
            await client.get_dataset(APP, "ds1")
        assert API_KEY not in repr(client)
    assert script.requests[0].headers["x-api-key"] == API_KEY  # the key was really sent
    assert API_KEY not in str(caught.value)
    assert API_KEY not in repr(caught.value.args)
    assert API_KEY not in caplog.text
    assert caplog.records, "the attempts should have been logged"
    assert "***" in str(caught.value) + caplog.text


async def test_outcome_unknown_errors_are_redacted_too(make_client, caplog):
    caplog.set_level(logging.DEBUG, logger="qrvey_iac")
    script = Script(qrvey_error(502, f"upstream saw {API_KEY}"))
    async with make_client(script) as client:
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.create_dataset(APP, {"name": "x"})
    assert API_KEY not in str(caught.value) and API_KEY not in caplog.text
    assert "upstream saw ***" in str(caught.value)


async def test_a_failed_load_message_is_redacted(make_client):
    script = Script(ok({"status": "FAILED", "errorMessage": f"auth {API_KEY} rejected"}))
    async with make_client(script) as client:
        with pytest.raises(LoadFailedError) as caught:
            await client.wait_until_loaded(APP, "d1")
    assert API_KEY not in str(caught.value)


def test_the_client_repr_hides_the_key(make_client):
    client = make_client(Script(ok({})))
    assert API_KEY not in repr(client) and API_KEY not in str(client)
    assert "***" in repr(client)


# -- values read through ${env:X} never leak either ------------------------------

ENV_SECRET = "Zq7partnerSRC91"     # e.g. an unmanaged source's datasetId: it is in the request path


@pytest.mark.parametrize(("label", "step"), [
    ("retried 503 echoing the path", qrvey_error(503, f"dataset/{ENV_SECRET} is busy")),
    ("404 echoing the id", qrvey_error(404, f"dataset {ENV_SECRET} not found")),
    ("plain text 500", httpx.Response(500, text=f"<html>GET /dataset/{ENV_SECRET} failed</html>")),
    ("broken 2xx json", httpx.Response(200, text=f"<echo {ENV_SECRET}>")),
    ("read error", httpx.ReadError(f"reset while reading {ENV_SECRET}")),
], ids=lambda v: v if isinstance(v, str) else "")
async def test_env_values_are_redacted_from_paths_errors_retry_warnings_and_httpx_logs(
    make_client, caplog, label, step
):
    caplog.set_level(logging.DEBUG)            # ours (qrvey_iac.http) and httpx's "HTTP Request: GET <url>"
    known: set[str] = set()
    script = Script(step)
    async with make_client(script, retry=RetryPolicy(attempts=2, base_delay=0.0), secrets=known) as client:
        known.add(ENV_SECRET)                  # learnt after the client was made, as the manifests are read
        with pytest.raises((ApiError, TransportError)) as caught:
            await client.get_dataset(APP, ENV_SECRET)
    assert script.requests[0].url.path.endswith(f"/dataset/{ENV_SECRET}")    # the real id was sent
    assert ENV_SECRET not in str(caught.value) and ENV_SECRET not in repr(caught.value.args)
    assert ENV_SECRET not in caplog.text
    assert "dataset/***" in caplog.text and "***" in str(caught.value)
    if label == "retried 503 echoing the path":
        assert any("retrying in" in r.getMessage() for r in caplog.records)


async def test_an_env_value_too_short_to_cut_from_text_is_left_to_the_value_masks(make_client, caplog):
    caplog.set_level(logging.DEBUG, logger="qrvey_iac")
    async with make_client(Script(ok({})), secrets={"abc"}) as client:
        await client.get_dataset(APP, "xabcx")
    assert "xabcx" in caplog.text       # three letters would cut words out of every line
