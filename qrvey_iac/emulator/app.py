"""The ASGI app: prefix, auth, routing, faults, the handler, in that order; and, while it
is served, the saving of its world to the data file."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute
from starlette.types import Receive, Scope, Send

from qrvey_iac.emulator.answers import endless_page, garbled_response
from qrvey_iac.emulator.bodies import read_json
from qrvey_iac.emulator.config import EmulatorConfig
from qrvey_iac.emulator.context import Call
from qrvey_iac.emulator.errors import ApiError, error_body, invalid
from qrvey_iac.emulator.faults import FaultRule
from qrvey_iac.emulator.ids import IdMinter
from qrvey_iac.emulator.injector import FaultInjector
from qrvey_iac.emulator.routes import Route, match_route, route_table, split_prefix
from qrvey_iac.emulator.users import existing_app, match_account_route
from qrvey_iac.emulator.world import World, write_atomically

HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_FAULT_ANSWERS = {
    "429": (429, "Too Many Requests (injected fault)"),
    "500": (500, "Internal Server Error (injected fault)"),
    "503": (503, "Service Unavailable (injected fault)"),
    "lost-500": (500, "Internal Server Error (injected fault after the change was committed)"),
}
_log = logging.getLogger("qrvey_iac.emulator")


class Emulator:
    """One emulated Qrvey instance: its world, settings, id minter and fault injector."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        # other answers to the open route questions (ValueError for a bad one); None: the defaults
        self.routes = route_table(self.config.routes) if self.config.routes else None
        self.world = _initial_world(self.config)
        self.ids = IdMinter(self.config.seed)
        self.injector = FaultInjector(self.config.faults, self.config.seed)
        self.fault_counts: Counter[str] = self.injector.counts  # injected faults per kind
        self.request_counts: Counter[str] = Counter()  # routed calls per "METHOD /template"
        self.saves = 0   # times the world was written to a file
        self.saved_revision = self.world.revision   # the world's revision that data_file holds

    def save(self, path: Path | None = None) -> None:
        """Write the world to ``path``, else to config.data_file."""
        target = path or self.config.data_file
        if target is None:
            raise ValueError("Emulator.save: no path given and config.data_file is not set")
        revision = self.world.revision
        self.world.save(target)
        self._saved(Path(target), revision)

    def unsaved(self) -> bool:
        """True when the world changed since it was loaded from or last saved to data_file."""
        return self.config.data_file is not None and self.world.revision != self.saved_revision

    async def keep_saved(self, stop: asyncio.Event) -> None:
        """While served: save to data_file every ``save_interval`` seconds if the world
        changed (with ``autosave``), and once more when ``stop`` is set.

        The text is made on the event loop, between requests, so it is one consistent
        world; the write and its fsync run in a thread."""
        while True:
            try:
                await asyncio.wait_for(stop.wait(), self.config.save_interval if self.config.autosave else None)
            except TimeoutError:
                pass
            stopping = stop.is_set()     # before the save: changes made during it are saved next
            if self.unsaved():
                revision, text = self.world.revision, self.world.file_text()
                try:
                    await asyncio.to_thread(write_atomically, self.config.data_file, text)
                    self._saved(self.config.data_file, revision)
                except OSError as error:       # tried again at the next interval, and at shutdown
                    _log.error("could not save the emulator world to %s: %s", self.config.data_file, error)
            if stopping:
                return

    def _saved(self, path: Path, revision: int) -> None:
        self.saves += 1
        if path == self.config.data_file:
            self.saved_revision = revision

    async def handle(self, request: Request) -> Response:
        """Answer ``latency_ms`` after the request arrived: the emulator's own work (routing,
        the handler, JSON) happens inside that time, not on top of it, so a client sees the
        latency it was promised (at 50 ms: ~52 ms per call alone, 55 ms with 16 in flight,
        when the delay came first). Fault latency rules still stall before the handler acts."""
        arrived = time.perf_counter()
        try:
            response = await self._dispatch(request)
        except ApiError as error:
            response = error_response(error)
        if self.config.latency_ms:
            stalled = getattr(request.state, "fault_stall", 0.0)      # fault latency adds to the base one
            remaining = self.config.latency_ms / 1000 - (time.perf_counter() - arrived - stalled)
            if remaining > 0:
                await asyncio.sleep(remaining)
        return response

    async def _dispatch(self, request: Request) -> Response:
        account = match_account_route(request.method, _raw_path(request))
        if account is not None:
            return await self._account(request, *account)
        target = split_prefix(_raw_path(request))
        _check_api_key(request, self.config.api_key)
        route, params = match_route(request.method, target.segments, self.routes)
        self.request_counts[f"{route.method} {route.template}"] += 1
        body = await read_json(request, self.config)   # read on arrival: a client leaving during a stall stops nothing
        decision = self.injector.decide(request.method, target.path)
        if decision.latency_ms:
            request.state.fault_stall = decision.latency_ms / 1000
            await asyncio.sleep(decision.latency_ms / 1000)
        if decision.rejects:
            return fault_response(decision.outcome)
        if decision.endless:
            return endless_page(self.fault_counts["endless"])
        call = Call(self.world, self.config, self.ids, target.user_id, target.app_id, params, body, decision.load_fails)
        response = self._run(route.handler, call, app_scoped=True)
        if decision.loses:
            return fault_response(decision.outcome)
        if decision.garbles:
            return garbled_response(decision.outcome, response)
        return response

    async def _account(self, request: Request, handler: Callable[[Call], dict], params: dict[str, str],
                       template: str) -> Response:
        """A user or app route (users.py): authenticated and counted like the others; fault
        rules, written for the routes under an app, do not apply to it."""
        _check_api_key(request, self.config.api_key)
        self.request_counts[f"{request.method} {template}"] += 1
        body = await read_json(request, self.config)
        call = Call(self.world, self.config, self.ids, params.get("userId", ""), params.get("appId", ""), params, body)
        return self._run(handler, call)

    def _run(self, handler: Callable[[Call], dict], call: Call, app_scoped: bool = False) -> Response:
        """The handler's answer; a route under an app first needs the app (users.existing_app)."""
        try:
            if app_scoped:
                existing_app(call)
            return JsonAnswer(handler(call))
        except ApiError as error:
            return error_response(error)


