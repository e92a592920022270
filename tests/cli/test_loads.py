"""Dataset loads through the CLI (issue 16 point 2): the example's loaded dataset, a load that
ends FAILED (the views of that dataset are not created; a rerun after the fix converges),
what plan shows, `qrvey-iac load`, a load left running by an earlier run."""

from __future__ import annotations

import json

import pytest

from qrvey_iac.emulator import EmulatorConfig, parse_faults
from qrvey_iac.emulator.injector import FaultInjector
from qrvey_iac.emulator.testing import running_server

KEY = "l0ad-KEY-7c1e"
ORDERS_VIEWS = {"view.orders-emea", "view.orders-apac"}


@pytest.fixture
def remote(project, monkeypatch):
    """The example project's local environment pointed at a served emulator with ``faults``."""
    servers = []
    monkeypatch.setenv("QRVEY_API_KEY", KEY)

    def start(spec: str = ""):
        server = running_server(EmulatorConfig(api_key=KEY, faults=parse_faults(spec)))
        servers.append(server)
        running = server.__enter__()
        config = project.root / "qrvey-iac.yaml"
        config.write_text(config.read_text().replace(
            "    endpoint: local\n", f"    endpoint: {running.base_url}\n    apiKeyEnv: QRVEY_API_KEY\n", 1))
        return running

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def set_faults(server, spec: str) -> None:
    """The served emulator's faults from now on (the source broken, or fixed)."""
    server.emulator.injector = FaultInjector(parse_faults(spec), seed=0)


def world_dataset(project, address) -> dict:
    return project.world()["datasets"][project.dataset_id(address)]


def views_of(datasets: dict, source_id: str) -> list[str]:
    return [d["datasetId"] for d in datasets.values()
            if d["datasetType"] == "VIEW" and (d.get("sourceDataset") or {}).get("datasetId") == source_id]


def load_orders(project) -> None:
    """Orders (shared, with two views) asks to be loaded too: its views wait for its load."""
    project.replace_in("sales.yaml", "  name: Orders\n", "  name: Orders\n  load: true\n")


