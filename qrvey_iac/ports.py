"""What the engine needs from the outside world, as protocols (DESIGN §2)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Protocol

from qrvey_iac.core.kinds.base import QrveyApi
from qrvey_iac.core.state import State


# The Qrvey calls every kind is written against; its contract is on the protocol.
QrveyPort = QrveyApi


class StateStore(Protocol):
    """Where one environment's state lives (Terraform's statemgr Reader and Writer).

    - ``read()`` returns the stored state, decoded to the current format (an older
      format is upgraded, a newer one refused with a StateError); ``State()`` when
      nothing is stored yet.
    - ``write(state, expected_serial)`` stores ``state`` whole, atomically (a reader
      sees the old or the new state, never a mix), only when the stored state still has
      serial ``expected_serial`` and the lineage of ``state`` (0: nothing stored yet).
      Otherwise it raises StateConflictError and leaves the stored state untouched: a
      concurrent writer is detected, never overwritten. This check is the last line;
      mutual exclusion is the locker's job, held for the whole command.
      A write the file system refuses (a full disk, a read-only folder) raises
      StateWriteError naming the file; the stored state stays whole and as it was.
    - ``exists()``: whether a state has been stored.
    - ``compact()``: after a command's last write: whatever the store keeps apart from the
      whole state (the local store's write-ahead sidecar) is folded in, so the stored state
      is one self-contained value. Nothing to do for a store that keeps none.
    """

    def read(self) -> State: ...
    def write(self, state: State, expected_serial: int) -> None: ...
    def exists(self) -> bool: ...
    def compact(self) -> None: ...


class StateLocker(Protocol):
    """Mutual exclusion between the commands that write one state (statemgr Locker).

    - ``lock(command, timeout)`` is a context manager that yields the lock id while
      held; when another holds the lock it waits up to ``timeout`` seconds (0: not at
      all), then raises StateLockedError naming the holder. Leaving the context
      releases it. A holder that dies without releasing must not keep the lock: the
      next command gets in without anybody breaking it by hand.
    - ``holder()``: who holds it (id, command, host, pid, started, ci_run when set),
      None when free. ``is_locked()``: ``holder() is not None``.
    - ``unlock(lock_id, force=False)`` breaks the lock ``lock_id`` left by a holder this
      machine cannot see end (another host's) and returns its holder information; refused
      (StateError) for another id, and, unless ``force``, for a holder known to be alive.
    """

    def lock(self, command: str, timeout: float = 0.0) -> AbstractContextManager[str]: ...
    def holder(self) -> dict | None: ...
    def is_locked(self) -> bool: ...
    def unlock(self, lock_id: str, force: bool = False) -> dict: ...


class Workspace(Protocol):
    """One environment as the command flows see it (``wiring.Workspace`` composes it).

    - ``environment_name``: the environment a plan is made for and checked against.
    - ``store`` / ``locker``: its state store and the locker that guards it.
    - ``parallelism(requested)``: the concurrency to use (the flag, else the environment's).
    - ``config_file``: the config file the environment was read from (named in errors).
    - ``request_timeout``: seconds the Qrvey client waits for an answer (an unanswered
      create may still land for twice as long).
    - ``qrvey(parallelism, rate_limit)``: the Qrvey port, open for the ``async with`` block
      and closed after it (for the in-process emulator: its world saved if it changed).
    """

    @property
    def environment_name(self) -> str: ...
    @property
    def store(self) -> StateStore: ...
    @property
    def locker(self) -> StateLocker: ...
    @property
    def request_timeout(self) -> float: ...
    @property
    def config_file(self) -> str: ...
    def parallelism(self, requested: int | None) -> int: ...
    def qrvey(self, parallelism: int, rate_limit: float | None = None) -> AbstractAsyncContextManager[QrveyPort]: ...
