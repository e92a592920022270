"""Writing a file so that a reader, a crash or a power cut never sees half of it."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Temp file in the same folder, fsync, rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = write_temp(path, text, mode)
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def write_temp(path: Path, text: str, mode: int = 0o600) -> Path:
    """``text`` in a durable temp file next to ``path``, ready to be renamed onto it."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")   # unique per writer
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def fsync_folder(folder: Path) -> None:
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
