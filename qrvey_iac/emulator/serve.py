"""Running the emulator over real HTTP with uvicorn (``qrvey-iac emulator serve``).

As a server it must not be held by slow or hostile clients (the body limits are the app's,
``bodies.py``): uvicorn's own limits are set (SERVER_OPTIONS), and every connection must send
a complete request head within ``head_timeout`` seconds of opening or of the end of its
previous request, or it is closed (HeadDeadlineProtocol: uvicorn has no such timeout; its
keep-alive timer stops at the first byte of the next request).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from qrvey_iac.emulator.app import Emulator, create_app
from qrvey_iac.emulator.config import EmulatorConfig

_DROP_LOG_MESSAGE = "ASGI callable returned without completing response."
_CONNECTION = "qrvey_iac.emulator.connection"   # the key of a request's connection in its ASGI state
SERVER_OPTIONS: dict[str, Any] = {
    "timeout_keep_alive": 5,                      # an idle kept-alive connection is closed after 5 s
    "h11_max_incomplete_event_size": 16 * 1024,   # a request head over 16 KiB is a 400, then closed
    "limit_concurrency": 1024,                    # connections or requests at once; above, 503
}


class _DroppedConnectionFilter(logging.Filter):
    """Keeps uvicorn quiet about connections the emulator drops on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _DROP_LOG_MESSAGE


def quiet_dropped_connections() -> None:
    """Install the filter once on uvicorn's error logger."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _DroppedConnectionFilter) for existing in logger.filters):
        logger.addFilter(_DroppedConnectionFilter())


def make_server(config: EmulatorConfig, host: str, port: int, **uvicorn_options: object) -> uvicorn.Server:
    """A uvicorn server for a fresh emulator app (its Emulator is ``server.config.app.state.emulator``)."""
    quiet_dropped_connections()
    app = create_app(config)
    app.add_middleware(_RequestBoundaries)
    options = {"log_level": "warning", "timeout_graceful_shutdown": 2, **SERVER_OPTIONS,
               "http": HeadDeadlineProtocol, **uvicorn_options}
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options))


class HeadDeadlineProtocol(asyncio.Protocol):
    """uvicorn's h11 protocol, plus a deadline on request heads: a connection with no request
    in progress (just opened, or its last request answered) that does not complete the next
    request head within the emulator's ``head_timeout`` is closed. The requests' start and end
    reach it through ``_RequestBoundaries``, which finds it in the request's ASGI state."""

    def __init__(self, config: uvicorn.Config, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = _loop or asyncio.get_event_loop()
        self.head_timeout: float = config.app.state.emulator.config.head_timeout
        self.inner = H11Protocol(config=config, server_state=server_state,
                                 app_state={**app_state, _CONNECTION: self}, _loop=_loop)
        self.transport: asyncio.BaseTransport | None = None
        self.active = 0
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.inner.connection_made(transport)   # type: ignore[arg-type]
        self._arm()

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def request_started(self) -> None:
        self.active += 1
        self._disarm()

    def request_finished(self) -> None:
        self.active -= 1
        if self.active == 0:
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self.timer = self.loop.call_later(self.head_timeout, self._expired)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expired(self) -> None:
        self.timer = None
        if self.active == 0 and self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class _RequestBoundaries:
    """Tells a request's HeadDeadlineProtocol when the app starts and finishes with it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = scope.get("state", {}).get(_CONNECTION) if scope["type"] == "http" else None
        if connection is None:
            await self.app(scope, receive, send)
            return
        connection.request_started()
        try:
            await self.app(scope, receive, send)
        finally:
            connection.request_finished()


def serve(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 8787,
          on_exit: Callable[[Emulator], None] | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then call ``on_exit`` with the Emulator served (its
    fault_counts, ...). With config.data_file set, the world is saved while serving (see
    Emulator.keep_saved) and on shutdown; after a SIGKILL the file lacks at most the changes
    of the last save_interval seconds."""
    server = make_server(config, host, port)
    emulator = server.config.app.state.emulator
    try:
        server.run()
    finally:   # a second Ctrl-C skips the app's own shutdown save
        if emulator.unsaved():
            emulator.save()
        if on_exit is not None:
            on_exit(emulator)
