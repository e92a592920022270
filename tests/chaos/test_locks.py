"""The state lock when its holder dies: reported stale, broken only by `state unlock ID`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from qrvey_iac.cli import cli

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from qrvey_iac.adapters.state_store import LocalStateStore
    with LocalStateStore(Path(sys.argv[1])).lock("apply") as lock_id:
        print(lock_id, flush=True)
        time.sleep(600)
""")


@pytest.fixture
def project(example_dir) -> Path:
    return example_dir


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_a_sigkilled_holder_is_reported_stale_and_unlock_breaks_it(project):
    state = project / "state" / "local.json"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(state)], stdout=subprocess.PIPE, text=True)
    try:
        lock_id = holder.stdout.readline().strip()
        held = run("apply", "--auto-approve")
        assert held.exit_code == 1
        assert f"lock id {lock_id}). Wait for it to finish, or pass --lock-timeout to wait." in held.stderr
        assert "stale" not in held.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    started = json.loads(state.with_name("local.json.lock").read_text())["started"]
    stale = run("apply", "--auto-approve")
    assert stale.exit_code == 1
    assert stale.stderr == (
        f"Error: state {Path('state/local.json')} is locked by apply (pid {holder.pid} on {socket.gethostname()}, "
        f"since {started}, lock id {lock_id}). That process is gone: the lock is stale; run "
        f"`qrvey-iac state unlock {lock_id}` to break it.\n")
    assert not state.exists()                                  # nothing ran
    wrong = run("state", "unlock", "not-the-lock")
    assert wrong.exit_code == 1
    assert f"lock id not-the-lock does not match the lock held: {lock_id}" in wrong.stderr
    broken = run("state", "unlock", lock_id)
    assert broken.exit_code == 0, broken.output
    assert broken.stdout == (f"Unlocked: the lock of apply (pid {holder.pid} on {socket.gethostname()}) "
                             "is broken.\n")
    assert not state.with_name("local.json.lock").exists()
    assert run("apply", "--auto-approve").exit_code == 0
    again = run("state", "unlock", lock_id)
    assert again.exit_code == 1 and "is not locked" in again.stderr


def test_a_holder_on_another_host_is_never_called_stale(project):
    lock = project / "state" / "local.json.lock"
    lock.parent.mkdir()
    lock.write_text(json.dumps({"id": "L1", "host": "build-agent-7", "pid": 2 ** 22 + 1, "command": "apply",
                                "started": "2026-01-01T00:00:00+00:00"}))
    result = run("plan")
    assert result.exit_code == 1
    assert "(pid 4194305 on build-agent-7, since 2026-01-01T00:00:00+00:00, lock id L1). Wait for it" in result.stderr
    assert "stale" not in result.stderr
    assert run("state", "unlock", "L1").exit_code == 0
    assert run("plan").exit_code == 0


def test_a_dead_local_pid_is_stale_even_when_the_lock_file_is_old(project):
    lock = project / "state" / "local.json.lock"
    lock.parent.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"id": "L2", "host": socket.gethostname(), "pid": dead.pid, "command": "destroy",
                                "started": "2026-01-01T00:00:00+00:00"}))
    assert os.path.exists(lock)
    result = run("destroy", "--auto-approve")
    assert result.exit_code == 1
    assert "That process is gone: the lock is stale; run `qrvey-iac state unlock L2` to break it." in result.stderr


def test_a_manifest_mistake_is_reported_at_once_while_another_command_holds_the_lock(project):
    state = project / "state" / "local.json"
    (project / "manifests" / "broken.yaml").write_text(
        "apiVersion: qrvey-iac/v1\nkind: Dataset\nmetadata: {name: b}\nspec: {app: sales, nme: x}\n")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(state)], stdout=subprocess.PIPE, text=True)
    try:
        holder.stdout.readline()
        result = run("plan", "--lock-timeout", "10m")       # would wait ten minutes for the lock first
        assert result.exit_code == 1
        assert result.stderr.startswith("Error: manifests/broken.yaml:4: spec"), result.stderr
        assert "locked" not in result.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
