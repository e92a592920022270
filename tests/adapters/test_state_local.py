"""What the local file store and the OS locker promise beyond the contract suite."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from qrvey_iac.adapters.state import lock as lock_module
from qrvey_iac.adapters.state.local import LocalStateStore
from qrvey_iac.adapters.state.lock import LocalLocker
from qrvey_iac.core.errors import StateError, StateLockedError
from qrvey_iac.core.state import State

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
