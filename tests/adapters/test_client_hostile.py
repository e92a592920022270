"""Hostile or broken servers (issue 12, point 7): answers the client cannot use are errors that
name the call, every call has an overall deadline, an answer a size cap, a listing an end."""

from __future__ import annotations

import asyncio
import gzip
import json
import time

import httpx
import pytest
from client_fakes import API_KEY, APP, PREFIX, Script, ok

from qrvey_iac.adapters.qrvey.client import RetryPolicy
from qrvey_iac.core.errors import OutcomeUnknownError, TransportError, UnusableAnswerError

pytestmark = pytest.mark.anyio

ONCE = RetryPolicy(attempts=1)
GET_PATH = f"GET {PREFIX}/qollect/dataset/d1"
CREATE_PATH = f"POST {PREFIX}/qollect/dataset"


def answer(content: bytes | str, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, content=content.encode() if isinstance(content, str) else content,
                          headers=headers)


# -- 2xx answers that are not usable ---------------------------------------------------------

@pytest.mark.parametrize(("content", "what"), [
    ("null", "expected a JSON object, the answer is null"),
    ("", "expected a JSON object, the answer is empty"),
    ("  \n", "expected a JSON object, the answer is empty"),
    ("[]", "expected a JSON object, the answer is an array"),
    ('"ok"', "expected a JSON object, the answer is a string"),
    ("<html><body>Service temporarily unavailable</body></html>", "the answer is not valid JSON: '<html>"),
    ("[" * 100_000, "the answer is not valid JSON"),
], ids=["null", "empty", "blank", "array", "string", "html", "nested"])
async def test_a_2xx_answer_that_is_not_an_object_is_an_error_naming_the_call(make_client, content, what):
    async with make_client(Script(answer(content)), retry=ONCE) as client:
        with pytest.raises(UnusableAnswerError) as caught:
            await client.get_dataset(APP, "d1")
    assert str(caught.value).startswith(f"Qrvey API {GET_PATH} -> HTTP 200: {what}")


async def test_a_200_with_a_null_body_never_becomes_an_empty_object(make_client):
    """Before: ``null`` was read as {} and a plan was built on an empty dataset."""
    async with make_client(Script(answer("null"))) as client:
        for call in (client.get_dataset(APP, "d1"), client.update_dataset(APP, "d1", {"name": "x"}),
                     client.delete_dataset(APP, "d1"), client.set_shared(APP, "d1", True)):
            with pytest.raises(UnusableAnswerError, match="the answer is null"):
                await call


async def test_a_200_in_qrveys_error_shape_is_an_error_with_its_messages(make_client):
    body = {"status": "error", "date": 1, "errors": [{"message": "Internal failure"}, {"message": "again"}]}
    async with make_client(Script(ok(body))) as client:
        with pytest.raises(UnusableAnswerError) as caught:
            await client.get_dataset(APP, "d1")
        with pytest.raises(UnusableAnswerError, match="error body despite the success status"):
            await client.call("dataset.get", APP, params={"datasetId": "d1"})
    assert str(caught.value) == (f"Qrvey API {GET_PATH} -> HTTP 200: the answer is an error body despite "
                                 "the success status: Internal failure; again")


async def test_a_dataset_whose_status_is_upper_case_is_not_error_shaped(make_client):
    async with make_client(Script(ok({"datasetId": "d1", "status": "FAILED", "errors": []}))) as client:
        assert (await client.get_dataset(APP, "d1"))["status"] == "FAILED"


async def test_a_create_answered_with_another_id_is_an_error_naming_both(make_client):
    """Before: the answer's id was recorded as the dataset's, blindly."""
    script = Script(ok({"datasetId": "someone-else", "name": "Orders"}))
    async with make_client(script) as client:
        with pytest.raises(UnusableAnswerError) as caught:
            await client.create_dataset(APP, {"datasetId": "chosen-id", "name": "Orders"})
    assert str(caught.value) == (
        f"Qrvey API {CREATE_PATH} -> HTTP 200: the answer names datasetId 'someone-else', not 'chosen-id', "
        "the one sent; nothing was recorded from it")
    assert len(script.requests) == 1     # never repeated


