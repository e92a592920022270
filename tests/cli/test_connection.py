"""kind: Connection through the CLI, on the example project (issue 16, point 1 and the first
Must-show's connection and password parts).

The example's connection reads its password from ${env:WAREHOUSE_PASSWORD}. Here it has a
value found nowhere else, so a file or an output line holding it can only have got it from
qrvey-iac. Decided: the embedded emulator's world (``state/local.emulator.json``) is Qrvey's
side, which must hold the password (else it was never sent), and it is the one file allowed
to; every other file under the project (state, its sidecar and backup, lock, plan files) and
every output (plain, JSON, markdown, ``--debug``, errors) must not hold it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "pw-Zq8-UNIQUE-771"
ROTATED = "pw-Zq8-ROTATED-772"
WORLD = "state/local.emulator.json"


def files_holding(root: Path, value: str) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and value.encode() in p.read_bytes())


def lines_with(output: str, *needles: str) -> list[int]:
    lines = output.splitlines()
    return [next(i for i, line in enumerate(lines) if needle in line) for needle in needles]


def run_ok(project, *args):
    result = project.run(*args)
    assert result.exit_code == 0, result.output
    return result


def test_the_quick_start_creates_the_connection_then_its_datasets_and_writes_no_password(project, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_PASSWORD", PASSWORD)
    outputs = [run_ok(project, "validate").output]
    planned = run_ok(project, "plan", "--out", "first.json")
    outputs.append(planned.output)
    assert "+ connection.warehouse" in planned.stdout
    assert 'password      = "(sensitive)"' in planned.stdout
    assert '"(known after apply: connection.warehouse)"' in planned.stdout
    applied = run_ok(project, "apply", "--auto-approve")
    outputs.append(applied.output)
    assert "Apply complete! Resources: 11 created" in applied.stdout
    created, first_dataset = lines_with(applied.output, "connection.warehouse: created", "dataset.orders: Creating")
    assert created < first_dataset                         # the connection before the datasets on it

    state = project.state()["resources"]
    connection_id = state["connection.warehouse"]["datasetId"]
    world = project.world()
    assert world["connections"][connection_id]["password"] == PASSWORD      # Qrvey has it
    for address in ("dataset.orders", "dataset.products", "dataset.monthly-revenue"):
        dataset = world["datasets"][state[address]["datasetId"]]
        assert [d["connectionId"] for d in dataset["datasources"]] == [connection_id]
    customers = world["datasets"][state["dataset.customers"]["datasetId"]]
    assert customers["datasources"][0]["connectionId"] == "conn-crm"     # a literal id (a variable) still works

    again = run_ok(project, "plan")
    assert "No changes. Qrvey matches the manifests." in again.stdout
    outputs.append(again.output)
    for args in (("plan", "--format", "json"), ("plan", "--format", "markdown"), ("plan", "--out", "second.json"),
                 ("drift",), ("state", "list"), ("state", "show", "connection.warehouse")):
        outputs.append(run_ok(project, *args).output)
    project.replace_in("connections.yaml", "name: Warehouse\n", "name: Warehouse 2\n")
    outputs.append(run_ok(project, "apply", "--auto-approve").output)    # a second write: the backup
    assert (project.root / "state" / "local.json.backup").exists()
    assert (project.root / "first.json").exists() and (project.root / "second.json").exists()

    assert files_holding(project.root, PASSWORD) == [WORLD]
    assert not [output for output in outputs if PASSWORD in output]


def test_debug_output_and_an_error_path_hold_no_password(project):
    """--debug, in a real process: the HTTP lines of the creates and of an update carrying the
    password, then a failed update (its route sent nowhere) with its traceback."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "WAREHOUSE_PASSWORD": PASSWORD}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "qrvey_iac", *args, "--debug"], cwd=project.root, env=env,
                              capture_output=True, text=True, timeout=120)

    first = cli("apply", "--auto-approve")
    assert first.returncode == 0, first.stderr
    assert "qrvey_iac.http DEBUG POST" in first.stderr and "/connections" in first.stderr
    env["WAREHOUSE_PASSWORD"] = ROTATED
    rotated = cli("apply", "--auto-approve")
    assert rotated.returncode == 0, rotated.stderr
    assert "Resources: 0 created, 1 updated" in rotated.stdout
    config = project.root / "qrvey-iac.yaml"
    nowhere = "    routes: {connection.update: 'PUT /connections/{connectionId}/nowhere'}\n"
    config.write_text(config.read_text().replace("    endpoint: local\n", "    endpoint: local\n" + nowhere, 1))
    env["WAREHOUSE_PASSWORD"] = PASSWORD
    failed = cli("apply", "--auto-approve")
    assert failed.returncode == 1
    assert "Traceback" in failed.stderr and "connection.warehouse: update failed" in failed.stderr
    for result in (first, rotated, failed):
        for value in (PASSWORD, ROTATED):
            assert value not in result.stdout and value not in result.stderr
    assert files_holding(project.root, PASSWORD) == []        # Qrvey holds the rotated one: the last PUT failed
    assert files_holding(project.root, ROTATED) == [WORLD]


