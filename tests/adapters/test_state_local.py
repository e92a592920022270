"""What the local file store and the OS locker promise beyond the contract suite."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from qrvey_iac.adapters.state import local as local_module
from qrvey_iac.adapters.state import lock as lock_module
from qrvey_iac.adapters.state.codec import decode
from qrvey_iac.adapters.state.local import LocalStateStore
from qrvey_iac.adapters.state.lock import LocalLocker
from qrvey_iac.core.errors import StateConflictError, StateError, StateLockedError, StateWriteError
from qrvey_iac.core.state import STATE_VERSION, JournalDetail, JournalEntry, ResourceState, State

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from qrvey_iac.adapters.state.lock import LocalLocker
    with LocalLocker(Path(sys.argv[1])).lock("apply") as lock_id:
        print(lock_id, flush=True)
        time.sleep(600)
""")
COUNTER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from qrvey_iac.adapters.state.lock import LocalLocker
    state, rounds = Path(sys.argv[1]), int(sys.argv[2])
    counter = state.with_name("counter")
    for _ in range(rounds):
        with LocalLocker(state).lock("count", timeout=60):
            value = int(counter.read_text()) if counter.exists() else 0
            counter.write_text(str(value + 1))
""")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_state_and_its_backup_are_mode_0600_and_the_backup_is_the_file_before_the_command(tmp_path):
    path = tmp_path / "local.json"
    LocalStateStore(path).write(State(lineage="L", serial=1), 0)
    first = path.read_bytes()
    store = LocalStateStore(path)            # the next command
    store.write(State(lineage="L", serial=2), 1)
    store.write(State(lineage="L", serial=3), 2)
    assert path.with_name("local.json.backup").read_bytes() == first
    assert mode(path) == mode(path.with_name("local.json.backup")) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local.json", "local.json.backup"]   # no temp left


def test_a_symlinked_state_is_written_through_the_link_and_locked_at_its_target(tmp_path):
    real = tmp_path / "shared" / "prod.json"
    real.parent.mkdir()
    link = tmp_path / "prod.json"
    link.symlink_to(real)
    LocalStateStore(link).write(State(lineage="L", serial=1), 0)
    LocalStateStore(link).write(State(lineage="L", serial=2), 1)     # a second command: a backup
    assert link.is_symlink() and json.loads(real.read_text())["serial"] == 2
    assert real.with_name("prod.json.backup").exists()
    with LocalLocker(link).lock("apply"):
        assert real.with_name("prod.json.lock").exists() and not tmp_path.joinpath("prod.json.lock").exists()
        with pytest.raises(StateLockedError):
            with LocalLocker(real).lock("apply"):   # the same state by its other name
                pass


def test_a_state_removed_behind_the_writers_back_is_a_conflict(tmp_path):
    store = LocalStateStore(tmp_path / "local.json")
    store.write(State(lineage="L", serial=1), 0)
    (tmp_path / "local.json").unlink()
    with pytest.raises(StateError, match="changed by another writer .*it is gone or unreadable"):
        store.write(State(lineage="L", serial=2), 1)


def test_a_sigkilled_holder_leaves_a_lock_the_next_one_takes_without_unlock(tmp_path):
    state = tmp_path / "state" / "local.json"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(state)], stdout=subprocess.PIPE, text=True)
    lock_id = holder.stdout.readline().strip()
    locker = LocalLocker(state)
    with pytest.raises(StateLockedError, match=f"locked by apply \\(pid {holder.pid} on .*lock id {lock_id}\\)"):
        with locker.lock("plan"):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert json.loads(state.with_name("local.json.lock").read_text())["id"] == lock_id   # its file is left
    assert locker.holder() is None and not locker.is_locked()                             # its lock is not
    with locker.lock("apply", timeout=0) as taken:
        assert locker.holder()["id"] == taken
    assert not state.with_name("local.json.lock").exists()


def test_processes_taking_turns_never_hold_the_lock_together(tmp_path):
    """The lock file is removed on each release while others wait on it: the inode check
    keeps them from taking a removed file's lock (a lost increment would show it)."""
    state = tmp_path / "state" / "local.json"
    workers = [subprocess.Popen([sys.executable, "-c", COUNTER, str(state), "40"]) for _ in range(4)]
    assert [w.wait(timeout=120) for w in workers] == [0, 0, 0, 0]
    assert state.with_name("counter").read_text() == "160"


