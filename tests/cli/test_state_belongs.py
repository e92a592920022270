"""A state belongs to one environment (issue 12, point 3): its owner is recorded and checked,
a symlinked state is written through its link, and `plan --out` never overwrites a state."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from qrvey_iac.cli import cli

REPO = Path(__file__).resolve().parents[2]

STAGING_ON_THE_SAME_STATE = """
  staging:
    endpoint: local
    apps:
      sales: {userId: u-hq-owner, appId: a-sales}
      emea: {userId: u-emea-owner, appId: a-emea}
      apac: {userId: u-apac-owner, appId: a-apac}
    variables:
      warehouse_connection: conn-warehouse
      crm_connection: conn-crm
      warehouse_db: shop
    state: {path: state/local.json}
"""


def add_environment(project, text: str) -> None:
    config = project.root / "qrvey-iac.yaml"
    config.write_text(config.read_text() + text)


def test_two_environments_on_one_state_path_are_refused_until_the_state_is_claimed(project):
    add_environment(project, STAGING_ON_THE_SAME_STATE)
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert project.state()["owner"] == {"environment": "local", "endpoint": "embedded"}
    before = project.state_path.read_bytes()
    for command in (["plan"], ["apply", "--auto-approve"], ["destroy", "--auto-approve"], ["drift"],
                    ["state", "list"], ["state", "rm", "dataset.orders"]):
        refused = project.run(*command, "--env", "staging")
        assert refused.exit_code == 1, command
        assert refused.stderr.startswith(
            "Error: state file state/local.json belongs to environment 'local' (endpoint embedded), not to "
            "environment 'staging' (endpoint embedded): used here it would treat the other environment's "
            "objects as this one's. Nothing was read from Qrvey or changed."), refused.stderr
        assert "run `qrvey-iac state claim --env staging`" in refused.stderr
    assert project.state_path.read_bytes() == before
    assert not (project.root / "state" / "staging.emulator.json").exists()      # no world made for staging

    claimed = project.run("state", "claim", "--env", "staging")
    assert claimed.exit_code == 0, claimed.output
    assert claimed.stdout.startswith("Moved the state from environment 'local' (endpoint embedded) to "
                                     "environment 'staging' (endpoint embedded).")
    assert project.state()["owner"] == {"environment": "staging", "endpoint": "embedded"}
    assert project.run("plan").exit_code == 1                                   # now local is the other one
    again = project.run("state", "claim", "--env", "staging")
    assert again.stdout == "The state already belongs to environment 'staging' (endpoint embedded); nothing changed.\n"


def test_an_environment_whose_endpoint_changed_refuses_its_state(project):
    assert project.run("apply", "--auto-approve").exit_code == 0
    config = project.root / "qrvey-iac.yaml"
    config.write_text(config.read_text().replace("endpoint: local", "endpoint: https://Other.example.com:443/", 1)
                      .replace("apps:", "apiKeyEnv: QRVEY_TEST_KEY\n    apps:", 1))
    before = project.state_path.read_bytes()
    refused = project.runner.invoke(cli, ["plan"], env={"QRVEY_TEST_KEY": "test-api-key-123"})
    assert refused.exit_code == 1
    assert refused.stderr.startswith(
        "Error: state file state/local.json was made for endpoint embedded, and environment 'local' now has "
        "endpoint https://other.example.com: its records name objects of the other endpoint."), refused.stderr
    assert "run `qrvey-iac state claim --env local` to record the new endpoint" in refused.stderr
    assert project.state_path.read_bytes() == before


def test_an_endpoint_with_credentials_is_recorded_without_them(project):
    assert project.run("apply", "--auto-approve").exit_code == 0
    config = project.root / "qrvey-iac.yaml"
    config.write_text(config.read_text().replace(
        "endpoint: local", "endpoint: https://admin:s3cr3t-pw@X.example.com/api/", 1)
        .replace("apps:", "apiKeyEnv: QRVEY_TEST_KEY\n    apps:", 1))
    claimed = project.runner.invoke(cli, ["state", "claim"], env={"QRVEY_TEST_KEY": "test-api-key-123"})
    assert claimed.exit_code == 0, claimed.output
    assert project.state()["owner"] == {"environment": "local", "endpoint": "https://x.example.com/api"}
    assert "s3cr3t" not in claimed.output
    for path in project.root.joinpath("state").iterdir():
        assert b"s3cr3t" not in path.read_bytes(), path


def test_claiming_without_a_state_is_an_error(project):
    result = project.run("state", "claim")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: state file state/local.json does not exist: there is no state to claim")
    assert not project.state_path.exists()


def checkout(folder: Path, shared: Path) -> Path:
    """A copy of the example project whose state/local.json is a symlink into ``shared``."""
    folder.mkdir()
    shutil.copy(REPO / "qrvey-iac.yaml", folder / "qrvey-iac.yaml")
    shutil.copytree(REPO / "manifests", folder / "manifests")
    (folder / "state").mkdir()
    (folder / "state" / "local.json").symlink_to(os.path.relpath(shared / "local.json", folder / "state"))
    return folder


def test_two_checkouts_sharing_a_symlinked_state_share_it_and_duplicate_nothing(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    first, second = checkout(tmp_path / "a", shared), checkout(tmp_path / "b", shared)
    runner = CliRunner()
    monkeypatch.chdir(first)
    assert runner.invoke(cli, ["apply", "--auto-approve"]).exit_code == 0
    monkeypatch.chdir(second)
    planned = runner.invoke(cli, ["plan", "--detailed-exitcode"])
    assert planned.exit_code == 0, planned.output                  # the other checkout's objects, not new ones
    assert "No changes" in planned.output
    for folder in (first, second):
        assert (folder / "state" / "local.json").is_symlink()       # written through, the link kept
        assert sorted(p.name for p in (folder / "state").iterdir()) == ["local.json"]
    assert sorted(p.name for p in shared.iterdir()) == ["local.emulator.json", "local.json"]
    world = json.loads((shared / "local.emulator.json").read_text())
    made = len(world["datasets"]) + len(world["connections"])
    assert made == len(json.loads((shared / "local.json").read_text())["resources"])


def test_a_state_symlink_that_leads_nowhere_is_refused_and_nothing_is_created(project):
    project.state_path.parent.mkdir()
    target = project.root / "unmounted" / "local.json"
    project.state_path.symlink_to(target)
    for command in (["plan"], ["apply", "--auto-approve"], ["state", "list"]):
        result = project.run(*command)
        assert result.exit_code == 1
        assert result.stderr.startswith(
            f"Error: the state path state/local.json is a symbolic link that leads nowhere: it points to {target}, "
            "which loops or is in a folder that does not exist."), result.stderr
    assert not (project.root / "unmounted").exists()
    assert sorted(p.name for p in project.state_path.parent.iterdir()) == ["local.json"]


def test_a_state_symlink_loop_is_refused(project):
    project.state_path.parent.mkdir()
    project.state_path.symlink_to("local.json")
    result = project.run("plan")
    assert result.exit_code == 1 and "is a symbolic link that leads nowhere" in result.stderr


@pytest.mark.parametrize("out", ["state/local.json", "state/local.json.backup", "state/local.json.lock",
                                 "state/local.json.wal", "state/local.emulator.json", "state/prod.json",
                                 "./state/../state/local.json", "link-to-state.json"])
def test_plan_out_refuses_to_overwrite_a_state_backup_or_lock_file(project, out):
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert project.run("apply", "--auto-approve").exit_code == 0                 # now there is a backup
    (project.root / "link-to-state.json").symlink_to(project.state_path)
    before = {p.name: p.read_bytes() for p in project.state_path.parent.iterdir()}
    result = project.run("plan", "--out", out)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: --out: {out} is the "), result.stderr
    assert "a plan saved there would destroy it; save the plan to another file" in result.stderr
    assert {p.name: p.read_bytes() for p in project.state_path.parent.iterdir()} == before
    assert (project.root / "link-to-state.json").is_symlink()


def test_plan_out_names_what_it_refused(project):
    result = project.run("plan", "--out", "state/local.json")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == ("Error: --out: state/local.json is the state file of environment "
                                             "'local': a plan saved there would destroy it; save the plan to "
                                             "another file")
    assert not project.state_path.exists()
    assert project.run("plan", "--out", "plan.json").exit_code == 0             # any other file is fine
