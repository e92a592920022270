"""In-memory StateStore and StateLocker: the ports' contracts without a file system.

They pass the same contract suite as the real adapters (tests/adapters/test_state_contract.py),
so a test that uses them tests against behaviour the real ones have.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from qrvey_iac.adapters.state.codec import decode, encode
from qrvey_iac.core.errors import StateConflictError, StateError, StateLockedError
from qrvey_iac.core.state import State


class MemoryStateStore:
    """Keeps the encoded text, as a real store would: what is read back went through the codec."""

    def __init__(self, text: str | None = None) -> None:
        self.text = text
        self.writes = 0
        self._mutex = threading.Lock()

    def exists(self) -> bool:
        return self.text is not None

    def compact(self) -> None:
        """Nothing is kept apart from the whole state."""

    def read(self) -> State:
        text = self.text
        return State() if text is None else decode(text, "memory state")

    def write(self, state: State, expected_serial: int) -> None:
        text = encode(state)
        with self._mutex:
            stored = None if self.text is None else decode(self.text, "memory state")
            current = (stored.serial, stored.lineage) if stored else (0, state.lineage)
            if current != (expected_serial, state.lineage):
                raise StateConflictError(
                    f"memory state was changed by another writer (serial {expected_serial}; now "
                    f"{stored.serial if stored else 'none'})", expected_serial, stored.serial if stored else None)
            self.text = text
            self.writes += 1


class MemoryLocker:
    """One lock in this process; its holder information looks like the local locker's."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._holder: dict | None = None

    @contextmanager
    def lock(self, command: str, timeout: float = 0.0) -> Iterator[str]:
        holder = {"id": str(uuid.uuid4()), "command": command, "host": socket.gethostname(), "pid": os.getpid(),
                  "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        deadline = time.monotonic() + timeout
        while not self._try(holder):
            if time.monotonic() >= deadline:
                raise StateLockedError(f"memory state is locked by {self._holder['command']} "
                                       f"(lock id {self._holder['id']})")
            time.sleep(0.01)
        try:
            yield holder["id"]
        finally:
            with self._mutex:
                if self._holder is not None and self._holder["id"] == holder["id"]:
                    self._holder = None

    def _try(self, holder: dict) -> bool:
        with self._mutex:
            if self._holder is not None:
                return False
            self._holder = holder
            return True

    def holder(self) -> dict | None:
        return self._holder

    def is_locked(self) -> bool:
        return self._holder is not None

    def unlock(self, lock_id: str, force: bool = False) -> dict:
        with self._mutex:
            if self._holder is None:
                raise StateError("memory state is not locked")
            if self._holder["id"] != lock_id:
                raise StateError(f"lock id {lock_id} does not match the lock held: {self._holder['id']}")
            if not force:        # its holder is this process: alive
                raise StateError(f"lock {lock_id} is held by a running process; pass force to break it")
            holder, self._holder = self._holder, None
            return holder
