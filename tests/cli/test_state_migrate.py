"""`qrvey-iac state migrate --to ENV`: a state copied between stores keeps what it is.

The example project is applied in environment `local`; other environments of the same
endpoint and apps are added to its config with their own `state:` blocks, and the state is
copied between them.
"""

from __future__ import annotations

import json

import pytest
import yaml

from qrvey_iac.adapters.state.local import LocalStateStore


def add_environment(project, name: str, state: dict, endpoint: str | None = None) -> None:
    """A copy of environment `local` named `name` with its own `state:` block."""
    path = project.root / "qrvey-iac.yaml"
    config = yaml.safe_load(path.read_text())
    env = dict(config["environments"]["local"], state=state)
    if endpoint is not None:
        env["endpoint"] = endpoint
        env["apiKeyEnv"] = "MIGRATE_TEST_KEY"
    config["environments"][name] = env
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def stored(project, relative: str) -> dict:
    return LocalStateStore(project.root / relative).read().model_dump(mode="json")


def without_owner(state: dict) -> dict:
    return {key: value for key, value in state.items() if key != "owner"}


@pytest.fixture
def applied(project):
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output + result.stderr
    return project


def test_a_copy_keeps_lineage_serial_resources_and_records_the_new_owner(applied):
    add_environment(applied, "copy", {"path": "state/copy.json"})
    before = (applied.root / "state" / "local.json").read_bytes()

    result = applied.run("state", "migrate", "--env", "local", "--to", "copy")

    assert result.exit_code == 0, result.stderr
    original, copy = stored(applied, "state/local.json"), stored(applied, "state/copy.json")
    assert without_owner(copy) == without_owner(original)
    assert len(copy["resources"]) == 11 and copy["serial"] == original["serial"] > 0
    assert copy["owner"]["environment"] == "copy" and original["owner"]["environment"] == "local"
    assert (applied.root / "state" / "local.json").read_bytes() == before      # the source is never written
    assert "Copied 11 resource(s)" in result.output and "read them back the same" in result.output


def test_a_round_trip_gives_back_an_identical_state(applied):
    add_environment(applied, "copy", {"path": "state/copy.json"})
    add_environment(applied, "back", {"path": "state/back.json"})
    assert applied.run("state", "migrate", "--env", "local", "--to", "copy").exit_code == 0
    assert applied.run("state", "migrate", "--env", "copy", "--to", "back").exit_code == 0

    original, back = stored(applied, "state/local.json"), stored(applied, "state/back.json")
    assert without_owner(back) == without_owner(original)
    assert back["lineage"] == original["lineage"] and back["serial"] == original["serial"]


def test_the_copy_is_usable_by_its_environment(applied):
    """The copied environment reads its state as its own: `state list` names every resource."""
    add_environment(applied, "copy", {"path": "state/copy.json"})
    assert applied.run("state", "migrate", "--env", "local", "--to", "copy").exit_code == 0

    listed = applied.run("state", "list", "--env", "copy")

    assert listed.exit_code == 0, listed.stderr
    assert len(listed.output.splitlines()) == 11


def test_migrating_again_after_a_success_changes_nothing(applied):
    add_environment(applied, "copy", {"path": "state/copy.json"})
    assert applied.run("state", "migrate", "--env", "local", "--to", "copy").exit_code == 0
    copy = (applied.root / "state" / "copy.json").read_bytes()

    again = applied.run("state", "migrate", "--env", "local", "--to", "copy")

    assert again.exit_code == 0, again.stderr
    assert "already holds this state" in again.output
    assert (applied.root / "state" / "copy.json").read_bytes() == copy


def test_a_target_holding_another_state_is_refused_and_left_as_it_was(applied):
    add_environment(applied, "copy", {"path": "state/copy.json"})
    assert applied.run("apply", "--auto-approve", "--env", "copy").exit_code == 0   # its own, new lineage
    copy = (applied.root / "state" / "copy.json").read_bytes()

    result = applied.run("state", "migrate", "--env", "local", "--to", "copy")

    assert result.exit_code == 1
    assert "already holds a state" in result.stderr and "Nothing was changed" in result.stderr
    assert "Traceback" not in result.stderr
    assert (applied.root / "state" / "copy.json").read_bytes() == copy


