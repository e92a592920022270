"""In-process use: an httpx transport that runs the emulator app without a socket."""

from __future__ import annotations

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ConnectionDroppedError(Exception):
    """Raised inside the transport when the app ended without finishing its response."""


class EmulatorTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncClient(transport=EmulatorTransport(app))`` talks to the emulator in-process.

    A dropped-connection fault reaches the client as ``httpx.ReadError``, as it would over a
    socket; any other app error propagates unchanged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._inner = httpx.ASGITransport(app=_DropDetector(app))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._inner.handle_async_request(request)
        except ConnectionDroppedError as exc:
            raise httpx.ReadError(str(exc), request=request) from None

    async def aclose(self) -> None:
        await self._inner.aclose()


class _DropDetector:
    """Wraps an ASGI app and raises ConnectionDroppedError if it returns mid-response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        completed = False

        async def tracking_send(message: Message) -> None:
            nonlocal completed
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                completed = True
            await send(message)

        await self.app(scope, receive, tracking_send)
        if scope["type"] == "http" and not completed:
            raise ConnectionDroppedError("the emulator dropped the connection before the response was complete")