async def test_an_id_answered_back_is_redacted_in_the_error(make_client):
    async with make_client(Script(ok({"datasetId": f"echo-{API_KEY}"}))) as client:
        with pytest.raises(UnusableAnswerError) as caught:
            await client.create_dataset(APP, {"datasetId": "chosen-id"})
    assert API_KEY not in str(caught.value) and "'echo-***'" in str(caught.value)


@pytest.mark.parametrize("reply", [{}, {"datasetId": ""}, {"datasetId": 7}], ids=["absent", "blank", "number"])
async def test_a_create_answer_without_an_id_is_an_error(make_client, reply):
    async with make_client(Script(ok(reply))) as client:
        with pytest.raises(UnusableAnswerError, match="the answer names no datasetId"):
            await client.create_dataset(APP, {"datasetId": "chosen-id"})
        with pytest.raises(UnusableAnswerError, match=r"POST .*/clone/connection/c1 -> HTTP 200: "
                                                      r"the answer names no datasetId"):
            await client.create_view(APP, APP, "c1", name="v")


async def test_a_create_answered_with_its_own_id_is_returned(make_client):
    async with make_client(Script(ok({"datasetId": "chosen-id", "name": "Orders"}))) as client:
        assert (await client.create_dataset(APP, {"datasetId": "chosen-id"}))["name"] == "Orders"
    async with make_client(Script(ok({"datasetId": "minted"}))) as client:
        assert (await client.create_view(APP, APP, "c1"))["datasetId"] == "minted"


async def test_a_read_answered_about_another_dataset_is_an_error(make_client):
    async with make_client(Script(ok({"datasetId": "d2"}))) as client:
        with pytest.raises(UnusableAnswerError, match="names datasetId 'd2', not 'd1', the one asked for"):
            await client.get_dataset(APP, "d1")


# -- the deadline per call --------------------------------------------------------------------

class Trickle(httpx.AsyncByteStream):
    """A body sent one byte at a time, ``pause`` apart: each byte well within a read timeout."""

    def __init__(self, body: bytes, pause: float) -> None:
        self.body = body
        self.pause = pause
        self.sent = 0

    async def __aiter__(self):
        for index in range(len(self.body)):
            await asyncio.sleep(self.pause)
            self.sent += 1
            yield self.body[index:index + 1]


def trickling(pause: float = 0.02) -> tuple[Script, list[Trickle]]:
    streams: list[Trickle] = []

    def reply(_request: httpx.Request) -> httpx.Response:
        stream = Trickle(json.dumps({"datasetId": "d1", "pad": "x" * 2000}).encode(), pause)
        streams.append(stream)
        return httpx.Response(200, stream=stream)

    return Script(reply), streams


async def test_a_trickling_answer_is_stopped_by_the_deadline(make_client):
    script, streams = trickling()
    started = time.monotonic()
    async with make_client(script, retry=ONCE, deadline=0.3) as client:
        with pytest.raises(TransportError) as caught:
            await client.get_dataset(APP, "d1")
    assert time.monotonic() - started < 2.0
    assert str(caught.value) == (f"Qrvey API {GET_PATH}: CallDeadlineError: no complete answer within 0.3 s, "
                                 "the deadline per call (the environment's callDeadline)")
    assert 0 < streams[0].sent < len(streams[0].body)


async def test_a_trickling_read_is_retried_like_a_timeout(make_client, fake_sleep):
    script, streams = trickling()
    async with make_client(script, retry=RetryPolicy(attempts=3), deadline=0.1) as client:
        with pytest.raises(TransportError, match="CallDeadlineError"):
            await client.get_dataset(APP, "d1")
    assert len(script.requests) == 3 and len(fake_sleep.delays) == 2


async def test_a_trickling_create_has_an_unknown_outcome_and_is_not_repeated(make_client):
    script, _ = trickling()
    async with make_client(script, deadline=0.1) as client:
        with pytest.raises(OutcomeUnknownError, match=r"outcome unknown \(CallDeadlineError: no complete answer"):
            await client.create_dataset(APP, {"datasetId": "d1"})
    assert len(script.requests) == 1