class JsonAnswer(JSONResponse):
    """A handler's answer, encoded by orjson: ~12 times faster than the json module for a
    dataset of 30 columns (docs/performance.md, "Issue 11, planning's per-object work and
    JSON"), the same JSON value. What orjson refuses (an integer beyond 64 bits, a lone
    surrogate) is encoded by JSONResponse as before. A NaN, which orjson would write as null
    where JSONResponse refuses it, never gets in (world.refuse_non_json)."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except TypeError:
            return super().render(content)


def create_app(config: EmulatorConfig | None = None) -> Starlette:
    """The emulator as a Starlette app; ``app.state.emulator`` is its Emulator.

    With a data_file, a server that runs the app's lifespan (uvicorn does) saves the world
    while serving and at shutdown (Emulator.keep_saved); in-process, only Emulator.save writes."""
    emulator = Emulator(config)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if emulator.config.data_file is None:
            yield
            return
        stop = asyncio.Event()
        saver = asyncio.create_task(emulator.keep_saved(stop))
        try:
            yield
        finally:
            stop.set()
            await saver

    routes = [StarletteRoute("/{path:path}", emulator.handle, methods=HTTP_METHODS)]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.emulator = emulator
    return app


class DroppedResponse(Response):
    """Starts an answer and stops: the client sees the connection drop before the body."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"1024")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error_body(error.message), status_code=error.status, headers=error.headers)


def fault_response(rule: FaultRule | None) -> Response:
    if rule is None or rule.kind in ("drop", "lost-drop"):
        return DroppedResponse()
    status, message = _FAULT_ANSWERS[rule.kind]
    headers = {"Retry-After": str(rule.retry_after)} if rule.kind == "429" else None
    return error_response(ApiError(status, message, headers))


def _check_api_key(request: Request, api_key: str) -> None:
    sent = request.headers.get("x-api-key")
    if sent is None:
        raise ApiError(401, "Unauthorized: the x-api-key header is missing")
    if not hmac.compare_digest(sent.encode(), api_key.encode()):
        raise ApiError(401, "Unauthorized: the x-api-key header is not valid")


def _raw_path(request: Request) -> str:
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1") if raw else request.url.path


def _initial_world(config: EmulatorConfig) -> World:
    if config.data_file is not None and config.data_file.exists():
        return World.load(config.data_file)
    return World()
