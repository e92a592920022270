"""Emulator backends for the client's integration tests: in-process and over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from emulator_backends import API_KEY, Backend

from qrvey_iac.emulator import EmulatorConfig, EmulatorTransport, create_app
from qrvey_iac.emulator.testing import running_server


def make_config(**overrides) -> EmulatorConfig:
    settings = {"api_key": API_KEY, "autosave": False, "seed": 11}
    settings.update(overrides)
    return EmulatorConfig(**settings)


def in_process(config: EmulatorConfig) -> Backend:
    app = create_app(config)
    return Backend("in-process", app.state.emulator, "http://emulator", EmulatorTransport(app))


@pytest.fixture
def local() -> Backend:
    """An in-process emulator with no faults."""
    return in_process(make_config())


@pytest.fixture(params=["in-process", "http"])
def backend(request) -> Iterator[Backend]:
    """The same fault-free emulator, reached in-process and over real HTTP."""
    config = make_config()
    if request.param == "in-process":
        yield in_process(config)
        return
    with running_server(config) as server:
        yield Backend("http", server.emulator, server.base_url)
