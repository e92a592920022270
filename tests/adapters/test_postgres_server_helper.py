"""tests/postgres_server.py: the session's one server, even when threads ask for it at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import postgres_server


class SlowServer:
    """Stands in for PostgresServer: its start takes a while, as initdb does."""

    started: list[SlowServer] = []
    lock = threading.Lock()

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir

    def start(self) -> None:
        time.sleep(0.2)
        with SlowServer.lock:
            SlowServer.started.append(self)

    def stop(self) -> None:
        pass


def test_threads_asking_at_once_get_one_server(monkeypatch):
    monkeypatch.setattr(postgres_server, "_shared", None)
    monkeypatch.setattr(postgres_server, "_failure", None)
    monkeypatch.setattr(postgres_server, "PostgresServer", SlowServer)
    monkeypatch.setattr(postgres_server, "find_bindir", lambda: (Path("/nowhere"), ""))
    SlowServer.started.clear()
    with ThreadPoolExecutor(4) as pool:             # the chaos lanes, each asking for a database
        servers = list(pool.map(lambda _: postgres_server.shared_server(), range(4)))
    assert len(SlowServer.started) == 1 and all(server is SlowServer.started[0] for server in servers)
