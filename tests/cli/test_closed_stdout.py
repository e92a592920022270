"""A reader of stdout that goes away (``qrvey-iac state list | head``) ends the command with
exit code 1 and nothing on stderr: no ``Error: internal error: BrokenPipeError`` from the
error boundary, no traceback from the interpreter's flush at exit (the CLI exits normally)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from workload import write_config, write_manifests  # noqa: E402


@pytest.mark.parametrize("command", [
    ["--version"],                     # click's own option
    ["schema"],                        # a command without the error boundary
    ["validate", "--config", "{config}"],   # one with it: BrokenPipeError is not an internal error
])
def test_a_closed_stdout_ends_the_command_quietly(tmp_path, command):
    write_manifests(tmp_path, 2, with_views=False)
    config = write_config(tmp_path, "local", None, 2)
    read_end, write_end = os.pipe()
    os.close(read_end)                  # nobody reads: every write gets EPIPE
    try:
        done = subprocess.run([sys.executable, "-m", "qrvey_iac", *(a.format(config=config) for a in command)],
                              stdout=write_end, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=60)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr.decode()) == (1, "")


def test_state_list_piped_into_head_ends_quietly(project):
    """``qrvey-iac state list | head -1`` on a state far larger than a pipe's buffer: the reader
    takes one line and goes away while the command is still writing."""
    from qrvey_iac.adapters.state.local import LocalStateStore

    assert project.run("apply", "--auto-approve").exit_code == 0
    store = LocalStateStore(project.state_path)
    current = store.read()
    recorded = current.resources["dataset.orders"]
    grown = current
    for index in range(3000):
        grown = grown.with_resource(f"dataset.copy-{index}", recorded)
    store.write(grown.bumped(), current.serial)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = subprocess.Popen([sys.executable, "-m", "qrvey_iac", "state", "list"], cwd=project.root, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    first = command.stdout.readline()
    command.stdout.close()              # as head does after its line
    stderr = command.stderr.read().decode()
    assert command.wait(timeout=60) == 1
    assert first.startswith(b"connection.warehouse\t") and stderr == ""
