"""Emulator backends for the client's integration tests: in-process and over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from emulator_backends import Backend, in_process, make_config

from qrvey_iac.emulator.testing import running_server


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