def test_unlock_refuses_a_holder_alive_on_this_host(tmp_path):
    locker = LocalLocker(tmp_path / "local.json")
    with locker.lock("apply") as lock_id:
        with pytest.raises(StateError, match="is held by a running process .*let it finish or stop it"):
            locker.unlock(lock_id)
        assert locker.holder()["id"] == lock_id


def test_unlock_refuses_a_live_holder_here_without_an_os_lock_unless_forced(tmp_path):
    """A lock file as a release before OS locks wrote it (no flock, no ``lock`` field), its
    pid alive on this host: the OS cannot vouch for it, its pid does."""
    state = tmp_path / "local.json"
    lock = tmp_path / "local.json.lock"
    lock.write_text(json.dumps({"id": "L1", "host": socket.gethostname(), "pid": os.getpid(),
                                "command": "apply", "started": "2026-01-01T00:00:00+00:00"}))
    locker = LocalLocker(state)
    with pytest.raises(StateError, match=f"held by a running process \\(pid {os.getpid()} .*--force"):
        locker.unlock("L1")
    assert lock.exists()
    assert locker.unlock("L1", force=True)["id"] == "L1"
    assert not lock.exists()


def test_the_holder_names_its_ci_run(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    locker = LocalLocker(tmp_path / "local.json")
    with locker.lock("apply"):
        assert locker.holder()["ci_run"] == "4242"
        with pytest.raises(StateLockedError, match=r"pass --lock-timeout to wait\. It runs in CI run 4242\.$"):
            with locker.lock("apply"):
                pass


def test_without_fcntl_locking_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module, "fcntl", None)
    with pytest.raises(StateError, match=r"needs POSIX file locks \(fcntl\)"):
        with LocalLocker(tmp_path / "local.json").lock("apply"):
            pass
    assert not os.path.exists(tmp_path / "local.json.lock")


# --- the write-ahead sidecar -------------------------------------------------------------

ENTRY = JournalEntry(id="j1", op="create", address="dataset.new", datasetId="id-new", appId="a", userId="u",
                     detail=JournalDetail(kind="Dataset", applied_hash="h"))


def resource(i: int, applied_hash: str = "h") -> ResourceState:
    return ResourceState(kind="Dataset", datasetId=f"id-{i}", appId="a", userId="u", applied_hash=applied_hash)


def step(state: State, *, add: int | None = None, drop: str | None = None, journal=(ENTRY,)) -> State:
    """The next state as the engine makes it: one resource more or less, the journal given."""
    if add is not None:
        state = state.with_resource(f"dataset.d{add}", resource(add))
    if drop is not None:
        state = state.without_resource(drop)
    return state.model_copy(update={"journal": tuple(journal), "serial": state.serial + 1})


def fingerprint(path: Path) -> tuple:
    info = path.stat()
    return info.st_ino, info.st_mtime_ns, path.read_bytes()


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.with_name(path.name + ".wal").read_bytes().splitlines()]


def started(tmp_path: Path, resources: int = 3) -> tuple[LocalStateStore, State]:
    """A store that wrote a whole state with a pending journal (the first write of a command)."""
    store = LocalStateStore(tmp_path / "local.json")
    state = State(lineage="L", serial=1, resources={f"dataset.d{i}": resource(i) for i in range(resources)},
                  journal=(ENTRY,))
    store.write(state, 0)
    return store, state


def test_while_the_journal_is_pending_writes_are_appended_and_the_file_is_not_rewritten(tmp_path):
    store, state = started(tmp_path)
    path = tmp_path / "local.json"
    before = fingerprint(path)
    states = [state]
    for i in range(3, 6):
        states.append(step(states[-1], add=i))
        store.write(states[-1], states[-2].serial)
    states.append(step(states[-1], drop="dataset.d0"))
    store.write(states[-1], states[-2].serial)
    assert fingerprint(path) == before
    wal = lines(path)
    assert [(d["base"], d["serial"]) for d in wal] == [(1, 2), (1, 3), (1, 4), (1, 5)]
    assert list(wal[0]["set"]) == ["dataset.d3"] and wal[0]["removed"] == []     # only what changed
    assert wal[3]["set"] == {} and wal[3]["removed"] == ["dataset.d0"]
    assert wal[3]["journal"] == [ENTRY.model_dump(mode="json")]
    assert b" " not in path.with_name("local.json.wal").read_bytes()[:40]         # compact, not indented
    assert LocalStateStore(path).read() == states[-1]
    assert mode(path.with_name("local.json.wal")) == 0o600


