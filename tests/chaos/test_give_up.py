"""A run that must give up says what is done and what is not, and the next run finishes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from chaos_harness import copy_examples_without_connection
from click.testing import CliRunner

from qrvey_iac.adapters.state.local import LocalStateStore
from qrvey_iac.cli import cli
from qrvey_iac.emulator import EmulatorConfig, parse_faults
from qrvey_iac.emulator.injector import FaultInjector
from qrvey_iac.emulator.testing import running_server

REPO = Path(__file__).resolve().parents[2]
KEY = "give-up-key"


@pytest.fixture
def remote(tmp_path, monkeypatch):
    """The example project against the emulator over real HTTP; yields the running server."""
    copy_examples_without_connection(tmp_path / "manifests")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QI_GIVE_UP_KEY", KEY)
    with running_server(EmulatorConfig(api_key=KEY)) as server:
        config = (REPO / "qrvey-iac.yaml").read_text().replace(
            "  local:\n    endpoint: local\n",
            f"  local:\n    endpoint: {server.base_url}\n    apiKeyEnv: QI_GIVE_UP_KEY\n    requestTimeout: 0.1\n")
        (tmp_path / "qrvey-iac.yaml").write_text(config)
        yield server


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def inject(server, spec: str | None) -> None:
    server.emulator.injector = FaultInjector(parse_faults(spec) if spec else None, 0)


def state() -> dict:
    return LocalStateStore(Path("state/local.json")).read().model_dump(mode="json")   # with its sidecar


def test_creates_that_keep_failing_are_reported_and_finished_by_the_next_run(remote):
    inject(remote, "POST /qollect/dataset/clone/connection/*: 503")      # every view create
    result = run("apply", "--auto-approve")
    assert result.exit_code == 1
    lines = result.stderr[result.stderr.index("Error: apply stopped"):].splitlines()
    assert lines[0] == "Error: apply stopped: 4 operation(s) failed"
    assert all(line.startswith("    create:view.") and ": outcome unknown (kept in the state's journal" in line
               for line in lines[1:5]), lines
    assert lines[5].startswith("  done and recorded in state: 9 (") and "share:dataset.orders" in lines[5]   # 6 creates, 2 shares, 1 load
    assert lines[-1] == "  run plan to see what remains; apply again to finish"
    recorded = state()
    assert len(recorded["resources"]) == 6 and {e["address"] for e in recorded["journal"]} == {
        "view.orders-emea", "view.customers-emea", "view.orders-apac", "view.customers-apac"}
    inject(remote, None)
    time.sleep(1.3)       # the creates' landing window (2 x requestTimeout, + 1 s as started is in seconds)
    again = run("apply", "--auto-approve")
    assert again.exit_code == 0, again.output
    assert "view.orders-emea: an interrupted create did not land; it will be planned again" in again.stderr
    assert "Plan: 4 to create, 0 to update, 0 to replace, 0 to delete." in again.stdout
    assert state()["journal"] == [] and len(remote.emulator.world.datasets) == 10


def test_a_read_that_fails_before_any_write_says_nothing_was_changed(remote):
    assert run("apply", "--auto-approve").exit_code == 0
    before = Path("state/local.json").read_bytes()
    sales = Path("manifests/sales.yaml")
    sales.write_text(sales.read_text().replace("name: Products\n", "name: Catalogue\n"))
    inject(remote, "GET *: 503")
    result = run("apply", "--auto-approve")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "  apply stopped while reading Qrvey, before making any change; run it again"
    assert Path("state/local.json").read_bytes() == before
