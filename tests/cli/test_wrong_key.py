"""A wrong API key is found by the first command that talks to Qrvey (issue 13, point 8): with
an empty state, `plan` used to make no call at all and show a plan of creates; the key was
refused only by apply's first write. The error names the endpoint and the variable to check,
never the key."""

from __future__ import annotations

import pytest

from qrvey_iac.emulator import EmulatorConfig
from qrvey_iac.emulator.testing import running_server

RIGHT_KEY = "k3y-RIGHT-5f2a9c"
WRONG_KEY = "k3y-WRONG-77d1e0"


@pytest.fixture
def served(project):
    """The example project's local environment pointed at a served emulator, its key in QRVEY_API_KEY."""
    with running_server(EmulatorConfig(api_key=RIGHT_KEY)) as server:
        config = project.root / "qrvey-iac.yaml"
        config.write_text(config.read_text().replace(
            "    endpoint: local\n", f"    endpoint: {server.base_url}\n    apiKeyEnv: QRVEY_API_KEY\n", 1))
        yield server


@pytest.mark.parametrize("command", [["plan"], ["apply", "--auto-approve"], ["drift"]])
def test_a_wrong_key_stops_a_command_on_an_empty_state_at_once(project, served, monkeypatch, command):
    monkeypatch.setenv("QRVEY_API_KEY", WRONG_KEY)
    result = project.run(*command)
    assert result.exit_code == 1, result.output
    assert f"Error: Qrvey refused the API key (HTTP 401) for {served.base_url} (GET " in result.stderr
    assert "check the environment variable QRVEY_API_KEY" in result.stderr
    assert WRONG_KEY not in result.output and RIGHT_KEY not in result.output
    assert "Plan:" not in result.stdout
    assert not served.emulator.world.datasets             # nothing was created
    assert project.state()["journal"] == []


def test_the_right_key_plans_an_empty_state(project, served, monkeypatch):
    monkeypatch.setenv("QRVEY_API_KEY", RIGHT_KEY)
    result = project.run("plan")
    assert result.exit_code == 0, result.output
    assert "dataset.orders" in result.stdout
