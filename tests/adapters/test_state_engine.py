"""The engine's writes name the serial they replace: another writer is refused, never overwritten."""

from __future__ import annotations

import pytest
from fakes.state import MemoryStateStore

from qrvey_iac.core.errors import StateConflictError, StateError
from qrvey_iac.core.state import ResourceState, State
from qrvey_iac.engine import Engine

pytestmark = pytest.mark.anyio


def make_resource(index: int) -> ResourceState:
    return ResourceState(kind="Dataset", datasetId=f"id-{index}", appId="a", userId="u")


def stored(serial: int) -> MemoryStateStore:
    store = MemoryStateStore()
    store.write(State(lineage="L", serial=serial), 0)      # nothing stored yet: 0
    return store


class FailingOnce(MemoryStateStore):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def write(self, state: State, expected_serial: int) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError(28, "No space left on device")
        super().write(state, expected_serial)


async def test_group_commits_follow_the_serial_they_wrote():
    store = stored(4)
    engine = Engine(qrvey=None, store=store)
    state = store.read()
    for index in range(3):
        state = state.with_resource(f"dataset.d{index}", make_resource(index))
        await engine.commit(state)
    assert store.read().serial == 7 and len(store.read().resources) == 3


async def test_a_state_changed_by_another_writer_during_apply_is_not_overwritten():
    store = stored(4)
    engine = Engine(qrvey=None, store=store)
    state = store.read().with_resource("dataset.a", make_resource(1))
    await engine.commit(state)
    other = store.read().with_resource("dataset.other", make_resource(9))
    store.write(other.bumped(), other.serial)                   # a command that ignored the lock
    with pytest.raises(StateConflictError, match=r"changed by another writer .*\(serial 5; now 6\)"):
        await engine.commit(state.with_resource("dataset.b", make_resource(2)))
    assert set(store.read().resources) == {"dataset.a", "dataset.other"}


async def test_a_failed_write_is_retried_by_the_next_commit_with_the_same_expected_serial():
    store = FailingOnce()
    engine = Engine(qrvey=None, store=store)
    with pytest.raises(StateError, match="cannot write the state file"):
        await engine.commit(State(lineage="L"))
    await engine.commit(State(lineage="L", resources={"dataset.a": make_resource(1)}))
    assert store.read().serial == 1 and "dataset.a" in store.read().resources


def test_save_refuses_a_state_read_before_another_write():
    store = stored(2)
    read = store.read()
    store.write(read.bumped(), 2)
    with pytest.raises(StateConflictError):
        Engine(qrvey=None, store=store).save(read)
    assert store.read().serial == 3
    assert Engine(qrvey=None, store=store).save(store.read()).serial == 4
