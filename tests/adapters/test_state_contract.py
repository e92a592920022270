"""The StateStore and StateLocker contracts (qrvey_iac/ports.py), run against every adapter.

A new store or locker joins by adding a factory to STORES or LOCKERS (one that needs a
service, such as PostgreSQL, skips itself when the service cannot run, and fails instead under
CI=true). The factories take a fresh folder and return an empty store or a free locker: the
postgres ones a new workspace in one database of the session's throwaway server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes.state import MemoryLocker, MemoryStateStore
from postgres_server import new_workspace, shared_database

from qrvey_iac.adapters.state.local import LocalStateStore
from qrvey_iac.adapters.state.lock import LocalLocker
from qrvey_iac.adapters.state.postgres import PostgresDatabase, PostgresLocker, PostgresStateStore
from qrvey_iac.core.errors import StateConflictError, StateError, StateLockedError
from qrvey_iac.core.state import JournalDetail, JournalEntry, ResourceState, State
from qrvey_iac.ports import StateLocker, StateStore



def postgres_database() -> PostgresDatabase:
    """The contract tests' database on the session's PostgreSQL server (tests/postgres_server.py:
    skipped with the reason where no server programs are found, failed under CI=true)."""
    dsn = shared_database("contract")
    return PostgresDatabase(lambda: dsn, "state workspace (postgres)")


STORES: dict[str, Callable[[Path], StateStore]] = {
    "local": lambda folder: LocalStateStore(folder / "state" / "local.json"),
    "memory": lambda folder: MemoryStateStore(),
    "postgres": lambda folder: PostgresStateStore(postgres_database(), new_workspace()),
}
LOCKERS: dict[str, Callable[[Path], StateLocker]] = {
    "local": lambda folder: LocalLocker(folder / "state" / "local.json"),
    "memory": lambda folder: MemoryLocker(),
    "postgres": lambda folder: PostgresLocker(postgres_database(), new_workspace()),
}


def _closed_after(made):
    yield made
    if hasattr(made, "close"):        # a store or locker with connections of its own
        made.close()


@pytest.fixture(params=sorted(STORES))
def store(request, tmp_path) -> StateStore:
    yield from _closed_after(STORES[request.param](tmp_path))


@pytest.fixture(params=sorted(LOCKERS))
def locker(request, tmp_path) -> StateLocker:
    yield from _closed_after(LOCKERS[request.param](tmp_path))


def make_state(serial: int = 1, lineage: str = "L-1", resources: int = 2) -> State:
    return State(
        lineage=lineage, serial=serial,
        resources={f"dataset.d{i}": ResourceState(kind="Dataset", datasetId=f"id-{i}", appId="a", userId="u",
                                                  applied_hash=f"h{i}") for i in range(resources)},
        journal=(JournalEntry(id="j1", op="create", address="view.v", appId="a", userId="u",
                              detail=JournalDetail(kind="DatasetView", connectionId="c-1",
                                                   marker={"qrveyIacAddress": "view.v"})),),
    )


# --- StateStore --------------------------------------------------------------------------


def test_reading_nothing_is_an_empty_state(store):
    state = store.read()
    assert not store.exists()
    assert (state.serial, state.resources, state.journal) == (0, {}, ())


def test_a_write_reads_back_the_same(store):
    state = make_state()
    store.write(state, expected_serial=0)
    assert store.exists()
    assert store.read() == state


def test_each_write_names_the_serial_it_replaces(store):
    store.write(make_state(1), 0)
    store.write(make_state(2, resources=3), 1)
    store.write(make_state(3, resources=1), 2)
    assert store.read() == make_state(3, resources=1)


def test_compact_keeps_the_state_and_later_writes_follow_it(store):
    store.compact()                                   # nothing stored yet: nothing to do
    for serial in (1, 2, 3):                          # with the journal pending: a local store appends
        store.write(make_state(serial, resources=serial), serial - 1)
    store.compact()
    assert store.read() == make_state(3, resources=3)
    store.write(make_state(4, resources=1), 3)
    assert store.read() == make_state(4, resources=1)


@pytest.mark.parametrize("expected", [0, 1, 3])
def test_a_write_expecting_another_serial_is_refused_and_changes_nothing(store, expected):
    store.write(make_state(1), 0)
    store.write(make_state(2), 1)
    with pytest.raises(StateConflictError) as caught:
        store.write(make_state(expected + 1, resources=5), expected)
    assert isinstance(caught.value, StateError)
    assert (caught.value.expected_serial, caught.value.stored_serial) == (expected, 2)
    assert store.read() == make_state(2)


def test_the_lineage_is_kept_and_a_state_of_another_lineage_is_not_written_over_it(store):
    store.write(make_state(1, lineage="L-1"), 0)
    assert store.read().lineage == "L-1"
    with pytest.raises(StateConflictError):
        store.write(make_state(2, lineage="L-2"), 1)
    assert store.read().lineage == "L-1"


def test_of_two_writers_that_read_the_same_serial_one_wins(store):
    store.write(make_state(1), 0)
    results: list[str] = []
    barrier = threading.Barrier(4)

    def writer(index: int) -> None:
        barrier.wait()
        try:
            store.write(make_state(2, resources=index + 1), 1)
            results.append(f"wrote {index}")
        except StateConflictError:
            results.append("refused")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results)[:3] == ["refused"] * 3 and results.count("refused") == 3
    winner = int(next(r for r in results if r.startswith("wrote")).split()[1])
    assert store.read() == make_state(2, resources=winner + 1)


# --- StateLocker -------------------------------------------------------------------------


def test_a_lock_names_its_holder_while_held_and_is_free_after(locker):
    assert not locker.is_locked() and locker.holder() is None
    with locker.lock("apply") as lock_id:
        holder = locker.holder()
        assert locker.is_locked()
        assert (holder["id"], holder["command"]) == (lock_id, "apply")
        assert {"host", "pid", "started"} <= set(holder)
    assert not locker.is_locked() and locker.holder() is None


def test_the_lock_is_exclusive_and_the_refusal_names_the_holder(locker):
    with locker.lock("apply") as lock_id:
        started = time.monotonic()
        with pytest.raises(StateLockedError) as caught:
            with locker.lock("destroy", timeout=0):
                pytest.fail("two holders at once")
        assert time.monotonic() - started < 1.0
        assert "locked by apply" in str(caught.value) and lock_id in str(caught.value)


def test_a_timeout_waits_that_long_for_the_lock(locker):
    with locker.lock("apply"):
        started = time.monotonic()
        with pytest.raises(StateLockedError):
            with locker.lock("destroy", timeout=0.5):
                pass
        assert time.monotonic() - started >= 0.5


def test_a_waiter_gets_the_lock_when_it_is_released(locker):
    order: list[str] = []
    held = threading.Event()

    def first() -> None:
        with locker.lock("apply"):
            held.set()
            time.sleep(0.5)
            order.append("first released")

    thread = threading.Thread(target=first)
    thread.start()
    held.wait()
    with locker.lock("destroy", timeout=10) as lock_id:
        order.append("second in")
        assert locker.holder()["id"] == lock_id
    thread.join()
    assert order == ["first released", "second in"]


def test_release_lets_the_next_in_at_once(locker):
    with locker.lock("apply") as first:
        pass
    with locker.lock("apply", timeout=0) as second:
        assert second != first


def test_unlock_refuses_another_id_and_a_free_lock(locker):
    with pytest.raises(StateError, match="not locked"):
        locker.unlock("nothing")
    with locker.lock("apply") as lock_id:
        with pytest.raises(StateError, match=f"does not match the lock held: {lock_id}"):
            locker.unlock("another")
        assert locker.holder()["id"] == lock_id


def test_unlock_refuses_a_holder_alive_here_unless_forced(locker):
    with locker.lock("apply") as lock_id:
        with pytest.raises(StateError, match="held by a running process"):
            locker.unlock(lock_id)
        assert locker.holder()["id"] == lock_id
        assert locker.unlock(lock_id, force=True)["id"] == lock_id
        assert locker.holder() is None
        with locker.lock("plan", timeout=0) as second:      # the next command gets in
            assert locker.holder()["id"] == second
