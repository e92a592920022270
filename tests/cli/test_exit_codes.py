"""Exit codes CI can rely on: 2 means "changes present" (plan --detailed-exitcode) or "drift
present" (drift) and nothing else; a usage error is an error like any other: exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

USAGE_ERRORS = {
    "unknown option": (["plan", "--detailed-exitcodes"], "No such option '--detailed-exitcodes'"),
    "bad choice": (["plan", "--format", "xml"], "'xml' is not one of 'text', 'markdown', 'json'"),
    "out of range": (["plan", "--parallelism", "0"], "0 is not in the range 1<=x<=256"),
    "bad value of drift": (["drift", "--parallelism", "many"], "'many' is not a valid integer"),
    "unknown command": (["plna"], "No such command 'plna'"),
    "unknown option before the command": (["--env", "prod", "plan"], "No such option '--env'"),
    "missing argument": (["state", "show"], "Missing argument 'ADDRESS'"),
    "extra argument": (["apply", "plan.json", "other.json"], "unexpected extra argument (other.json)"),
    "unknown sub-command": (["state", "lst"], "No such command 'lst'"),
    "bad value in a nested group": (["emulator", "serve", "--port", "99999"], "99999 is not in the range"),
    "option without its value": (["plan", "--env"], "Option '--env' requires an argument"),
}


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_a_usage_error_exits_1_never_2(project, case):
    args, message = USAGE_ERRORS[case]
    result = project.run(*args)
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not project.state_path.exists() and not project.world_path.exists()


def test_no_command_at_all_shows_the_help_and_exits_1(project):
    result = project.run()
    assert result.exit_code == 1
    assert "Commands:" in result.output


def test_help_and_version_still_exit_0(project):
    assert project.run("--help").exit_code == 0
    assert project.run("plan", "--help").exit_code == 0
    assert project.run("state", "show", "--help").exit_code == 0
    assert project.run("--version").exit_code == 0


def test_the_console_script_exits_1_on_a_usage_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "qrvey_iac", "validate", "--bogus"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(REPO)})
    assert done.returncode == 1, done.stderr
    assert "Error: No such option '--bogus'" in done.stderr


def test_2_still_means_changes_present_and_drift_present(project):
    assert project.run("plan", "--detailed-exitcode").exit_code == 2      # nothing applied yet
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert project.run("plan", "--detailed-exitcode").exit_code == 0
    assert project.run("drift").exit_code == 0
    project.edit_world(lambda world: next(iter(world["datasets"].values())).update(name="renamed by hand"))
    assert project.run("drift").exit_code == 2
