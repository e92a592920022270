"""Fakes for the Qrvey client's unit tests: a scripted MockTransport handler and a fake sleep."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from qrvey_iac.core.keys import AppRef

BASE_URL = "https://abcde.qrveyapp.com"
API_KEY = "k3y-SECRET-5f2a9c"
APP = AppRef(user_id="VkRfd5iis", app_id="9b21hQU3D")
PREFIX = "/devapi/v4/user/VkRfd5iis/app/9b21hQU3D"


class FakeSleep:
    """Records each requested delay instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


class Script:
    """A MockTransport handler that plays steps in order; the last step repeats.

    A step is an httpx.Response, an exception to raise, or a function of the request.
    """

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            return step(request)
        return step

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


def ok(payload: Any = None, status: int = 200, headers: dict | None = None) -> httpx.Response:
    return httpx.Response(status, json=payload if payload is not None else {}, headers=headers)


def qrvey_error(status: int, *messages: str, headers: dict | None = None) -> httpx.Response:
    body = {"status": "error", "date": 1713373451,
            "errors": [{"message": m, "messageDetails": True, "stack": "Error: at /var/task"} for m in messages]}
    return httpx.Response(status, json=body, headers=headers)