def test_the_quick_start_loads_monthly_revenue_and_converges(project):
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "↻ then loaded: a new dataset is empty (DRAFT) until loaded" in result.stdout
    assert "dataset.monthly-revenue: load started (status was DRAFT)" in result.stderr
    assert "1 loaded." in result.stdout
    assert world_dataset(project, "dataset.monthly-revenue")["status"] == "LOADED"
    assert world_dataset(project, "dataset.products")["status"] == "DRAFT"       # no load asked
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_views_of_a_loaded_dataset_are_created_after_its_load(project):
    load_orders(project)
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    loaded = next(i for i, line in enumerate(lines) if "dataset.orders: loaded after" in line)
    creating = [i for i, line in enumerate(lines) if "view.orders-" in line and "Creating" in line]
    assert len(creating) == 2 and min(creating) > loaded
    assert world_dataset(project, "dataset.orders")["status"] == "LOADED"
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_a_failed_load_fails_the_apply_its_views_are_not_created_and_a_rerun_converges(project, remote):
    load_orders(project)
    server = remote("POST */load: load-fail")             # every load fails: the source is broken
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "load:dataset.orders: failed: dataset.orders (dataset " in result.stderr
    assert "failed to load (status FAILED): Qrvey says: the data could not be loaded" in result.stderr
    assert "create:view.orders-emea" in result.stderr and "not started" in result.stderr
    state = project.state()
    assert not ORDERS_VIEWS & set(state["resources"])
    orders_id = state["resources"]["dataset.orders"]["datasetId"]
    assert views_of(server.emulator.world.datasets, orders_id) == []
    plan = project.run("plan")
    assert "# dataset.orders will be loaded (status FAILED, not loaded (load: true))" in plan.stdout
    set_faults(server, "")                                # the source fixed
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert ORDERS_VIEWS <= set(project.state()["resources"])
    assert len(views_of(server.emulator.world.datasets, orders_id)) == 2
    assert server.emulator.world.datasets[orders_id]["status"] == "LOADED"
    again = project.run("plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.output


def test_plan_shows_the_status_and_the_load_as_json_and_markdown(project, remote):
    load_orders(project)
    remote("POST */load: load-fail")
    assert project.run("apply", "--auto-approve").exit_code == 1
    as_json = json.loads(project.run("plan", "--format", "json").stdout)
    orders = [a for a in as_json["actions"] if a["address"] == "dataset.orders"]
    assert {(a["op"], a["status"]) for a in orders} == {("no-op", "FAILED"), ("load", "FAILED"), ("share", "FAILED")}
    assert as_json["summary"]["load"] == 2                 # orders and monthly-revenue: both failed
    customers = next(a for a in as_json["actions"] if a["address"] == "dataset.customers")
    assert (customers["status"], customers["load"]) == ("DRAFT", False)
    markdown = project.run("plan", "--format", "markdown").stdout
    assert "| load |" in markdown and "<code>dataset.orders</code> **load**" in markdown


def test_a_load_left_running_by_an_earlier_run_is_waited_for(project):
    load_orders(project)
    assert project.run("apply", "--auto-approve").exit_code == 0
    orders_id = project.dataset_id("dataset.orders")

    def loading(world):
        world["datasets"][orders_id]["status"] = "LOADING"
        world["loads"][orders_id] = {"pollsLeft": 5, "fails": False}   # each GET moves it on

    project.edit_world(loading)
    plan = project.run("plan")
    assert "dataset.orders will be loaded (a load is running (status LOADING; load: true): apply waits" in plan.stdout
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "dataset.orders: a load is already running; waiting for it" in result.stderr
    assert world_dataset(project, "dataset.orders")["status"] == "LOADED"
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_on_change_reloads_after_a_type_change_and_not_after_a_rename(project):
    project.replace_in("sales.yaml", "  name: Products\n", "  name: Products\n  load: onChange\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert world_dataset(project, "dataset.products")["status"] == "LOADED"
    project.replace_in("sales.yaml", "{columnName: ListPrice, columnType: NUMBER}",
                       "{columnName: ListPrice, columnType: STRING}")
    plan = project.run("plan")
    assert "↻ then loaded (status LOADED): a structural change (columns.ListPrice.columnType) needs a reload" \
        in plan.stdout
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert world_dataset(project, "dataset.products")["status"] == "LOADED"
    project.replace_in("sales.yaml", "  name: Products\n", "  name: Catalogue\n")
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 0 and "then loaded" not in result.stdout and "1 loaded" not in result.stdout
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_load_command_loads_on_demand(project):
    assert project.run("apply", "--auto-approve").exit_code == 0
    result = project.run("load", "dataset.products", "dataset.orders")
    assert result.exit_code == 0, result.output
    assert "Loaded dataset.products [id=" in result.stdout and "Loaded dataset.orders [id=" in result.stdout
    assert world_dataset(project, "dataset.products")["status"] == "LOADED"


def test_load_command_refuses_what_it_cannot_load_before_sending_anything(project):
    assert project.run("apply", "--auto-approve").exit_code == 0
    result = project.run("load", "dataset.product", "view.orders-emea")
    assert result.exit_code == 1
    assert "Error: load refused, nothing was sent:" in result.stderr
    assert "- dataset.product is not in the state (did you mean 'dataset.products'?): apply it first" in result.stderr
    assert "- view.orders-emea is a DatasetView, which holds no data of its own: load its source" in result.stderr
    assert world_dataset(project, "dataset.products")["status"] == "DRAFT"
    bad = project.run("load", "dataset.products", "--load-timeout", "soon")
    assert bad.exit_code == 1 and "--load-timeout" in bad.stderr and "not a duration: 'soon'" in bad.stderr


def test_load_command_names_a_dataset_whose_load_fails(project, remote):
    server = remote()
    assert project.run("apply", "--auto-approve").exit_code == 0
    set_faults(server, "POST */load: load-fail")
    result = project.run("load", "dataset.orders")
    assert result.exit_code == 1
    assert "Error: load stopped: 1 of 1 dataset(s) not loaded" in result.stderr
    assert "dataset.orders: dataset.orders (dataset " in result.stderr and "status FAILED" in result.stderr


def test_a_dataset_whose_connection_was_deleted_cannot_be_reloaded(project):
    assert project.run("apply", "--auto-approve").exit_code == 0

    connection_id = project.dataset_id("connection.warehouse")      # the example's orders are built on it

    def connection_deleted(world):     # deleted in Qrvey, behind qrvey-iac's back
        del world["connections"][connection_id]

    project.edit_world(connection_deleted)
    result = project.run("load", "dataset.orders")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "dataset.orders" in result.stderr
    assert f"cannot be reloaded: its connection {connection_id} was deleted" in result.stderr


def test_load_command_takes_the_state_lock(project):
    from tests.cli.test_feedback import held_lock

    assert project.run("apply", "--auto-approve").exit_code == 0
    holder = held_lock(project, 1.0)
    try:
        result = project.run("load", "dataset.products")
    finally:
        holder.join()
    assert result.exit_code == 1
    assert "Error: state " in result.stderr and "is locked by apply" in result.stderr
    assert world_dataset(project, "dataset.products")["status"] == "DRAFT"     # nothing was sent
