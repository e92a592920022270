"""The state lock when its holder dies: released by the OS, so the next command proceeds."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from qrvey_iac.cli import cli

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from qrvey_iac.adapters.state.lock import LocalLocker
    with LocalLocker(Path(sys.argv[1])).lock("apply") as lock_id:
        print(lock_id, flush=True)
        time.sleep(600)
""")


@pytest.fixture
def project(example_dir) -> Path:
    return example_dir


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def start_holder(state: Path) -> tuple[subprocess.Popen, str]:
    """A separate process holding the state's lock (as an apply would); and its lock id."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(state)], stdout=subprocess.PIPE, text=True)
    return holder, holder.stdout.readline().strip()


def killed(holder: subprocess.Popen) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait()


def test_a_sigkilled_holder_leaves_no_lock_and_the_next_command_proceeds_without_unlock(project):
    state = project / "state" / "local.json"
    holder, lock_id = start_holder(state)
    try:
        held = run("apply", "--auto-approve")
        assert held.exit_code == 1
        assert held.stderr == (
            f"Error: state {Path('state/local.json')} is locked by apply (pid {holder.pid} on {socket.gethostname()}, "
            f"since {json.loads(state.with_name('local.json.lock').read_text())['started']}, lock id {lock_id}). "
            "Wait for it to finish, or pass --lock-timeout to wait.\n")
        refused = run("state", "unlock", lock_id)         # alive here: stopping it is how its lock goes
        assert refused.exit_code == 1
        assert "is held by a running process" in refused.stderr
    finally:
        killed(holder)
    assert state.with_name("local.json.lock").exists()           # the dead holder's file is left...
    applied = run("apply", "--auto-approve")                      # ...but not its lock: no unlock needed
    assert applied.exit_code == 0, applied.output
    assert not state.with_name("local.json.lock").exists()
    again = run("state", "unlock", lock_id)
    assert again.exit_code == 1 and "is not locked" in again.stderr


def test_unlock_force_breaks_the_lock_of_a_holder_alive_here(project):
    state = project / "state" / "local.json"
    holder, lock_id = start_holder(state)
    try:
        refused = run("state", "unlock", lock_id)
        assert refused.exit_code == 1
        assert f"`qrvey-iac state unlock {lock_id} --force` breaks it anyway" in refused.stderr
        assert state.with_name("local.json.lock").exists()
        forced = run("state", "unlock", lock_id, "--force")
        assert forced.exit_code == 0, forced.output
        assert forced.stdout == f"Unlocked: the lock of apply (pid {holder.pid} on {socket.gethostname()}) is broken.\n"
        assert not state.with_name("local.json.lock").exists()
        assert run("apply", "--auto-approve").exit_code == 0   # the next command gets in while the holder runs
    finally:
        killed(holder)


def test_a_waiting_command_gets_the_lock_when_its_holder_is_killed(project):
    state = project / "state" / "local.json"
    holder, _ = start_holder(state)
    try:
        waiting = subprocess.Popen([sys.executable, "-m", "qrvey_iac", "apply", "--auto-approve", "--lock-timeout", "1m"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert waiting.poll() is None                              # it waits for the lock
    finally:
        killed(holder)
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    assert json.loads(state.read_text())["resources"]


def test_a_holder_on_another_host_is_never_taken_over_and_unlock_breaks_it(project):
    lock = project / "state" / "local.json.lock"
    lock.parent.mkdir()
    lock.write_text(json.dumps({"id": "L1", "host": "build-agent-7", "pid": 2 ** 22 + 1, "command": "apply",
                                "started": "2026-01-01T00:00:00+00:00", "lock": "flock"}))
    result = run("apply", "--auto-approve")
    assert result.exit_code == 1
    assert "(pid 4194305 on build-agent-7, since 2026-01-01T00:00:00+00:00, lock id L1). Wait for it" in result.stderr
    assert ("If it is no longer running on build-agent-7, run `qrvey-iac state unlock L1` to break its lock."
            in result.stderr)
    assert run("state", "unlock", "L2").stderr.startswith("Error: lock id L2 does not match the lock held: L1")
    unlocked = run("state", "unlock", "L1")
    assert unlocked.exit_code == 0
    assert unlocked.stdout == "Unlocked: the lock of apply (pid 4194305 on build-agent-7) is broken.\n"
    assert run("apply", "--auto-approve").exit_code == 0


def test_a_lock_file_of_a_dead_process_here_does_not_block(project):
    """As a release before OS locks left it: a lock file alone, its pid gone."""
    lock = project / "state" / "local.json.lock"
    lock.parent.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"id": "L2", "host": socket.gethostname(), "pid": dead.pid, "command": "destroy",
                                "started": "2026-01-01T00:00:00+00:00"}))
    result = run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert not lock.exists()


def test_a_live_holder_of_a_release_before_os_locks_is_respected(project):
    """Such a holder has no flock for us to find: its lock file and live pid are the lock."""
    lock = project / "state" / "local.json.lock"
    lock.parent.mkdir()
    lock.write_text(json.dumps({"id": "L3", "host": socket.gethostname(), "pid": os.getpid(), "command": "apply",
                                "started": "2026-01-01T00:00:00+00:00"}))
    result = run("apply", "--auto-approve")
    assert result.exit_code == 1
    assert f"is locked by apply (pid {os.getpid()} on {socket.gethostname()}" in result.stderr
    assert not (project / "state" / "local.json").exists()


def test_a_manifest_mistake_is_reported_at_once_while_another_command_holds_the_lock(project):
    state = project / "state" / "local.json"
    (project / "manifests" / "broken.yaml").write_text(
        "apiVersion: qrvey-iac/v1\nkind: Dataset\nmetadata: {name: b}\nspec: {app: sales, nme: x}\n")
    holder, _ = start_holder(state)
    try:
        result = run("apply", "--auto-approve", "--lock-timeout", "10m")   # would wait ten minutes for the lock
        assert result.exit_code == 1
        assert result.stderr.startswith("Error: manifests/broken.yaml:4: spec"), result.stderr
        assert "locked" not in result.stderr
    finally:
        killed(holder)
