"""Request log for the benchmark's emulator process (bench only, opt-in).

The benchmarks start ``qrvey-iac emulator serve`` as its own process with this
folder on PYTHONPATH and QRVEY_BENCH_PROBE=1. Python imports this module at
start-up; it wraps the emulator app in an ASGI middleware that notes every
request (method, path, status, start and end time) and answers ``GET /__bench/requests`` with the
log since the last such call, then clears it. The emulator itself is unchanged,
and without QRVEY_BENCH_PROBE this module does nothing.
"""

from __future__ import annotations

import json
import os
import time

LOG_PATH = "/__bench/requests"


class RequestLog:
    """ASGI middleware: one [method, path, status, started, ended] entry per request, in arrival order.

    Times are ``time.time()`` (the wall clock the benchmark shares with this process).
    """

    def __init__(self, app) -> None:
        self.app = app
        self.entries: list[list] = []

    def __getattr__(self, name):  # `app.state.emulator` keeps working
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == LOG_PATH:
            await self._answer_log(send)
            return
        entry = [scope["method"], scope["path"], 0, time.time(), 0.0]
        self.entries.append(entry)

        async def noting_send(message) -> None:
            if message["type"] == "http.response.start":
                entry[2] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                entry[4] = time.time()
            await send(message)

        await self.app(scope, receive, noting_send)

    async def _answer_log(self, send) -> None:
        body = json.dumps(self.entries).encode()
        self.entries = []
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _install() -> None:
    from qrvey_iac.emulator import serve

    original = serve.create_app

    def create_logged_app(config):
        return RequestLog(original(config))

    serve.create_app = create_logged_app


if os.environ.get("QRVEY_BENCH_PROBE") == "1":
    _install()
