"""A real-HTTP emulator on a free loopback port, for client, CLI and benchmark tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from qrvey_iac.emulator.app import Emulator
from qrvey_iac.emulator.config import EmulatorConfig
from qrvey_iac.emulator.serve import make_server

STARTUP_TIMEOUT_S = 10.0


@dataclass
class RunningServer:
    base_url: str  # e.g. "http://127.0.0.1:54321"
    emulator: Emulator
    server: uvicorn.Server


@contextmanager
def running_server(config: EmulatorConfig | None = None, host: str = "127.0.0.1") -> Iterator[RunningServer]:
    """Start uvicorn in a background thread, wait until it listens, stop it on exit."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, 0))
    port = listener.getsockname()[1]
    server = make_server(config or EmulatorConfig(), host, port, log_config=None)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True, name="qrvey-emulator")
    thread.start()
    try:
        _wait_until_started(server, thread)
        url_host = f"[{host}]" if ":" in host else host
        yield RunningServer(f"http://{url_host}:{port}", server.config.app.state.emulator, server)
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT_S)
        listener.close()


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the emulator server thread stopped before it started listening")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the emulator server did not start within {STARTUP_TIMEOUT_S} s")
        time.sleep(0.01)
