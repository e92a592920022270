"""Ways to reach the emulator from the client (in-process or real HTTP) and seed-shaped bodies."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from qrvey_iac.adapters.qrvey.client import QrveyClient, RetryPolicy
from qrvey_iac.core.keys import AppRef
from qrvey_iac.emulator import EmulatorConfig, EmulatorTransport, create_app

API_KEY = "emulator-key-9f3b"
FAST_RETRY = RetryPolicy(attempts=10, base_delay=0.001, max_delay=0.01)
SALES = AppRef(user_id="VkRfd5iis", app_id="9b21hQU3D")  # owns the source dataset
EMEA = AppRef(user_id="SqIvsYF", app_id="KuvOXfLiZ")  # gets the view


@dataclass
class Backend:
    """One running emulator and how to reach it."""

    mode: str  # "in-process" or "http"
    emulator: Any  # qrvey_iac.emulator.Emulator
    base_url: str
    transport: httpx.AsyncBaseTransport | None = None
    sleeps: list[float] = field(default_factory=list)

    def client(self, api_key: str = API_KEY, **options: Any) -> QrveyClient:
        settings: dict[str, Any] = {"retry": FAST_RETRY, "rng": random.Random(7), "timeout": 10.0}
        settings.update(options)
        return QrveyClient(self.base_url, api_key, transport=self.transport, **settings)

    @property
    def datasets(self) -> dict[str, dict]:
        return self.emulator.world.datasets


def make_config(**overrides) -> EmulatorConfig:
    settings = {"api_key": API_KEY, "autosave": False, "seed": 11}
    settings.update(overrides)
    return EmulatorConfig(**settings)


def in_process(config: EmulatorConfig) -> Backend:
    app = create_app(config)
    return Backend("in-process", app.state.emulator, "http://emulator", EmulatorTransport(app))


def recording_sleep(delays: list[float]) -> Callable[[float], Awaitable[None]]:
    """A sleep that records each delay and only yields (no real waiting)."""

    async def sleep(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(0)

    return sleep


def connection_body(name: str = "Shop DB") -> dict:
    return {"name": name, "connectorType": "MSSQL_LIVE", "host": "db.example", "user": "reader",
            "password": "hunter2"}


def seed_dataset_body(app: AppRef, dataset_id: str, connection_id: str, name: str = "Orders") -> dict:
    """The Create Dataset body of seed 000, with a client-chosen datasetId."""
    return {
        "datasetId": dataset_id,
        "name": name,
        "datasources": [{
            "name": "Test",
            "connectionId": connection_id,
            "datasourceId": "f54dd925-2599-432c-9567-403230bdafed",
            "database": "SomeDatabaseNameThatexistsInTheConnection",
            "tableName": "SomeTableNameThatexistsInTheDatabase",
            "connectorType": "MSSQL_LIVE",
        }],
        "columns": [{
            "appId": app.app_id,
            "connectionId": connection_id,
            "columnType": "NUMBER",
            "columnName": "TheNameofThecolumn",
            "userId": app.user_id,
            "origColumnType": "NUMBER",
        }],
    }
