"""The local state store: one JSON file per environment, atomic, backed up, mode 0600.

Locking is not its job (``lock.py``); the format is not either (``codec.py``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from qrvey_iac.adapters.files import fsync_folder, write_atomic, write_temp
from qrvey_iac.adapters.state.codec import decode, encode
from qrvey_iac.adapters.state.lock import real_path
from qrvey_iac.core.errors import StateConflictError, StateError
from qrvey_iac.core.state import State

try:
    import fcntl
except ImportError:      # Windows: the compare-and-swap runs without the OS lock around it
    fcntl = None


class LocalStateStore:
    """The state at ``path`` (or, when ``path`` is a symlink, at the file it points to)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._backed_up = False

    @property
    def backup_path(self) -> Path:
        target = real_path(self.path)
        return target.with_name(target.name + ".backup")

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> State:
        if not self.path.exists():
            return State()
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:   # RecursionError: nested too deeply
            backup = (f"the previous version is in {self.backup_path} and was not touched"
                      if self.backup_path.exists() else "there is no backup of it")
            raise StateError(
                f"state file {self.path} is unreadable ({exc.__class__.__name__}: {exc}); {backup}"
            ) from None
        return decode(raw, f"state file {self.path}")

    def write(self, state: State, expected_serial: int) -> None:
        """Replace the file atomically when it still holds ``expected_serial`` (0: no file).

        The first write of a command keeps the previous file as the backup. The stored
        serial is read and the file renamed into place under an OS lock on the stored
        file, so two writers cannot both pass the check. That is a last line: on a
        network share without working flock, or between a reader and a writer that do
        not hold the locker, a conflict is caught only when the writes do not interleave
        within the check. Commands hold the locker for their whole run.
        """
        target = real_path(self.path)
        if not self._backed_up and target.exists():
            write_atomic(self.backup_path, target.read_text(encoding="utf-8"))
        self._backed_up = True
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = write_temp(target, encode(state))
        try:
            self._swap(target, temp, state.lineage, expected_serial)
        finally:
            temp.unlink(missing_ok=True)
        fsync_folder(target.parent)

    def _swap(self, target: Path, temp: Path, lineage: str, expected_serial: int) -> None:
        while True:
            try:
                fd = os.open(target, os.O_RDWR)      # read-write: flock over NFS needs it
            except FileNotFoundError:
                if expected_serial != 0:
                    raise self._conflict(expected_serial, None) from None
                try:
                    os.link(temp, target)            # created only if still absent
                    return
                except FileExistsError:
                    continue                         # another writer created it: check that one
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)   # held by another writer only for its check and rename
                if not _names(target, fd):
                    continue                         # replaced while we waited: check the new one
                stored = _serial_and_lineage(fd)
                if stored != (expected_serial, lineage):
                    raise self._conflict(expected_serial, stored[0] if stored else None,
                                         other_lineage=stored is not None and stored[1] != lineage)
                os.replace(temp, target)
                return
            finally:
                os.close(fd)

    def _conflict(self, expected: int, stored: int | None, other_lineage: bool = False) -> StateConflictError:
        if stored is None:
            now = "it is gone or unreadable"
        elif other_lineage:
            now = f"it now holds another state (another lineage, serial {stored})"
        else:
            now = f"its serial is now {stored}"
        return StateConflictError(
            f"state file {self.path} was changed by another writer since this command read it (serial "
            f"{expected}; {now}); nothing was overwritten. Is another qrvey-iac running on this state "
            "without its lock? Run plan to see where things stand.", expected, stored)


def _names(path: Path, fd: int) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _serial_and_lineage(fd: int) -> tuple[int, str] | None:
    with os.fdopen(os.dup(fd), "rb") as handle:
        try:
            raw = json.loads(handle.read())
        except (ValueError, RecursionError):
            return None
    if not isinstance(raw, dict) or not isinstance(raw.get("serial"), int):
        return None
    return raw["serial"], raw.get("lineage")