async def test_an_answer_within_the_deadline_is_read_whole(make_client):
    script, _ = trickling(pause=0.0)
    async with make_client(script, deadline=5) as client:
        assert len((await client.get_dataset(APP, "d1"))["pad"]) == 2000


# -- the cap on an answer's size ---------------------------------------------------------------

async def test_an_answer_declared_over_the_cap_is_refused_unread(make_client):
    stream = Trickle(b"{}", 0.0)
    script = Script(httpx.Response(200, stream=stream, headers={"Content-Length": "2048"}))
    async with make_client(script, max_answer_bytes=1024) as client:
        with pytest.raises(UnusableAnswerError) as caught:
            await client.get_dataset(APP, "d1")
    assert str(caught.value) == (
        f"Qrvey API {GET_PATH} -> HTTP 200: the answer declares 2048 bytes, over the 1024 byte cap on "
        "an answer (the environment's maxAnswerMiB); nothing of it was used")
    assert stream.sent == 0 and len(script.requests) == 1      # not read, not retried


async def test_a_streamed_answer_over_the_cap_is_stopped_at_the_cap(make_client):
    stream = Trickle(b"{" + b" " * 5000 + b"}", 0.0)
    async with make_client(Script(httpx.Response(200, stream=stream)), max_answer_bytes=1024) as client:
        with pytest.raises(UnusableAnswerError, match="the answer has more than 1024 bytes"):
            await client.get_dataset(APP, "d1")
    assert stream.sent == 1025


async def test_the_cap_counts_the_decoded_body_of_a_compressed_answer(make_client):
    bomb = gzip.compress(b'{"datasetId": "d1", "pad": "' + b"0" * 100_000 + b'"}')
    assert len(bomb) < 1024
    script = Script(httpx.Response(200, content=bomb, headers={"Content-Encoding": "gzip"}))
    async with make_client(script, max_answer_bytes=64 * 1024) as client:
        with pytest.raises(UnusableAnswerError, match="more than 65536 bytes"):
            await client.get_dataset(APP, "d1")
    small = gzip.compress(b'{"datasetId": "d1"}')
    script = Script(httpx.Response(200, content=small, headers={"Content-Encoding": "gzip"}))
    async with make_client(script, max_answer_bytes=64 * 1024) as client:
        assert await client.get_dataset(APP, "d1") == {"datasetId": "d1"}


async def test_an_error_answer_over_the_cap_is_refused_too(make_client):
    script = Script(answer("x" * 2000, status=500))
    async with make_client(script, max_answer_bytes=1024) as client:
        with pytest.raises(UnusableAnswerError, match=r"-> HTTP 500: the answer declares 2000 bytes"):
            await client.get_dataset(APP, "d1")


# -- listings that never end ---------------------------------------------------------------

async def test_a_listing_with_a_new_cursor_on_every_page_stops_with_an_error(make_client):
    def endless(request: httpx.Request) -> httpx.Response:
        page = len(script.requests)
        return ok({"Count": 1, "Items": [{"datasetId": f"d{page}"}], "LastEvaluatedKey": {"n": page}})

    script = Script(endless)
    async with make_client(script, max_list_pages=25) as client:
        with pytest.raises(UnusableAnswerError) as caught:
            await client.list_datasets(APP)
    assert str(caught.value) == (f"Qrvey API POST {PREFIX}/qollect/dataset/all -> HTTP 200: the listing did "
                                 "not end after 25 pages (25 items); stopped rather than read forever")
    assert len(script.requests) == 25


async def test_a_listing_of_exactly_the_page_limit_ends(make_client):
    def pages(request: httpx.Request) -> httpx.Response:
        page = len(script.requests)
        reply = {"Count": 1, "Items": [{"datasetId": f"d{page}"}]}
        if page < 3:
            reply["LastEvaluatedKey"] = {"n": page}
        return ok(reply)

    script = Script(pages)
    async with make_client(script, max_list_pages=3) as client:
        assert len(await client.list_datasets(APP)) == 3
