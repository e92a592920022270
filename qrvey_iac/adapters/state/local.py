"""The local state store: one JSON file per environment, atomic, backed up, mode 0600.

During an apply most writes are small: while the state has a pending journal, a write
after the first one of a command appends one line (the resources that changed, the ones
removed, the whole journal) to the write-ahead sidecar ``<state>.wal`` instead of
rewriting the file. ``read()`` is the file, then the sidecar's lines that follow it. A
write with an empty journal (the end of an apply, a settle, every ``state`` command), the
first write of a command and a write once the sidecar is long replace the whole file and
remove the sidecar. docs/architecture.md §4 has the format and the crash semantics.

Locking is not its job (``lock.py``); the format is not either (``codec.py``).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qrvey_iac.adapters.files import fsync_folder, write_atomic, write_temp
from qrvey_iac.adapters.state.codec import decode, dump_json, encode
from qrvey_iac.adapters.state.lock import real_path
from qrvey_iac.core.errors import StateConflictError, StateError, StateWriteError
from qrvey_iac.core.state import State

try:
    import fcntl
except ImportError:      # Windows: the compare-and-swap runs without the OS lock around it
    fcntl = None

WAL_MAX_LINES = 1000           # past either bound the next write is whole (and empties the sidecar)
WAL_MAX_BYTES = 16 * 1024 * 1024

_sync_data = getattr(os, "fdatasync", os.fsync)   # macOS has no fdatasync


class LocalStateStore:
    """The state at ``path`` (or, when ``path`` is a symlink, at the file it points to)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._backed_up = False
        self._mutex = threading.Lock()     # one write at a time per store object
        # What this store object last put on disk (None: nothing known, the next write is
        # whole): the state as written (a value); the state file's serial and its (dev,
        # inode, size, mtime) as renamed into place; the sidecar's (dev, inode, size) after
        # the last append (None: no line appended on this file yet). Each is trusted only
        # while the files on disk still have these keys.
        self._last: State | None = None
        self._base = 0
        self._main: tuple[int, ...] | None = None
        self._wal: tuple[int, ...] | None = None
        self._lines = 0

    @property
    def backup_path(self) -> Path:
        target = real_path(self.path)
        return target.with_name(target.name + ".backup")

    @property
    def wal_path(self) -> Path:
        target = real_path(self.path)
        return target.with_name(target.name + ".wal")

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> State:
        if not self.path.exists():
            return State()
        raw, applied = self._load()
        source = f"state file {self.path}"
        if applied:
            source += f" (with {applied} write(s) from {self.wal_path})"
        return decode(raw, source)

    def _load(self) -> tuple[Any, int]:
        """The state file as parsed JSON with the sidecar's lines that follow it applied,
        and how many were applied."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:   # RecursionError: nested too deeply
            backup = (f"the previous version is in {self.backup_path} and was not touched"
                      if self.backup_path.exists() else "there is no backup of it")
            raise StateError(
                f"state file {self.path} is unreadable ({exc.__class__.__name__}: {exc}); {backup}"
            ) from None
        if not isinstance(raw, dict) or not isinstance(raw.get("resources"), dict):
            return raw, 0                       # left for the codec to name
        deltas = self._deltas(raw.get("serial"), raw.get("lineage"))
        if not deltas:
            return raw, 0
        resources = dict(raw["resources"])
        for delta in deltas:
            resources.update(delta["set"])
            for address in delta["removed"]:
                resources.pop(address, None)
        last = deltas[-1]
        return {**raw, "resources": resources, "journal": last["journal"], "serial": last["serial"]}, len(deltas)

    def _deltas(self, base: object, lineage: object) -> list[dict]:
        """The sidecar's lines that apply to a state file of serial ``base``, in order.

        A line applies when it names this lineage and base; each must be one serial on from
        the one before. The first line that does not parse (a torn write: it never returned,
        so its call was never sent) or does not follow ends them. Lines of another lineage
        or base are left over from before a whole write and are skipped.
        """
        if not isinstance(base, int) or isinstance(base, bool):
            return []
        try:
            data = self.wal_path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StateError(f"state sidecar {self.wal_path} is unreadable "
                             f"({exc.__class__.__name__}: {exc})") from None
        deltas: list[dict] = []
        serial = base
        for line in data.split(b"\n")[:-1]:          # after the last newline: not a whole line
            try:
                delta = json.loads(line)
            except (ValueError, RecursionError):
                break
            if not isinstance(delta, dict):
                break
            if delta.get("lineage") != lineage or delta.get("base") != base:
                continue
            if not _follows(delta, serial):
                break
            deltas.append(delta)
            serial += 1
        return deltas

    def write(self, state: State, expected_serial: int) -> None:
        """Store ``state`` when the stored state still has ``expected_serial`` (0: none).

        The first write of a command keeps the previous state as the backup. The stored
        serial is read and the state written under an OS lock on the stored file, so two
        writers cannot both pass the check. That is a last line: on a network share
        without working flock, or between a reader and a writer that do not hold the
        locker, a conflict is caught only when the writes do not interleave within the
        check. Commands hold the locker for their whole run.
        """
        with self._mutex, self._writing():
            target = real_path(self.path)
            if not self._backed_up and target.exists():
                self._back_up(target)
            self._backed_up = True
            if self._appendable(state, expected_serial) and self._append(target, state, expected_serial):
                return
            self._write_whole(target, state, expected_serial)

    def compact(self) -> None:
        """Fold the sidecar into the state file, so that the file alone is the state: called
        after a command's last write (an apply that stopped with writes pending included),
        so whoever copies or commits only the state file copies all of it. A crash before
        this leaves the file and its sidecar, which ``read`` puts together."""
        with self._mutex, self._writing():
            if self._last is None or self._wal is None:
                return                      # this store object appended nothing
            self._write_whole(real_path(self.path), self._last, self._last.serial)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A write the file system refuses (full disk, read-only folder, quota) is a
        StateWriteError naming the state file and its folder. Every write is a temp file
        renamed into place or a sidecar line cut back when it fails, so what was stored
        before is still whole."""
        try:
            yield
        except OSError as exc:
            reason = exc.strerror or f"{exc.__class__.__name__}: {exc}"
            folder = real_path(self.path).parent
            raise StateWriteError(
                f"cannot write the state file {self.path} ({reason}; check that the folder {folder} is "
                "writable and has free space); the state stored before this write is whole and unchanged"
            ) from None

    def _back_up(self, target: Path) -> None:
        """The state before this command: the file, with the sidecar's lines when some apply."""
        text = target.read_text(encoding="utf-8")
        raw, applied = None, 0
        if self.wal_path.exists():
            try:
                raw, applied = self._load()
            except StateError:
                pass                            # unreadable: the file is kept as it is
        write_atomic(self.backup_path, dump_json(raw) if applied else text)

    def _appendable(self, state: State, expected: int) -> bool:
        last = self._last
        return (last is not None and bool(state.journal) and state.serial == expected + 1
                and state.lineage == last.lineage and state.version == last.version
                and state.owner == last.owner          # a line carries no owner: a new one is written whole
                and self._lines < WAL_MAX_LINES and (self._wal is None or self._wal[2] < WAL_MAX_BYTES))

    def _append(self, target: Path, state: State, expected: int) -> bool:
        """Append ``state`` as a line after the one this store last wrote; False when the
        files are not as this store left them (the whole write then checks and writes)."""
        last = self._last
        assert last is not None and self._main is not None
        changed = {a: r for a, r in state.resources.items()
                   if (old := last.resources.get(a)) is not r and old != r}
        removed = sorted(a for a in last.resources if a not in state.resources)
        line = json.dumps({
            "lineage": state.lineage, "base": self._base, "serial": state.serial,
            "set": {a: r.model_dump(mode="json") for a, r in changed.items()}, "removed": removed,
            "journal": [e.model_dump(mode="json") for e in state.journal],
        }, separators=(",", ":"), sort_keys=True).encode("utf-8") + b"\n"
        try:
            fd = os.open(target, os.O_RDWR)
        except FileNotFoundError:
            raise self._conflict(expected, None) from None
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            if not _names(target, fd) or _file_key(os.fstat(fd)) != self._main:
                return False                     # replaced or edited since: not the file we wrote
            first = self._wal is None
            if first:
                if self.wal_path.exists() and self._deltas(self._base, last.lineage):
                    return False                 # lines on our file we did not write
            elif _wal_key(self.wal_path) != self._wal:
                return False
            if expected != last.serial:
                raise self._conflict(expected, last.serial)
            self._wal = self._append_line(line, truncate=first)
            if first:
                fsync_folder(target.parent)      # the sidecar's name, when it was created
        finally:
            os.close(fd)
        self._last = state
        self._lines += 1
        return True

    def _append_line(self, line: bytes, truncate: bool) -> tuple[int, ...]:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | (os.O_TRUNC if truncate else 0)
        fd = os.open(self.wal_path, flags, 0o600)
        try:
            if truncate and hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)             # a leftover sidecar keeps its mode otherwise
            start = os.fstat(fd).st_size
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                _sync_data(fd)
            except BaseException:
                self._last = None                # the next write is whole, whatever is left here
                try:
                    os.ftruncate(fd, start)      # no line after a torn one
                    os.fsync(fd)
                except OSError:
                    pass
                raise
            return _wal_key_of(os.fstat(fd))
        finally:
            os.close(fd)

    def _write_whole(self, target: Path, state: State, expected: int) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = write_temp(target, encode(state))
        try:
            self._swap(target, temp, state, expected)
        finally:
            temp.unlink(missing_ok=True)

    def _swap(self, target: Path, temp: Path, state: State, expected: int) -> None:
        while True:
            try:
                fd = os.open(target, os.O_RDWR)      # read-write: flock over NFS needs it
            except FileNotFoundError:
                if expected != 0:
                    raise self._conflict(expected, None) from None
                new = _locked(temp)
                try:
                    try:
                        os.link(temp, target)        # created only if still absent
                    except FileExistsError:
                        continue                     # another writer created it: check that one
                    self._placed(target, new, state)
                    return
                finally:
                    os.close(new)
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)   # held by another writer only for its check and write
                if not _names(target, fd):
                    continue                         # replaced while we waited: check the new one
                stored = self._stored(fd)
                if stored != (expected, state.lineage):
                    raise self._conflict(expected, stored[0] if stored else None,
                                         other_lineage=stored is not None and stored[1] != state.lineage)
                new = _locked(temp)                  # the new file is locked before it has its name
                try:
                    os.replace(temp, target)
                    self._placed(target, new, state)
                finally:
                    os.close(new)
                return
            finally:
                os.close(fd)

    def _placed(self, target: Path, new: int, state: State) -> None:
        """After the rename, still holding the new file's lock: make it durable, then
        remove the sidecar (its lines are in the file now)."""
        fsync_folder(target.parent)
        try:
            os.unlink(self.wal_path)
        except FileNotFoundError:
            pass
        else:
            fsync_folder(target.parent)
        self._last, self._base, self._main = state, state.serial, _file_key(os.fstat(new))
        self._wal, self._lines = None, 0

    def _stored(self, fd: int) -> tuple[int, str] | None:
        """The stored serial and lineage: the file's, then the sidecar's lines on it."""
        last = self._last
        if (last is not None and self._main is not None and _file_key(os.fstat(fd)) == self._main
                and (_wal_key(self.wal_path) == self._wal if self._wal else not self.wal_path.exists())):
            return last.serial, last.lineage     # as this store left them
        main = _serial_and_lineage(fd)
        if main is None:
            return None
        return main[0] + len(self._deltas(*main)), main[1]

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


def _follows(delta: dict, serial: int) -> bool:
    removed = delta.get("removed")
    return (delta.get("serial") == serial + 1 and isinstance(delta.get("set"), dict)
            and isinstance(removed, list) and all(isinstance(a, str) for a in removed)
            and isinstance(delta.get("journal"), list))


def _locked(path: Path) -> int:
    fd = os.open(path, os.O_RDWR)
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)           # a fresh file: nobody else holds it
    return fd


def _file_key(stat: os.stat_result) -> tuple[int, ...]:
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def _wal_key_of(stat: os.stat_result) -> tuple[int, ...]:
    return stat.st_dev, stat.st_ino, stat.st_size


def _wal_key(path: Path) -> tuple[int, ...] | None:
    try:
        return _wal_key_of(os.stat(path))
    except FileNotFoundError:
        return None


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
