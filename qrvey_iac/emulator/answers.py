"""The answers of a hostile or broken server (faults.ANSWER_KINDS): the handler has run, then
what it answered is replaced, altered or sent slowly."""

from __future__ import annotations

import asyncio
import json

from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from qrvey_iac.emulator.errors import error_body
from qrvey_iac.emulator.faults import FaultRule

HTML_PAGE = (b"<html><head><title>502 Bad Gateway</title></head>"
             b"<body><h1>Service temporarily unavailable</h1></body></html>")


def garbled_response(rule: FaultRule, response: Response) -> Response:
    """The answer ``rule`` makes of the handler's ``response``."""
    if rule.kind == "body=null":
        return Response(b"null", 200, media_type="application/json")
    if rule.kind == "body=empty":
        return Response(b"", 200, media_type="application/json")
    if rule.kind == "body=html":
        return Response(HTML_PAGE, 200, media_type="text/html")
    if rule.kind == "body=error":
        return JSONResponse(error_body("Internal server error (injected fault: an error body with status 200)"))
    if rule.kind == "other-id":
        return _with_another_id(response)
    if rule.kind == "trickle":
        return TrickledResponse(response, rule.pause_ms / 1000)
    raise ValueError(f"fault kind {rule.kind!r} does not alter an answer")


def endless_page(number: int) -> Response:
    """A page of a listing that never ends: no items, and a cursor never seen before."""
    return JSONResponse({"Count": 0, "Items": [], "LastEvaluatedKey": {"datasetId": f"endless-{number}"}})


def _with_another_id(response: Response) -> Response:
    """The same answer naming another object: ``datasetId`` (and a connection's ``connectorid``)
    changed. An answer without one is left as it is."""
    try:
        payload = json.loads(response.body)
    except ValueError:
        return response
    if not isinstance(payload, dict):
        return response
    for key in ("datasetId", "connectorid"):
        if isinstance(payload.get(key), str):
            payload[key] = f"other-{payload[key]}"
    return JSONResponse(payload, status_code=response.status_code)


class TrickledResponse(Response):
    """The handler's answer, its body sent one byte at a time, ``pause`` seconds apart; it
    stops when the client goes away."""

    def __init__(self, inner: Response, pause: float) -> None:
        super().__init__(status_code=inner.status_code)
        self.inner = inner
        self.pause = pause

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.inner.status_code,
                    "headers": self.inner.raw_headers})
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            body = self.inner.body
            for index in range(len(body)):
                await asyncio.sleep(self.pause)
                if gone.done():
                    return
                more = index < len(body) - 1
                await send({"type": "http.response.body", "body": body[index:index + 1], "more_body": more})
            if not body:
                await send({"type": "http.response.body", "body": b""})
        finally:
            gone.cancel()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