def test_a_new_password_value_is_an_update_and_the_same_value_is_none(project, monkeypatch):
    """Rotation by keyed digest (docs/architecture.md §6): the state holds an HMAC of the document
    sent, keyed with a key derived from the API key and written nowhere."""
    monkeypatch.setenv("WAREHOUSE_PASSWORD", PASSWORD)
    run_ok(project, "apply", "--auto-approve")
    assert "No changes" in run_ok(project, "plan").stdout
    monkeypatch.setenv("WAREHOUSE_PASSWORD", ROTATED)
    plan = run_ok(project, "plan")
    assert "Plan: 0 to create, 1 to update, 0 to replace, 0 to delete." in plan.stdout
    assert '~ password: "(write-only: not returned by Qrvey)" → "(sensitive)"' in plan.stdout
    assert "drift" not in plan.stdout                      # the manifests' value changed, not Qrvey
    run_ok(project, "apply", "--auto-approve")
    connection_id = project.state()["resources"]["connection.warehouse"]["datasetId"]
    assert project.world()["connections"][connection_id]["password"] == ROTATED
    assert "No changes" in run_ok(project, "plan").stdout
    assert files_holding(project.root, ROTATED) == [WORLD]


def test_deleting_a_connection_its_datasets_use_is_refused_naming_them(project, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_PASSWORD", PASSWORD)
    run_ok(project, "apply", "--auto-approve")
    connection_id = project.state()["resources"]["connection.warehouse"]["datasetId"]
    project.manifest("connections.yaml").unlink()
    sales = project.manifest("sales.yaml")
    sales.write_text(sales.read_text().replace("connection: connection.warehouse", f"connectionId: {connection_id}"))
    plan = project.run("plan")
    assert plan.exit_code == 0, plan.output
    assert "# connection.warehouse cannot be planned (its delete is refused: 3 dataset(s) in Qrvey" in plan.stdout
    assert "! connection.warehouse [id=" in plan.stdout
    assert "dataset.monthly-revenue, dataset.orders, dataset.products" in plan.stdout
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 1
    assert "apply refused: 1 resource(s) cannot be planned (connection.warehouse;" in applied.stderr
    assert connection_id in project.world()["connections"]
    assert "connection.warehouse" in project.state()["resources"]


def test_a_literal_password_is_refused_naming_the_line_and_never_the_value(project):
    project.replace_in("connections.yaml", "password: ${env:WAREHOUSE_PASSWORD}", f"password: {PASSWORD}")
    result = project.run("plan")
    assert result.exit_code == 1
    assert ("Error: manifests/connections.yaml:17: spec.password: only an environment variable is accepted "
            "here, as ${env:NAME}") in result.stderr
    assert PASSWORD not in result.output
    assert not (project.root / "state" / "local.json").exists()
    project.replace_in("connections.yaml", f"password: {PASSWORD}", "password: ${var.warehouse_db}")
    assert "spec.password: only an environment variable" in project.run("validate").stderr


def test_an_unknown_connection_reference_is_reported_at_its_line(project, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_PASSWORD", PASSWORD)
    project.replace_in("sales.yaml", "connection: connection.warehouse", "connection: connection.warehous")
    result = project.run("validate")
    assert result.exit_code == 1
    lines = project.manifest("sales.yaml").read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if "connection: connection.warehous" in text)
    assert (f"Error: manifests/sales.yaml:{line}: spec.datasources[0].connection: unknown reference "
            "connection.warehous (did you mean 'connection.warehouse'?)") in result.stderr


def test_deleting_a_connection_a_dataset_made_outside_qrvey_iac_uses_is_refused(project, monkeypatch):
    """Qrvey tells which other datasets of the app use it (the dataset list's items carry their
    datasources in the emulator): one made by hand is named, by name and id."""
    import asyncio

    from qrvey_iac.adapters.qrvey.client import QrveyClient
    from qrvey_iac.core.keys import AppRef
    from qrvey_iac.emulator import EmulatorConfig, EmulatorTransport, create_app

    monkeypatch.setenv("WAREHOUSE_PASSWORD", PASSWORD)
    run_ok(project, "apply", "--auto-approve")
    connection_id = project.state()["resources"]["connection.warehouse"]["datasetId"]
    app = create_app(EmulatorConfig(api_key="k", data_file=project.world_path))

    async def made_by_hand():
        async with QrveyClient("http://e", "k", transport=EmulatorTransport(app)) as client:
            await client.create_dataset(AppRef("u-hq-owner", "a-sales"), {
                "datasetId": "by-hand", "name": "Made by hand", "columns": [],
                "datasources": [{"name": "t", "connectionId": connection_id, "connectorType": "MSSQL_LIVE",
                                 "tableName": "t"}]})
    asyncio.run(made_by_hand())
    app.state.emulator.save()
    destroy = project.run("destroy", "--auto-approve")            # the managed datasets go first: they do not count
    assert destroy.exit_code == 1
    assert ("connection.warehouse cannot be planned (its delete is refused: 1 dataset(s) in Qrvey still use it: "
            "'Made by hand' (id by-hand, not managed by qrvey-iac)") in destroy.stdout
    assert connection_id in project.world()["connections"]
    excluded = project.run("destroy", "--exclude", "connection.warehouse", "--auto-approve")
    assert excluded.exit_code == 0, excluded.output
    assert set(project.state()["resources"]) == {"connection.warehouse"}
