"""The state file under damage, from the future, and as a place secrets must never reach."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from qrvey_iac.cli import cli
from qrvey_iac.core.state import STATE_VERSION
from qrvey_iac.emulator import EmulatorConfig
from qrvey_iac.emulator.testing import running_server

API_KEY = "k-3f9a-never-written"
SECRET = "p4ss-from-the-environment"
STATE = Path("state/local.json")


@pytest.fixture
def project(example_dir) -> Path:
    return example_dir


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def applied(project) -> Path:
    assert run("apply", "--auto-approve").exit_code == 0
    sales = project / "manifests" / "sales.yaml"
    sales.write_text(sales.read_text().replace("name: Products\n", "name: Catalogue\n"))
    assert run("apply", "--auto-approve").exit_code == 0      # a second write: the backup exists
    assert (project / STATE.with_name("local.json.backup")).exists()
    return project


DAMAGE = {
    "truncated": lambda text: text[: len(text) // 2],
    "empty": lambda text: "",
    "not UTF-8": lambda text: "\udcff",
    "deeply nested": lambda text: "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("command", [("plan",), ("apply", "--auto-approve"), ("destroy", "--auto-approve"), ("drift",)])
def test_an_unreadable_state_is_a_clear_error_and_nothing_is_touched(applied, damage, command):
    text = (applied / STATE).read_text()
    (applied / STATE).write_bytes(DAMAGE[damage](text).encode("utf-8", "surrogateescape"))
    before = snapshot(applied / "state")
    result = run(*command)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: state file {STATE} is unreadable (")
    assert lines[0].endswith(f"); the previous version is in {STATE}.backup and was not touched")
    assert snapshot(applied / "state") == before                 # state, backup and world as they were


def test_without_a_backup_the_error_does_not_claim_one(project):
    (project / "state").mkdir()
    (project / STATE).write_text('{"version": 1, "resources": {')
    result = run("plan")
    assert result.stderr.endswith("); there is no backup of it\n")


def test_a_state_of_the_wrong_shape_names_the_field(applied):
    state = json.loads((applied / STATE).read_text())
    state["resources"]["dataset.orders"]["kind"] = "Widget"
    (applied / STATE).write_text(json.dumps(state))
    result = run("plan")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: state file {STATE} is invalid at resources.dataset.orders.kind: ")


def test_a_newer_state_format_is_refused_untouched(applied):
    state = json.loads((applied / STATE).read_text())
    state["version"] = STATE_VERSION + 1
    (applied / STATE).write_text(json.dumps(state))
    before = snapshot(applied / "state")
    for command in (("plan",), ("apply", "--auto-approve"), ("state", "list")):
        result = run(*command)
        assert result.exit_code == 1
        assert result.stderr == (f"Error: state file {STATE} has format version {STATE_VERSION + 1}; this qrvey-iac "
                                 f"reads up to {STATE_VERSION}: upgrade qrvey-iac\n")
    assert snapshot(applied / "state") == before


def test_drift_settles_the_journal_in_memory_and_writes_nothing(applied):
    state = json.loads((applied / STATE).read_text())
    products = state["resources"].pop("dataset.products")
    state["journal"] = [{"id": "j1", "op": "create", "address": "dataset.products", "datasetId": products["datasetId"],
                         "appId": products["appId"], "userId": products["userId"],
                         "detail": {"kind": "Dataset", "applied_hash": products["applied_hash"]}}]
    (applied / STATE).write_text(json.dumps(state))
    before = snapshot(applied / "state")
    drift = run("drift")
    assert drift.exit_code == 0, drift.output
    assert "dataset.products: adopted" in drift.stderr
    assert snapshot(applied / "state") == before
    plan = run("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    settled = json.loads((applied / STATE).read_text())
    assert settled["journal"] == [] and settled["resources"]["dataset.products"]["datasetId"] == products["datasetId"]


def test_state_and_plan_files_never_hold_the_api_key_or_env_secrets(project, monkeypatch):
    monkeypatch.setenv("QI_TEST_KEY", API_KEY)
    monkeypatch.setenv("QI_TEST_SECRET", SECRET)
    text = (project / "manifests" / "sales.yaml").read_text()
    text = text.replace("tableName: products", "tableName: ${env:QI_TEST_SECRET}")
    text = text.replace("team: revenue-analytics", "team: revenue-analytics\n    token: ${env:QI_TEST_SECRET}")
    (project / "manifests" / "sales.yaml").write_text(text)
    with running_server(EmulatorConfig(api_key=API_KEY)) as server:
        config = (project / "qrvey-iac.yaml").read_text().replace(
            "  local:\n    endpoint: local\n",
            f"  local:\n    endpoint: {server.base_url}\n    apiKeyEnv: QI_TEST_KEY\n")
        (project / "qrvey-iac.yaml").write_text(config)
        outputs = [run("apply", "--auto-approve", "--debug")]
        assert outputs[0].exit_code == 0, outputs[0].output
        assert SECRET in json.dumps(dict(server.emulator.world.datasets))     # it did reach Qrvey
        text = text.replace("name: Products\n", "name: Catalogue\n")
        (project / "manifests" / "sales.yaml").write_text(text)
        outputs.append(run("plan", "--out", "plan.json", "--debug"))
        outputs.append(run("plan", "--format", "json"))
        outputs.append(run("plan", "--format", "markdown"))
        outputs.append(run("apply", "plan.json"))
        outputs.append(run("drift"))
        outputs.append(run("state", "show", "dataset.products"))
        outputs.append(run("destroy", "--auto-approve"))
    assert [o.exit_code for o in outputs] == [0, 0, 0, 0, 0, 0, 0, 0], [o.output for o in outputs]
    files = snapshot(project)
    assert {"plan.json", "state/local.json", "state/local.json.backup"} <= set(files)
    for name, data in files.items():
        if name.startswith("manifests/"):
            continue
        assert API_KEY.encode() not in data and SECRET.encode() not in data, name
    for output in outputs:
        assert API_KEY not in output.output and SECRET not in output.output
