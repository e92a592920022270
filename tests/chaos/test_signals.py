"""SIGTERM and SIGINT (what CI cancellation sends) during apply, on real processes.

The emulator serves over HTTP with every dataset create held for a while, so the signal
lands while creates are in flight. A stopped apply must start nothing new, let the calls in
flight finish and record them, save the state whole (no sidecar, no journal), release its
lock and exit 128 + the signal's number with the usual report.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chaos_harness import Emulator, Project, check_invariants, wait_for

from qrvey_iac.adapters import yaml_worker
from qrvey_iac.adapters.state.local import LocalStateStore

HELD = "POST /qollect/dataset: latency=1500ms"



def journaled_creates(project: Project) -> int:
    if not project.state_path.exists():
        return 0
    return sum(e.op == "create" for e in LocalStateStore(project.state_path).read().journal)


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_apply_finishes_the_calls_in_flight_and_leaves_no_lock_and_a_whole_state(
        tmp_path, signum, code):
    with Emulator(tmp_path / "world.json", HELD) as emulator:
        project = Project(tmp_path / "project", emulator)
        process = project.start("apply", "--auto-approve")
        in_flight = wait_for(lambda: journaled_creates(project))       # journaled, then sent: held by the server
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == code, stderr
        assert "Traceback" not in stderr
        name = signal.Signals(signum).name
        assert f"received {name}: letting the calls in flight finish and starting no new one" in stderr
        assert (f"Error: apply stopped by {name}: the calls in flight were let finish; no new call was started"
                in stderr), stderr
        assert "done and recorded in state: " in stderr and "not started: " in stderr
        assert "create:view.orders-emea" in stderr.split("not started: ", 1)[1]     # views wait for datasets
        # the lock is released and its file removed, as after any command that ends
        assert project.lock_holder() is None
        assert not project.state_path.with_name(project.state_path.name + ".lock").exists()
        # the state file alone is the state: no sidecar, nothing pending; the creates that were
        # in flight finished and are recorded, and Qrvey holds nothing the state does not know
        assert not project.state_path.with_name(project.state_path.name + ".wal").exists()
        state = LocalStateStore(project.state_path).read()
        assert state.journal == ()
        datasets = [a for a in state.resources if a.startswith("dataset.")]
        assert len(datasets) >= in_flight and not any(a.startswith("view.") for a in state.resources)
        findings = check_invariants(project)
        assert findings.ok, findings
        # the next apply needs no unlock and no repair: it finishes the rest
        rerun = project.run("apply", "--auto-approve")
        assert rerun.code == 0, rerun.stderr
        assert project.run("plan", "--detailed-exitcode").code == 0
        assert check_invariants(project).ok


def test_a_signal_before_any_change_stops_at_once_and_changes_nothing(tmp_path):
    """While apply only reads (here: the refresh, held by the server), a signal cancels it."""
    # the first apply GETs once (the empty state's API key check); the second GET is the second
    # apply's refresh, the one held (were it not, that apply would end with exit 0, not 143)
    with Emulator(tmp_path / "world.json", "GET /qollect/dataset/*: latency=30s@every=2") as emulator:
        project = Project(tmp_path / "project", emulator)
        first = project.run("apply", "--auto-approve", "--target", "dataset.orders")
        assert first.code == 0, first.stderr
        serial = LocalStateStore(project.state_path).read().serial
        process = project.start("apply", "--auto-approve")
        # the lock is taken inside the run, after the signal handlers are in place (a signal
        # while Python is still importing kills it the default way, before it did anything)
        wait_for(lambda: project.lock_holder() is not None)
        time.sleep(0.5)                                                 # refreshing: the GET is held
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
        assert time.monotonic() - started < 10                         # not after the 30 s read
        assert process.returncode == 143, stderr
        assert "Error: interrupted by SIGTERM while only reading; nothing was being changed in Qrvey" in stderr
        assert "Traceback" not in stderr
        assert project.lock_holder() is None
        assert not project.state_path.with_name(project.state_path.name + ".lock").exists()
        assert LocalStateStore(project.state_path).read().serial == serial


def test_a_signal_at_the_confirmation_question_cancels_the_apply(example_dir):
    """The question blocks in input(): the signal must interrupt the prompt itself."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "qrvey_iac", "apply"], cwd=example_dir,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (example_dir / "state" / "local.json.lock").exists())
        time.sleep(1.0)                                                 # at the question
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)                 # stdin stays open: no end of input answers for it
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read()
    process.stdin.close()
    assert process.returncode == 1, stderr
    assert "Error: apply cancelled: nothing was changed" in stderr
    assert not (example_dir / "state" / "local.json.lock").exists()
    assert not (example_dir / "state" / "local.json").exists()


def _large_project(root: Path, datasets: int = 700) -> None:
    """An embedded-emulator project whose manifests pass yaml_worker.WORKER_FROM_BYTES."""
    (root / "manifests").mkdir(parents=True)
    (root / "qrvey-iac.yaml").write_text(
        "manifests: manifests\ndefaultEnvironment: dev\nenvironments:\n  dev:\n    endpoint: local\n"
        "    apps:\n      sales: {userId: u-1, appId: a-1}\n    state: {path: state/dev.json}\n")
    columns = "\n".join(f"    - {{columnName: Column{k:02d}, columnType: STRING}}" for k in range(30))
    documents = [f"apiVersion: qrvey-iac/v1\nkind: Dataset\nmetadata: {{name: ds-{i:04d}}}\nspec:\n  app: sales\n"
                 f"  name: Dataset {i}\n  datasources:\n    - {{name: Main, connectionId: conn-1, "
                 f"connectorType: MSSQL_LIVE, tableName: table_{i}}}\n  columns:\n{columns}\n"
                 for i in range(datasets)]
    for start in range(0, datasets, 100):
        (root / "manifests" / f"part-{start:04d}.yaml").write_text("---\n".join(documents[start:start + 100]))
    assert sum(p.stat().st_size for p in (root / "manifests").iterdir()) >= yaml_worker.WORKER_FROM_BYTES


def _children(pid: int, matching: str) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid), "-f", matching], capture_output=True, text=True).stdout
    return [int(child) for child in found.split()]


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_while_the_yaml_worker_parses_stops_it_and_the_command_says_only_why(tmp_path, signum, code):
    _large_project(tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "qrvey_iac", "plan"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    worker = wait_for(lambda: _children(process.pid, "qrvey_iac.adapters.yaml_worker"))[0]
    time.sleep(0.05)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert f"Error: interrupted by {signal.Signals(signum).name} while only reading" in stderr
    assert "Traceback" not in stderr and "never retrieved" not in stderr, stderr
    assert not Path(f"/proc/{worker}").exists()        # killed and reaped
