"""In-process use: an httpx transport that runs the emulator app without a socket."""

from __future__ import annotations

import asyncio

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ConnectionDroppedError(Exception):
    """Raised inside the transport when the app ended without finishing its response."""


class EmulatorTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncClient(transport=EmulatorTransport(app))`` talks to the emulator in-process.

    It behaves as the app served over a socket would: a dropped-connection fault reaches the
    client as ``httpx.ReadError``; the client's read timeout is kept (``httpx.ReadTimeout``
    when no answer came in time); and a request the client stops waiting for, by its timeout
    or by being cancelled, still runs to its end, as a real server finishes a request whose
    client has gone. ``aclose`` waits for those abandoned requests. Any other app error
    propagates unchanged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._running: set[asyncio.Task] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # one ASGITransport per request (it only holds its settings): each request has its own
        # ``gone``, set when the client stops waiting, which the app then reads as the
        # http.disconnect a server sends its app when the socket closes
        gone = asyncio.Event()
        inner = httpx.ASGITransport(app=_DropDetector(self.app, gone))
        answering = asyncio.ensure_future(inner.handle_async_request(request))
        self._running.add(answering)
        answering.add_done_callback(self._ended)
        timeout = (request.extensions.get("timeout") or {}).get("read")
        try:
            return await asyncio.wait_for(asyncio.shield(answering), timeout)
        except TimeoutError:
            gone.set()
            raise httpx.ReadTimeout(f"no answer within the read timeout ({timeout} s)", request=request) from None
        except ConnectionDroppedError as exc:
            raise httpx.ReadError(str(exc), request=request) from None
        except asyncio.CancelledError:
            gone.set()
            raise

    def _ended(self, task: asyncio.Task) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()      # retrieved: an abandoned request's error has nobody to go to

    async def aclose(self) -> None:
        if self._running:
            await asyncio.wait(set(self._running))   # the abandoned requests end, as on a server


class _DropDetector:
    """Wraps an ASGI app: raises ConnectionDroppedError if it returns mid-response, and answers
    its ``receive`` with http.disconnect once ``gone`` is set (the client stopped waiting)."""

    def __init__(self, app: ASGIApp, gone: asyncio.Event) -> None:
        self.app = app
        self.gone = gone

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        completed = False

        async def receive_until_gone() -> Message:
            if self.gone.is_set():
                return {"type": "http.disconnect"}
            message = asyncio.ensure_future(receive())
            gone = asyncio.ensure_future(self.gone.wait())
            await asyncio.wait({message, gone}, return_when=asyncio.FIRST_COMPLETED)
            gone.cancel()
            if message.done():
                return message.result()
            message.cancel()
            return {"type": "http.disconnect"}

        async def tracking_send(message: Message) -> None:
            nonlocal completed
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                completed = True
            await send(message)

        await self.app(scope, receive_until_gone, tracking_send)
        if scope["type"] == "http" and not completed:
            raise ConnectionDroppedError("the emulator dropped the connection before the response was complete")
