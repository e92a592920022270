"""The `state:` block for PostgreSQL in qrvey-iac.yaml, through the CLI: each mistake named
precisely (file, line, field, what to do) with nothing done, the DSN never shown; a working
block keeps no state file and puts the embedded emulator's world under state/.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from postgres_server import PASSWORD

from qrvey_iac.cli import cli

DSN_VARIABLE = "QRVEY_IAC_TEST_WRONG_DSN"
LOCAL_ENV = "  local:\n    endpoint: local\n"


def with_state(example_dir, block: str) -> None:
    config = example_dir / "qrvey-iac.yaml"
    text = config.read_text()
    config.write_text(text.replace(LOCAL_ENV, LOCAL_ENV + f"    state: {block}\n", 1))


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize(("block", "message"), [
    ("{backend: postgress, dsnEnv: X}",
     "Error: qrvey-iac.yaml:9: environments.local.state.backend: expected 'local' or 'postgres', got 'postgress'\n"),
    ("{backend: postgres}",
     "Error: qrvey-iac.yaml:9: environments.local.state.dsnEnv: required for backend postgres: the name of the "
     "environment variable that holds the database's DSN, e.g. dsnEnv: QRVEY_IAC_STATE_DSN\n"),
    ("{backend: postgres, dsnEnv: X, path: state/x.json}",
     "Error: qrvey-iac.yaml:9: environments.local.state.path: a postgres state has no file: remove path (the state "
     "is named by workspace, default the environment name)\n"),
    ("{dsnEnv: X}",
     "Error: qrvey-iac.yaml:9: environments.local.state.dsnEnv: dsnEnv is for backend postgres; this state is a "
     "local file (set backend: postgres, or remove it)\n"),
    ("{backend: postgres, dsnEnv: 'postgresql://u:Pasted-Passw0rd@h/db'}",      # a DSN where its variable goes
     "Error: qrvey-iac.yaml:9: environments.local.state.dsnEnv: not an environment variable name (letters, digits "
     "and _, not starting with a digit); give the variable's name here and put the DSN in that variable\n"),
    ("{backend: postgres, dsnEnv: X, workspace: 'a b'}",
     "Error: qrvey-iac.yaml:9: environments.local.state.workspace: "),
])
def test_a_wrong_state_block_is_named_and_nothing_is_done(example_dir, block, message):
    with_state(example_dir, block)
    result = run("plan")
    assert result.exit_code == 1
    assert result.stderr.startswith(message), result.stderr
    assert "Pasted-Passw0rd" not in result.output
    assert "Traceback" not in result.output
    assert not (example_dir / "state").exists()


def test_an_unset_dsn_variable_is_named_and_validate_does_not_need_it(example_dir, monkeypatch):
    monkeypatch.delenv("QRVEY_IAC_NO_SUCH_DSN", raising=False)
    with_state(example_dir, "{backend: postgres, dsnEnv: QRVEY_IAC_NO_SUCH_DSN}")
    assert run("validate").exit_code == 0
    result = run("plan")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: qrvey-iac.yaml: environments.local.state.dsnEnv: environment variable "
                                    "QRVEY_IAC_NO_SUCH_DSN is not set: set it to the DSN of the state's PostgreSQL "
                                    "database"), result.stderr
    assert not (example_dir / "state").exists()


def test_a_dsn_that_does_not_connect_is_an_error_without_the_password(example_dir, monkeypatch, postgres):
    with_state(example_dir, f"{{backend: postgres, dsnEnv: {DSN_VARIABLE}}}")
    monkeypatch.setenv(DSN_VARIABLE, postgres.dsn(password="Wr0ng-" + PASSWORD))
    for args in (["plan"], ["apply", "--auto-approve"], ["state", "list"], ["drift"]):
        result = run(*args)
        assert result.exit_code == 1, args
        assert result.stderr.startswith(f"Error: state workspace 'local' (postgres, DSN in ${DSN_VARIABLE}): cannot "
                                        "connect to PostgreSQL ("), result.stderr
        assert PASSWORD not in result.output and "Traceback" not in result.output
    debug = run("--debug", "plan")
    assert PASSWORD not in debug.output


def test_a_postgres_state_keeps_no_file_and_the_world_goes_under_state(postgres_project):
    project, example_dir = postgres_project, postgres_project.root
    result = run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (example_dir / "state").iterdir()) == ["local.emulator.json"]
    assert len(project.state()["resources"]) == 11     # the example: 1 connection, 6 datasets, 4 views
    refused = run("plan", "--out", "state/local.emulator.json")
    assert refused.exit_code == 1 and "embedded emulator's world of environment 'local'" in refused.stderr
    assert run("plan", "--detailed-exitcode").exit_code == 0
