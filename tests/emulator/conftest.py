"""Fixtures: an emulator app (override ``config`` to change it) and an in-process client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from emulator_helpers import make_client
from starlette.applications import Starlette

from qrvey_iac.emulator import Emulator, EmulatorConfig, create_app


@pytest.fixture
def config() -> EmulatorConfig:
    return EmulatorConfig()


@pytest.fixture
def app(config: EmulatorConfig) -> Starlette:
    return create_app(config)


@pytest.fixture
def emulator(app: Starlette) -> Emulator:
    return app.state.emulator


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(app) as client:
        yield client
