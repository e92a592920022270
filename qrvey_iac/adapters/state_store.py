"""Local state backend: one JSON file per environment, atomic, backed up, locked."""

from __future__ import annotations

import bisect
import itertools
import json
import operator
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from pydantic import ValidationError

from qrvey_iac.core.errors import StateError, StateLockedError
from qrvey_iac.core.state import STATE_VERSION, ResourceState, State


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Temp file in the same folder, fsync, rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable: without it a power cut can bring the old file back
    (a journal entry written before its call would vanish while the call landed)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:          # a platform without directory handles (Windows): the rename is all it has
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def dump_json(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


class StateEncoder:
    """``dump_json(state.model_dump(mode="json"))``, byte for byte, in time proportional to what changed.

    Apply saves the whole state after its calls, and a new state shares every unchanged
    (frozen) resource object with the one before. So the text of each resource is kept
    between saves with the object it was made from; a save finds the changed objects by
    identity (a C-speed pass), encodes only those, and joins. Addresses are sorted again
    only when the set of addresses changed.
    """

    _SLOT = "\x00resources\x00"

    def __init__(self) -> None:
        self._order: list[str] = []                      # sorted addresses
        self._objects: list[ResourceState | None] = []   # what each text was made from
        self._texts: list[str] = []
        self._known: set[str] = set()

    def encode(self, state: State) -> str:
        head = state.model_dump(mode="json", exclude={"resources"})
        head["resources"] = self._SLOT
        text = dump_json(head)
        slot = json.dumps(self._SLOT)
        if text.count(slot) != 1:
            return dump_json(state.model_dump(mode="json"))
        before, _, after = text.partition(slot)
        return before + self._resources(state.resources) + after

    def _resources(self, resources: dict[str, ResourceState]) -> str:
        if len(resources) != len(self._order) or resources.keys() != self._known:
            self._reorder(resources)
        objects = list(map(resources.__getitem__, self._order))
        for index in itertools.compress(range(len(objects)), map(operator.is_not, objects, self._objects)):
            body = dump_json(objects[index].model_dump(mode="json"))[:-1].replace("\n", "\n    ")
            self._texts[index] = f"    {json.dumps(self._order[index])}: {body}"
        self._objects = objects
        return "{\n" + ",\n".join(self._texts) + "\n  }" if objects else "{}"

    def _reorder(self, resources: dict[str, ResourceState]) -> None:
        added = resources.keys() - self._known
        if len(self._known) + len(added) == len(resources):
            # only additions (an apply's creates, saved a few at a time): put each in its place
            # rather than sort and rebuild everything, 5 of a save's 13 ms at 5,000 resources
            for address in sorted(added):
                at = bisect.bisect_left(self._order, address)
                self._order.insert(at, address)
                self._objects.insert(at, None)
                self._texts.insert(at, "")
            self._known |= added
            return
        kept = dict(zip(self._order, zip(self._objects, self._texts)))
        self._order = sorted(resources)
        self._known = set(self._order)
        self._objects = [kept[a][0] if a in kept else None for a in self._order]
        self._texts = [kept[a][1] if a in kept else "" for a in self._order]


class LocalStateStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.backup_path = path.with_name(path.name + ".backup")
        self.lock_path = path.with_name(path.name + ".lock")
        self._backed_up = False
        self._encoder = StateEncoder()

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> State:
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
        version = raw.get("version") if isinstance(raw, dict) else None
        if isinstance(version, int) and version > STATE_VERSION:
            raise StateError(
                f"state file {self.path} has format version {version}; this qrvey-iac reads "
                f"up to {STATE_VERSION}: upgrade qrvey-iac"
            )
        try:
            return State.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise StateError(f"state file {self.path} is invalid at {where}: {first['msg']}") from None

    def save(self, state: State) -> None:
        """Write atomically; the first save of a command keeps the previous file as the backup."""
        if not self._backed_up and self.path.exists():
            write_atomic(self.backup_path, self.path.read_text(encoding="utf-8"))
        self._backed_up = True
        write_atomic(self.path, self._encoder.encode(state))

    @contextmanager
    def lock(self, command: str, timeout: float = 0.0) -> Iterator[str]:
        lock_id = str(uuid.uuid4())
        holder = {
            "id": lock_id, "host": socket.gethostname(), "pid": os.getpid(),
            "command": command, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        deadline = time.monotonic() + timeout
        created = _missing_folders(self.lock_path.parent)
        try:
            while not self._try_create(holder):
                if time.monotonic() >= deadline:
                    raise StateLockedError(self._held_message())
                time.sleep(0.2)
            try:
                yield lock_id
            finally:
                self._release(lock_id)
        finally:
            _remove_if_empty(created)   # a command that wrote nothing leaves no folder behind

    def is_locked(self) -> bool:
        return self.lock_path.exists()

    def holder(self) -> dict | None:
        try:
            return json.loads(self.lock_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def unlock(self, lock_id: str) -> dict:
        holder = self.holder()
        if holder is None:
            raise StateError(f"state {self.path} is not locked")
        if holder.get("id") != lock_id:
            raise StateError(f"lock id {lock_id} does not match the lock held: {holder.get('id')}")
        self.lock_path.unlink(missing_ok=True)
        return holder

    def _try_create(self, holder: dict) -> bool:
        """Write the holder to a temp file, then hard-link it into place.

        link() fails when the lock exists, like O_EXCL, and the lock appears with its
        content complete: a writer killed half-way leaves only a temp file, never an
        empty lock that nobody could read or break.
        """
        temp = self.lock_path.with_name(f".{self.lock_path.name}.{holder['id']}.tmp")
        for attempt in range(3):
            try:
                write_atomic(temp, dump_json(holder))
                break
            except FileNotFoundError:   # another command removed the empty folder between mkdir and open
                if attempt == 2:
                    raise
        try:
            os.link(temp, self.lock_path)
        except FileExistsError:
            return False
        finally:
            temp.unlink(missing_ok=True)
        return True

    def _release(self, lock_id: str) -> None:
        holder = self.holder()
        if holder and holder.get("id") == lock_id:
            self.lock_path.unlink(missing_ok=True)

    def _held_message(self) -> str:
        if self.holder() is None and self.lock_path.exists():
            return (f"state {self.path} is locked by an unreadable lock file {self.lock_path} "
                    "(its writer was killed while locking); if no other qrvey-iac command is running, delete it")
        holder = self.holder() or {}
        stale = _is_stale(holder)
        text = (
            f"state {self.path} is locked by {holder.get('command', '?')} "
            f"(pid {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('started', '?')}, "
            f"lock id {holder.get('id', '?')})"
        )
        if stale:
            return text + ". That process is gone: the lock is stale; run " \
                f"`qrvey-iac state unlock {holder.get('id')}` to break it."
        return text + ". Wait for it to finish, or pass --lock-timeout to wait."


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_if_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:      # not empty (the state was saved there), or already gone
            return


def _is_stale(holder: dict) -> bool:
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
