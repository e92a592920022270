"""What the CLI says while and after it works: the closing line of destroy, lists in natural
order, waiting for the state lock, retries summarised."""

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from qrvey_iac.emulator import EmulatorConfig, parse_faults
from qrvey_iac.emulator.injector import FaultInjector
from qrvey_iac.emulator.testing import running_server
from tests.cli.test_core_loop import applied

REPO = Path(__file__).resolve().parents[2]


def test_destroy_ends_with_destroy_complete(project):
    applied(project)
    result = project.run("destroy", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert result.stdout.rstrip().endswith("Destroy complete! Resources: 11 destroyed.")
    assert "Apply complete!" not in result.output


def test_apply_still_ends_with_apply_complete(project):
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "Apply complete! Resources: 11 created, 0 updated, 0 replaced, 0 destroyed, 2 shared, 1 loaded." in result.stdout
    assert "Destroy complete!" not in result.output


def numbered_datasets(project, numbers):
    documents = []
    for n in numbers:
        documents.append(
            "apiVersion: qrvey-iac/v1\nkind: Dataset\n"
            f"metadata: {{name: ds-{n}}}\n"
            "spec:\n  app: sales\n"
            f"  name: DS {n}\n"
            "  datasources:\n"
            "    - {name: Main, connectionId: conn-warehouse, connectorType: MSSQL_LIVE, database: shop, "
            f"tableName: t{n}}}\n"
            "  columns:\n    - {columnName: Total, columnType: NUMBER}\n")
    project.manifest("numbered.yaml").write_text("---\n".join(documents))


def test_state_list_and_plan_sort_naturally(project):
    numbered_datasets(project, [10, 2, 1, 11, 3])
    expected = [f"dataset.ds-{n}" for n in (1, 2, 3, 10, 11)]
    planned = project.run("plan")
    assert planned.exit_code == 0, planned.output
    shown = [a for a in re.findall(r"# (\S+) will be created", planned.stdout) if a.startswith("dataset.ds-")]
    assert shown == expected
    assert project.run("apply", "--auto-approve").exit_code == 0
    listed = project.run("state", "list")
    assert listed.exit_code == 0, listed.output
    addresses = [line.split("\t")[0] for line in listed.stdout.splitlines()]
    assert [a for a in addresses if a.startswith("dataset.ds-")] == expected


def held_lock(project, seconds):
    """The state lock, taken by another holder (as apply) and released after ``seconds``."""
    from qrvey_iac.adapters.state.lock import LocalLocker

    taken = threading.Event()

    def hold():
        with LocalLocker(project.state_path).lock("apply"):
            taken.set()
            time.sleep(seconds)

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(5)
    return thread


def test_waiting_for_the_lock_says_so_and_names_the_holder(project):
    holder = held_lock(project, 0.8)
    try:
        result = project.run("apply", "--auto-approve", "--lock-timeout", "30s")
    finally:
        holder.join()
    assert result.exit_code == 0, result.output
    waiting = re.search(r"Waiting up to 30s for the state lock, held by apply \(pid (\d+) on ([^,]+), since \S+, "
                        r"lock id [0-9a-f-]{36}\)\.\.\.", result.stderr)
    assert waiting, result.stderr
    assert int(waiting.group(1)) == os.getpid() and waiting.group(2) == socket.gethostname()
    assert re.search(r"Got the state lock after \d+\.\ds", result.stderr)
    assert result.stderr.index("Waiting up to") < result.stderr.index("Got the state lock")


def test_a_wait_that_runs_out_names_the_holder_twice_and_changes_nothing(project):
    holder = held_lock(project, 2.0)
    try:
        result = project.run("apply", "--auto-approve", "--lock-timeout", "300ms")
    finally:
        holder.join()
    assert result.exit_code == 1
    assert "Waiting up to 0.3s for the state lock, held by apply (pid" in result.stderr
    assert "Error: state " in result.stderr and "is locked by apply" in result.stderr
    assert "It was still held after waiting 0.3s: wait for it to finish, or pass a longer --lock-timeout." \
        in result.stderr
    assert "Got the state lock" not in result.stderr
    assert not project.world_path.exists()


def test_no_wait_no_waiting_line(project):
    result = project.run("apply", "--auto-approve", "--lock-timeout", "30s")
    assert result.exit_code == 0, result.output
    assert "Waiting" not in result.stderr and "Got the state lock" not in result.stderr


@pytest.fixture
def remote(project, monkeypatch):
    """The example project against the emulator over real HTTP (faults can be injected)."""
    monkeypatch.setenv("QI_FEEDBACK_KEY", "feedback-key")
    with running_server(EmulatorConfig(api_key="feedback-key")) as server:
        config = project.root / "qrvey-iac.yaml"
        config.write_text(config.read_text().replace(
            "  local:\n    endpoint: local\n",
            f"  local:\n    endpoint: {server.base_url}\n    apiKeyEnv: QI_FEEDBACK_KEY\n"))
        yield server


def inject(server, spec):
    server.emulator.injector = FaultInjector(parse_faults(spec), 0)


def flaky_object(project, server):
    """The first three reads of one object (dataset.orders) answer 503."""
    assert project.run("apply", "--auto-approve").exit_code == 0
    inject(server, f"GET /qollect/dataset/{project.dataset_id('dataset.orders')}: 503@first=3")


def test_retries_are_one_line_per_call_not_one_per_attempt(project, remote):
    flaky_object(project, remote)
    result = project.run("plan")
    assert result.exit_code == 0, result.output
    about = [line for line in result.stderr.splitlines() if "503" in line]
    assert len(about) == 1, result.stderr
    assert re.fullmatch(r"\[ *\d+\.\ds\] GET /devapi/v4/user/u-hq-owner/app/a-sales/qollect/dataset/\S+: answered "
                        r"on attempt 4 of 5 after 3 retries: HTTP 503: .+ \(x3\)", about[0]), about[0]
    assert "retrying in" not in result.stderr


def test_with_debug_every_retry_is_shown(project, remote):
    flaky_object(project, remote)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "qrvey_iac", "plan", "--debug"], cwd=project.root, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("retrying in") == 3
    assert result.stderr.count("answered on attempt 4 of 5 after 3 retries") == 1     # the debug handler's line
