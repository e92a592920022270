"""The local locker: an advisory lock the operating system holds (``flock``) on a lock
file next to the state, with who holds it written inside.

Why the OS: a holder that is SIGKILLed, crashes or loses power releases the lock with
its file descriptor, so nobody has to break it by hand. The file's content (id,
command, host, pid, start, CI run) is only for the message a waiter prints.

The protocol, each step chosen so that no reader and no waiter can be fooled:

- The holder information is written to a temp file, which is flocked, then hard-linked
  into place (``link`` fails when a lock file exists). So the lock file appears with
  its content complete and already locked, and is never rewritten in place: a waiter
  never reads half of it.
- Finding a lock file, an acquirer flocks it without waiting. When it gets the flock,
  the file's holder released it by dying; the acquirer then checks the file is still
  the one at the path (same inode; a lock file replaced or removed meanwhile means
  start again) and replaces it by renaming its own locked temp file over it.
- Release removes the lock file while still holding its flock, then closes it. An
  acquirer that was waiting on that file gets the flock, sees the path no longer names
  its inode, and starts again: unlinking a locked file never lets two in.
- A holder the OS cannot vouch for is respected from its content: one on another host
  (a state folder on a network share, where flock may not reach across machines) until
  it releases or ``state unlock ID`` removes it; one on this host written without an OS
  lock (a qrvey-iac before this format, which locked by the file alone) while its pid
  lives. ``state unlock`` refuses a holder alive on this host unless ``--force``.

Windows has no ``fcntl``: taking the lock there is a clear error, importing is fine.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from qrvey_iac.core.errors import StateError, StateLockedError

try:
    import fcntl
except ImportError:      # Windows
    fcntl = None

POLL_SECONDS = 0.2
OS_LOCK = "flock"        # the holder's ``lock`` field: the holder also holds the OS lock


class LocalLocker:
    """Locks the state at ``state_path`` through ``<real state path>.lock``."""

    def __init__(self, state_path: Path) -> None:
        self.state_path = state_path

    @property
    def lock_path(self) -> Path:
        """Next to the state's real file: two symlinks to one state share one lock."""
        real = real_path(self.state_path)
        return real.with_name(real.name + ".lock")

    @contextmanager
    def lock(self, command: str, timeout: float = 0.0) -> Iterator[str]:
        holder = holder_info(command)
        lock_path = self.lock_path
        deadline = time.monotonic() + timeout
        created = _missing_folders(lock_path.parent)
        quick_retries = 3
        try:
            while (fd := self._acquire_once(lock_path, holder)) is None:
                if quick_retries and not lock_path.exists():
                    quick_retries -= 1      # released between two steps of the attempt: try again at once
                    continue
                if time.monotonic() >= deadline:
                    raise StateLockedError(self._held_message(timeout))
                time.sleep(POLL_SECONDS)
            try:
                yield holder["id"]
            finally:
                _release(lock_path, fd)
        finally:
            _remove_if_empty(created)   # a command that wrote nothing leaves no folder behind

    def holder(self) -> dict | None:
        """Who holds the lock, or None when it is free (a holder on this host that died
        left its file behind, but not the lock: that is free)."""
        holder = _read_holder(self.lock_path)
        if holder is None or _dead_here(holder):
            return None
        return holder

    def is_locked(self) -> bool:
        return self.holder() is not None

    def unlock(self, lock_id: str, force: bool = False) -> dict:
        """Remove the lock ``lock_id`` left by a holder the OS cannot release (another host's).

        Refused, unless ``force``, for a holder alive on this host: one whose OS lock is held
        (that process runs), or one without an OS lock whose pid lives (a release before OS
        locks). Breaking it would let a second writer in while the first still writes;
        stopping it releases the lock. ``force`` removes the lock file anyway (the holder
        keeps running; the state's serial check refuses its writes that conflict).
        """
        lock_path = self.lock_path
        holder = _read_holder(lock_path)
        if holder is None:
            raise StateError(f"state {self.state_path} is not locked")
        if holder.get("id") != lock_id:
            raise StateError(f"lock id {lock_id} does not match the lock held: {holder.get('id')}")
        try:
            fd = _open_flocked(lock_path)
        except FileNotFoundError:           # released since it was read
            raise StateError(f"state {self.state_path} is not locked") from None
        alive = fd is None or (not _os_locked_here(holder) and _alive_here(holder))
        if alive and not force:
            if fd is not None:
                os.close(fd)
            raise StateError(
                f"lock {lock_id} is held by a running process ({who(holder)}); it cannot be broken while "
                "that process runs: let it finish or stop it, and the lock is released with it. "
                f"`qrvey-iac state unlock {lock_id} --force` breaks it anyway, letting another command "
                "write the state while that process still does")
        try:
            if fd is None or _same_file(fd, lock_path):
                lock_path.unlink(missing_ok=True)
        finally:
            if fd is not None:
                os.close(fd)
        return holder

    def _acquire_once(self, lock_path: Path, holder: dict) -> int | None:
        """``_try_acquire``; a lock file the file system refuses (a read-only or full folder) is
        a StateError naming it, before anything was changed."""
        try:
            return self._try_acquire(lock_path, holder)
        except OSError as exc:
            reason = exc.strerror or f"{exc.__class__.__name__}: {exc}"
            raise StateError(
                f"cannot lock state {self.state_path}: its lock file {lock_path} cannot be written ({reason}; "
                f"check that the folder {lock_path.parent} is writable and has free space); nothing was changed"
            ) from None

    def _try_acquire(self, lock_path: Path, holder: dict) -> int | None:
        """The flocked descriptor of a lock file at ``lock_path`` holding ``holder``, or None
        when someone else holds the lock."""
        _require_fcntl()
        temp = lock_path.with_name(f".{lock_path.name}.{holder['id']}.tmp")
        fd = _create_locked(temp, holder)
        try:
            try:
                os.link(temp, lock_path)
                return fd
            except FileExistsError:
                pass
            if not self._take_over(lock_path, temp):
                os.close(fd)
                return None
            return fd
        except BaseException:
            os.close(fd)
            raise
        finally:
            temp.unlink(missing_ok=True)

    def _take_over(self, lock_path: Path, temp: Path) -> bool:
        """Replace the lock file at ``lock_path`` by ``temp`` when its holder is gone."""
        try:
            old = _open_flocked(lock_path)
        except FileNotFoundError:    # released meanwhile: the next attempt links
            return False
        if old is None:
            return False             # held: the OS says its holder is alive
        try:
            if not _same_file(old, lock_path):
                return False         # released or replaced meanwhile: the next attempt sees the new one
            holder = _parse(_read_fd(old))
            if holder is not None and not _dead_here(holder) and not _os_locked_here(holder):
                return False         # a holder the OS lock cannot speak for (see the module docstring)
            os.replace(temp, lock_path)
            return True
        finally:
            os.close(old)

    def _held_message(self, waited: float) -> str:
        lock_path = self.lock_path
        holder = _read_holder(lock_path)
        advice = ("Wait for it to finish, or pass --lock-timeout to wait." if waited <= 0 else
                  f"It was still held after waiting {waited:g}s: wait for it to finish, or pass a longer "
                  "--lock-timeout.")
        if holder is None:
            return f"state {self.state_path} is locked (its lock file {lock_path} cannot be read). {advice}"
        text = f"state {self.state_path} is locked by {holder.get('command', '?')} ({who(holder)}). {advice}"
        if holder.get("ci_run"):
            text += f" It runs in CI run {holder['ci_run']}."
        if holder.get("host") != socket.gethostname():
            text += (f" If it is no longer running on {holder.get('host', '?')}, run "
                     f"`qrvey-iac state unlock {holder.get('id')}` to break its lock.")
        return text


