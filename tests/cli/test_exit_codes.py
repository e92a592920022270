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


def test_an_unknown_var_name_is_refused_with_a_suggestion(project):
    result = project.run("plan", "--var", "warehouse_conection=conn-other")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: --var: unknown variable 'warehouse_conection' (did you mean 'warehouse_connection'?): no manifest "
        "uses ${var.warehouse_conection} and the environment's variables do not declare it",
        "1 problem found; nothing was changed.",
    ]
    assert not project.state_path.exists() and not project.world_path.exists()


def test_an_unknown_name_in_a_values_file_is_refused_naming_the_file(project):
    project.root.joinpath("ci.yaml").write_text("warehouse_db: shop\nwarehouse_dbb: shop\n")
    result = project.run("validate", "--var-file", "ci.yaml")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].startswith("Error: ci.yaml: unknown variable 'warehouse_dbb' "
                                                    "(did you mean 'warehouse_db'?)")


def test_a_var_that_a_manifest_uses_or_the_environment_declares_is_accepted(project):
    config = project.root / "qrvey-iac.yaml"
    config.write_text(config.read_text().replace("      warehouse_db: shop\n  # A real",
                                                 "      warehouse_db: shop\n      unused_here: x\n  # A real"))
    project.replace_in("sales.yaml", "${var.warehouse_db}", "${var.only_on_the_command_line}")
    result = project.run("validate", "--var", "only_on_the_command_line=shop", "--var", "unused_here=y",
                         "--var", "warehouse_db=other")
    assert result.exit_code == 0, result.output


def test_an_unknown_var_is_one_of_all_the_problems_of_the_run(project):
    project.replace_in("sales.yaml", "app: sales", "app: nowhere")
    result = project.run("validate", "--var", "typo=1")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Error: --var: unknown variable 'typo'")
    assert "spec.app: unknown app 'nowhere'" in lines[1]
    assert lines[-1] == "2 problems found; nothing was changed."