def test_another_endpoint_is_refused(applied, monkeypatch):
    monkeypatch.setenv("MIGRATE_TEST_KEY", "k")
    add_environment(applied, "elsewhere", {"path": "state/elsewhere.json"}, endpoint="https://other.qrveyapp.com")

    result = applied.run("state", "migrate", "--env", "local", "--to", "elsewhere")

    assert result.exit_code == 1
    assert "different Qrvey endpoints" in result.stderr
    assert not (applied.root / "state" / "elsewhere.json").exists()


def test_the_same_environment_or_the_same_file_is_refused(applied):
    add_environment(applied, "alias", {"path": "state/local.json"})

    same_env = applied.run("state", "migrate", "--env", "local", "--to", "local")
    same_file = applied.run("state", "migrate", "--env", "local", "--to", "alias")

    assert same_env.exit_code == 1 and "is the environment being migrated" in same_env.stderr
    assert same_file.exit_code == 1 and "nothing to copy" in same_file.stderr


def test_no_state_to_migrate_is_an_error(project):
    add_environment(project, "copy", {"path": "state/copy.json"})

    result = project.run("state", "migrate", "--env", "local", "--to", "copy")

    assert result.exit_code == 1 and "no state to migrate" in result.stderr
    assert not (project.root / "state" / "copy.json").exists()


def test_a_state_of_a_third_environment_is_refused(applied):
    """Migrate moves a state between two backends of one environment, not another's state."""
    path = applied.root / "state" / "local.json"
    state = json.loads(path.read_text())
    state["owner"]["environment"] = "someone-else"
    path.write_text(json.dumps(state))
    add_environment(applied, "copy", {"path": "state/copy.json"})

    result = applied.run("state", "migrate", "--env", "local", "--to", "copy")

    assert result.exit_code == 1 and "someone-else" in result.stderr
    assert not (applied.root / "state" / "copy.json").exists()


def test_a_state_recorded_as_the_target_environment_moves(applied):
    """The usual move: the old `state:` block kept under a new name (OLD) while the
    environment itself gets the new backend: the state records the environment it was made
    for, which is the target."""
    add_environment(applied, "old", {"path": "state/local.json"})
    path = applied.root / "state" / "local.json"
    config = yaml.safe_load((applied.root / "qrvey-iac.yaml").read_text())
    config["environments"]["local"]["state"] = {"path": "state/new.json"}
    (applied.root / "qrvey-iac.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    before = path.read_bytes()

    result = applied.run("state", "migrate", "--env", "old", "--to", "local")

    assert result.exit_code == 0, result.stderr
    assert path.read_bytes() == before
    plan = applied.run("state", "list")
    assert plan.exit_code == 0 and len(plan.output.splitlines()) == 11


def test_local_to_postgres_to_local_round_trips_to_an_identical_state(applied, monkeypatch):
    """Issue 15's round trip: the same lineage, serial and resources after local ->
    postgres -> local; the DSN (and its password) in no output."""
    from postgres_server import PASSWORD, new_workspace, shared_database

    monkeypatch.setenv("MIGRATE_TEST_DSN", shared_database("migrate"))
    add_environment(applied, "team", {"backend": "postgres", "dsnEnv": "MIGRATE_TEST_DSN",
                                      "workspace": new_workspace()})
    add_environment(applied, "back", {"path": "state/back.json"})

    there = applied.run("state", "migrate", "--env", "local", "--to", "team")
    listed = applied.run("state", "list", "--env", "team")
    back = applied.run("state", "migrate", "--env", "team", "--to", "back")

    for result in (there, listed, back):
        assert result.exit_code == 0, result.stderr
        assert PASSWORD not in result.output + result.stderr
    assert len(listed.output.splitlines()) == 11
    original, returned = stored(applied, "state/local.json"), stored(applied, "state/back.json")
    assert without_owner(returned) == without_owner(original)
    assert "postgres" in there.output and "Copied 11 resource(s)" in there.output