def test_a_write_with_an_empty_journal_writes_the_whole_file_and_removes_the_sidecar(tmp_path):
    store, state = started(tmp_path)
    path = tmp_path / "local.json"
    second = step(state, add=7)
    store.write(second, 1)
    assert path.with_name("local.json.wal").exists()
    done = step(second, add=8, journal=())
    store.write(done, 2)
    assert not path.with_name("local.json.wal").exists()
    assert decode(path.read_text(), "s") == done == LocalStateStore(path).read()
    assert json.loads(path.read_text())["version"] == STATE_VERSION == 5


def test_a_long_sidecar_is_folded_into_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(local_module, "WAL_MAX_LINES", 2)
    store, state = started(tmp_path)
    path = tmp_path / "local.json"
    states = [state]
    for i in range(10, 13):
        states.append(step(states[-1], add=i))
        store.write(states[-1], states[-2].serial)
    assert json.loads(path.read_text())["serial"] == 4          # the third append was a whole write
    assert not path.with_name("local.json.wal").exists()
    states.append(step(states[-1], add=13))
    store.write(states[-1], states[-2].serial)
    assert [(d["base"], d["serial"]) for d in lines(path)] == [(4, 5)]
    assert LocalStateStore(path).read() == states[-1]


def test_a_torn_last_line_is_a_write_that_never_returned_and_is_ignored(tmp_path):
    store, state = started(tmp_path)
    path = tmp_path / "local.json"
    second = step(state, add=5)
    store.write(second, 1)
    third = step(second, add=6)
    store.write(third, 2)
    wal = path.with_name("local.json.wal")
    text = wal.read_bytes()
    last = text[text.rindex(b"\n", 0, len(text) - 1) + 1:]
    for cut in (len(last) - 1, len(last) // 2, 1):          # without its newline, half, a byte
        wal.write_bytes(text[: len(text) - len(last)] + last[:cut])
        assert LocalStateStore(path).read() == second
    wal.write_bytes(text[: len(text) - len(last)] + b'{"base": 1, "ser\n' + last)   # nothing after it counts
    assert LocalStateStore(path).read() == second


def test_a_crash_between_appends_reads_back_the_last_complete_one(tmp_path):
    path = tmp_path / "state" / "local.json"
    writer = textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from qrvey_iac.adapters.state.local import LocalStateStore
        from qrvey_iac.core.state import JournalDetail, JournalEntry, ResourceState, State
        store = LocalStateStore(Path(sys.argv[1]))
        entry = JournalEntry(id="j1", op="create", address="dataset.new", appId="a", userId="u",
                             detail=JournalDetail(kind="Dataset"))
        state = State(lineage="L", serial=1, journal=(entry,))
        store.write(state, 0)
        for i in range(3):
            state = state.with_resource(f"dataset.d{i}", ResourceState(kind="Dataset", datasetId=str(i),
                                                                       appId="a", userId="u"))
            state = state.model_copy(update={"serial": state.serial + 1})
            store.write(state, state.serial - 1)
        print(state.serial, flush=True)
        time.sleep(600)
    """)
    process = subprocess.Popen([sys.executable, "-c", writer, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "4"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    state = LocalStateStore(path).read()
    assert (state.serial, sorted(state.resources), [e.id for e in state.journal]) == (
        4, ["dataset.d0", "dataset.d1", "dataset.d2"], ["j1"])
    assert json.loads(path.read_text())["serial"] == 1                      # the file is still the first write
    store = LocalStateStore(path)                                           # the next command
    store.write(state.model_copy(update={"serial": 5, "journal": ()}), 4)   # expects the sidecar's serial
    assert not path.with_name("local.json.wal").exists()
    assert decode(path.with_name("local.json.backup").read_text(), "b") == state   # the backup has the lines


def test_lines_of_another_base_or_lineage_are_left_over_and_ignored(tmp_path):
    store, state = started(tmp_path)
    path = tmp_path / "local.json"
    wal = path.with_name("local.json.wal")
    second = step(state, add=5)
    store.write(second, 1)
    kept = wal.read_bytes()
    leftover = json.dumps({"lineage": "L", "base": 0, "serial": 1, "set": {}, "removed": ["dataset.d1"],
                           "journal": []}).encode() + b"\n"
    stranger = json.dumps({"lineage": "other", "base": 1, "serial": 2, "set": {}, "removed": ["dataset.d1"],
                           "journal": []}).encode() + b"\n"
    wal.write_bytes(leftover + stranger + kept)
    assert LocalStateStore(path).read() == second
    # a whole write that completed just before a crash leaves the sidecar of the file before it
    whole = LocalStateStore(path)
    third = step(second, add=6)
    whole.write(third, 2)
    wal.write_bytes(kept)                                   # as if the crash came before the sidecar's removal
    assert LocalStateStore(path).read() == third
    fourth = step(third, add=7)
    whole.write(fourth, 3)                                  # the next line replaces the leftovers
    assert [(d["base"], d["serial"]) for d in lines(path)] == [(3, 4)]
    assert LocalStateStore(path).read() == fourth


def test_a_line_that_does_not_follow_ends_the_lines(tmp_path):
    store, state = started(tmp_path)
    path = tmp_path / "local.json"
    second = step(state, add=5)
    store.write(second, 1)
    wal = path.with_name("local.json.wal")
    skipped = json.dumps({"lineage": "L", "base": 1, "serial": 4, "set": {}, "removed": ["dataset.d1"],
                          "journal": []}).encode() + b"\n"
    wal.write_bytes(wal.read_bytes() + skipped)
    assert LocalStateStore(path).read() == second


@pytest.mark.parametrize("last", ["delta", "whole"])
def test_a_stale_expected_serial_is_refused_after_a_delta_and_after_a_whole_write(tmp_path, last):
    store, state = started(tmp_path)
    path = tmp_path / "local.json"
    second = step(state, add=5)
    store.write(second, 1)
    third = step(second, add=6, journal=(ENTRY,) if last == "delta" else ())
    store.write(third, 2)
    assert path.with_name("local.json.wal").exists() == (last == "delta")
    def files() -> list:
        return sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir() if not p.name.endswith(".backup"))

    before = files()
    for writer in (store, LocalStateStore(path)):           # this command, and another one
        for expected in (1, 2, 4):
            with pytest.raises(StateConflictError) as caught:
                writer.write(step(third, add=9).model_copy(update={"serial": expected + 1}), expected)
            assert (caught.value.expected_serial, caught.value.stored_serial) == (expected, 3)
    assert files() == before
    assert LocalStateStore(path).read() == third
    fourth = step(third, add=7)
    store.write(fourth, 3)
    assert LocalStateStore(path).read() == fourth


def test_a_state_written_by_another_writer_meanwhile_is_seen_by_the_next_append(tmp_path):
    store, state = started(tmp_path)
    path = tmp_path / "local.json"
    second = step(state, add=5)
    store.write(second, 1)
    other = LocalStateStore(path)                          # without the lock, reading the sidecar
    other.write(step(other.read(), add=6), 2)
    with pytest.raises(StateConflictError) as caught:
        store.write(step(second, add=7), 2)
    assert caught.value.stored_serial == 3


def test_a_failed_append_leaves_no_line_and_the_next_write_is_whole(tmp_path, monkeypatch):
    store, state = started(tmp_path)
    path = tmp_path / "local.json"
    second = step(state, add=5)
    store.write(second, 1)
    wal = path.with_name("local.json.wal")
    kept = wal.read_bytes()
    real_write = os.write

    def torn(fd, data):
        real_write(fd, bytes(data[:10]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local_module.os, "write", torn)
    third = step(second, add=6)
    with pytest.raises(StateWriteError, match=f"cannot write the state file {path} \\(No space left on device"):
        store.write(third, 2)                               # the store names the file, not a bare OSError
    monkeypatch.undo()
    assert wal.read_bytes() == kept and LocalStateStore(path).read() == second
    store.write(third, 2)                                   # the engine retries with the same expectation
    assert not wal.exists() and LocalStateStore(path).read() == third


def test_a_line_with_an_invalid_resource_is_refused_like_the_file(tmp_path):
    store, state = started(tmp_path)
    path = tmp_path / "local.json"
    store.write(step(state, add=5), 1)
    wal = path.with_name("local.json.wal")
    head, _, tail = wal.read_bytes().rpartition(b'"kind":"Dataset"')      # in "set", the line's last key
    wal.write_bytes(head + b'"kind":"Widget"' + tail)
    with pytest.raises(StateError, match=r"local\.json \(with 1 write\(s\) from .*local\.json\.wal\) is invalid at "
                                         r"resources\.dataset\.d5\.kind"):
        LocalStateStore(path).read()