def real_path(path: Path) -> Path:
    """``path`` itself, or the file a symlink at ``path`` points to (so an atomic rename
    replaces the state, not the link, and two links to one state share one lock)."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def resolved_state_path(path: Path) -> Path:
    """The path the state configured at ``path`` is read, written and locked at: ``path``,
    or, when it is a symlink, the file at the end of its links (so an atomic rename replaces
    the state, not the link, and the lock, backup and sidecar sit beside the real file).

    A link that points to a file not there yet, in a folder that is, is a new state made
    there. A link on the way that leads nowhere (a loop, or a target whose folder is missing:
    a shared folder that is not mounted) is refused: read as "no state yet" it would plan to
    create every object again, and a write would start a new state in the wrong place.
    """
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        if not os.path.lexists(candidate):
            continue
        target = Path(os.path.realpath(candidate))
        if candidate == path and not _loops(path) and target.parent.is_dir():
            break                           # a new state, in the folder the link points into
        where = "the state path" if candidate == path else f"folder {candidate} of the state path"
        try:
            points = f"points to {os.readlink(candidate)}, which"
        except OSError:
            points = "is a link that"
        raise StateError(
            f"{where} {path} is a symbolic link that leads nowhere: it {points} loops or is in a folder "
            "that does not exist. Reading it as an empty state would plan to create every object again: "
            "fix or mount what the link points to (or remove the link to start a new state there).")
    return real_path(path)


def _loops(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def holder_info(command: str) -> dict:
    """Who takes a lock, for the message a waiter prints (every locker records the same)."""
    holder = {
        "id": str(uuid.uuid4()), "host": socket.gethostname(), "pid": os.getpid(), "command": command,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "lock": OS_LOCK,
    }
    ci_run = ci_run_of(os.environ)
    if ci_run:
        holder["ci_run"] = ci_run
    return holder


def ci_run_of(environ: Mapping[str, str]) -> str | None:
    """The CI run this process is part of: its URL when the CI's variables give one (GitHub
    Actions, GitLab CI), else its id, else None."""
    run_id = environ.get("GITHUB_RUN_ID")
    if run_id:
        server, repository = environ.get("GITHUB_SERVER_URL"), environ.get("GITHUB_REPOSITORY")
        return f"{server.rstrip('/')}/{repository}/actions/runs/{run_id}" if server and repository else run_id
    if environ.get("CI"):
        return environ.get("CI_JOB_URL") or environ.get("CI_JOB_ID") or None
    return None


def who(holder: dict) -> str:
    """The holder as a waiter is told: pid, host, since when, lock id."""
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('started', '?')}, "
            f"lock id {holder.get('id', '?')}")


def _require_fcntl() -> None:
    if fcntl is None:
        raise StateError("locking the local state needs POSIX file locks (fcntl), which this platform "
                         "does not have; run qrvey-iac on Linux or macOS (or WSL)")


def _create_locked(temp: Path, holder: dict) -> int:
    """A new file at ``temp`` holding ``holder``, flocked (nobody else can have it yet)."""
    temp.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        try:
            fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            break
        except FileNotFoundError:   # another command removed the empty folder between mkdir and open
            if attempt == 2:
                raise
            temp.parent.mkdir(parents=True, exist_ok=True)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, (json.dumps(holder, indent=2, sort_keys=True) + "\n").encode())
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    return fd


def _open_flocked(path: Path) -> int | None:
    """``path`` opened and flocked without waiting; None when another holds its flock."""
    _require_fcntl()
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _release(lock_path: Path, fd: int) -> None:
    """Remove our lock file while its flock is still held, then let the flock go."""
    try:
        if _same_file(fd, lock_path):        # not replaced by `state unlock` and another holder
            lock_path.unlink(missing_ok=True)
    except OSError:
        pass        # the folder turned read-only: the file stays, the lock goes with the descriptor
    finally:
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _read_holder(lock_path: Path) -> dict | None:
    try:
        return _parse(lock_path.read_bytes())
    except OSError:
        return None


def _read_fd(fd: int) -> bytes:
    chunks = []
    while chunk := os.pread(fd, 65536, sum(map(len, chunks))):
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(data: bytes) -> dict | None:
    try:
        holder = json.loads(data)
    except ValueError:
        return None
    return holder if isinstance(holder, dict) else None


def _dead_here(holder: dict) -> bool:
    """A holder on this host whose process is gone."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


def _alive_here(holder: dict) -> bool:
    """A holder on this host whose pid is a running process."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    return not _dead_here(holder)


def _os_locked_here(holder: dict) -> bool:
    """A holder on this host that held the OS lock: once we have the flock, it is gone
    (even when its pid now belongs to another process)."""
    return holder.get("host") == socket.gethostname() and holder.get("lock") == OS_LOCK


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
