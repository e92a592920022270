"""The core loop through the CLI on the embedded emulator: apply, plan, drift, destroy;
each test with the state in a local file and in PostgreSQL."""

import re

import pytest


@pytest.fixture
def project(any_backend_project):
    return any_backend_project


EXAMPLE_ADDRESSES = {
    "dataset.orders", "dataset.customers", "dataset.products", "dataset.monthly-revenue",
    "dataset.emea-targets", "dataset.apac-campaigns",
    "view.orders-emea", "view.customers-emea", "view.orders-apac", "view.customers-apac",
}


def applied(project):
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("keep", [["sales.yaml"], ["sales.yaml", "regions.yaml"]])
def test_every_example_converges(project, keep):
    for path in project.root.joinpath("manifests").iterdir():
        if path.name not in keep:
            path.unlink()
    first = applied(project)
    assert "Apply complete!" in first.stdout
    plan = project.run("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    assert plan.stdout == "No changes. Qrvey matches the manifests.\n"


def test_apply_creates_every_example_object(project):
    result = applied(project)
    assert "Plan: 10 to create, 0 to update, 0 to replace, 0 to delete, 2 to share." in result.stdout
    state = project.state()
    assert set(state["resources"]) == EXAMPLE_ADDRESSES
    world = project.world()["datasets"]
    assert len(world) == 10
    views = [d for d in world.values() if d["datasetType"] == "VIEW"]
    assert len(views) == 4
    orders = world[project.dataset_id("dataset.orders")]
    assert orders["isPublic"] is True
    emea = world[project.dataset_id("view.orders-emea")]
    assert emea["sourceDataset"]["datasetId"] == orders["datasetId"]
    assert emea["appId"] == "a-emea" and emea["name"] == "Orders (EMEA)"
    renamed = [c for c in emea["columns"] if c.get("origColumnSourceName") == "Total"]
    assert renamed[0]["columnName"] == "Order total"
    # progress: one line per started and finished operation, with elapsed time
    assert re.search(r"\[\s*\d+\.\ds\] dataset\.orders: Creating\.\.\.", result.stderr)
    assert re.search(r"dataset\.orders: created after \d+\.\ds \[id=", result.stderr)


def test_column_type_change_is_one_field_then_converges(project):
    applied(project)
    project.replace_in("sales.yaml", "{columnName: Total, columnType: NUMBER}", "{columnName: Total, columnType: STRING}")
    plan = project.run("plan", "--detailed-exitcode")
    assert plan.exit_code == 2
    changes = [line.strip() for line in plan.stdout.splitlines() if line.strip().startswith(("~ ", "+ ", "- "))]
    assert changes == ["~ dataset.orders [id=%s]" % project.dataset_id("dataset.orders"),
                       '~ columns.Total.columnType: "NUMBER" → "STRING"']
    assert "Plan: 0 to create, 1 to update, 0 to replace, 0 to delete." in plan.stdout
    applied(project)
    live = project.world()["datasets"][project.dataset_id("dataset.orders")]
    assert [c["columnType"] for c in live["columns"] if c["columnName"] == "Total"] == ["STRING"]
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_removing_a_shared_dataset_and_its_views_deletes_views_first(project):
    applied(project)
    text = project.manifest("regions.yaml").read_text()
    kept = [doc for doc in text.split("---\n") if "source: dataset.orders" not in doc]
    project.manifest("regions.yaml").write_text("---\n".join(kept))
    sales = project.manifest("sales.yaml").read_text().split("---\n")
    project.manifest("sales.yaml").write_text("---\n".join(d for d in sales if "name: orders\n" not in d))
    plan = project.run("plan")
    destroyed = re.findall(r"# (\S+) will be destroyed", plan.stdout)
    assert destroyed.index("dataset.orders") > destroyed.index("view.orders-emea")
    assert destroyed.index("dataset.orders") > destroyed.index("view.orders-apac")
    assert "Plan: 0 to create, 0 to update, 0 to replace, 3 to delete." in plan.stdout
    result = applied(project)
    finished = re.findall(r"\] (\S+): destroyed", result.stderr)
    assert finished[-1] == "dataset.orders" and len(finished) == 3
    assert len(project.world()["datasets"]) == 7
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_display_name_rename_is_an_update_not_a_replace(project):
    applied(project)
    before = project.dataset_id("dataset.products")
    project.replace_in("sales.yaml", "name: Products\n", "name: Product catalogue\n")
    plan = project.run("plan")
    assert '~ name: "Products" → "Product catalogue"' in plan.stdout
    assert "0 to replace" in plan.stdout and "1 to update" in plan.stdout
    applied(project)
    assert project.dataset_id("dataset.products") == before
    assert project.world()["datasets"][before]["name"] == "Product catalogue"


def test_out_of_band_edit_is_drift_and_apply_puts_it_back(project):
    applied(project)
    dataset_id = project.dataset_id("dataset.customers")

    def rename(world):
        world["datasets"][dataset_id]["name"] = "Renamed in the UI"
    project.edit_world(rename)
    plan = project.run("plan")
    assert "# dataset.customers will be updated in place (changed outside qrvey-iac) [drift]" in plan.stdout
    assert '~ name: "Renamed in the UI" → "Customers"' in plan.stdout
    applied(project)
    assert project.world()["datasets"][dataset_id]["name"] == "Customers"
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_deleted_outside_is_recreated(project):
    applied(project)
    dataset_id = project.dataset_id("dataset.products")
    project.edit_world(lambda world: world["datasets"].pop(dataset_id))
    plan = project.run("plan")
    assert "# dataset.products will be created (deleted outside qrvey-iac) [drift]" in plan.stdout
    applied(project)
    assert project.dataset_id("dataset.products") != dataset_id
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_destroy_removes_everything_views_first(project):
    applied(project)
    result = project.run("destroy", "--auto-approve")
    assert result.exit_code == 0, result.output
    finished = re.findall(r"\] (\S+): destroyed", result.stderr)
    assert len(finished) == 10
    last_view = max(i for i, a in enumerate(finished) if a.startswith("view."))
    first_dataset = min(i for i, a in enumerate(finished) if a.startswith("dataset."))
    assert last_view < first_dataset
    assert project.world()["datasets"] == {}
    assert project.state()["resources"] == {}


def test_apply_asks_and_a_no_changes_nothing(project):
    result = project.run("apply", input="no\n")
    assert result.exit_code == 1
    assert "apply cancelled: nothing was changed" in result.stderr
    assert not project.state_exists() or project.state()["resources"] == {}
    result = project.run("apply", input="yes\n")
    assert result.exit_code == 0, result.output
    assert len(project.state()["resources"]) == 10


def test_second_writer_fails_at_once_naming_the_lock_holder(project):
    import os

    with project.locker().lock("apply (held by the test)"):
        result = project.run("apply", "--auto-approve")
    assert result.exit_code == 1
    assert f"is locked by apply (held by the test) (pid {os.getpid()} on" in result.stderr
    assert "Traceback" not in result.output
    assert applied(project)


def test_removing_optional_fields_from_a_manifest_removes_them_in_qrvey(project):
    project.replace_in("sales.yaml", "  name: Products\n", "  name: Products\n  dataSync: {schedule: daily}\n")
    applied(project)
    orders_id, products_id = project.dataset_id("dataset.orders"), project.dataset_id("dataset.products")
    view_id = project.dataset_id("view.orders-emea")
    assert project.world()["datasets"][products_id]["dataSync"] == {"schedule": "daily"}

    project.replace_in("sales.yaml", "  customAttributes:\n    team: revenue-analytics\n", "")
    project.replace_in("sales.yaml", "  dataSync: {schedule: daily}\n", "")
    project.replace_in("regions.yaml", "  columns:\n    - {column: Total, columnName: Order total}\n", "")
    plan = project.run("plan")
    assert '- customAttributes.team (was "revenue-analytics")' in plan.stdout
    assert '- dataSync.schedule (was "daily")' in plan.stdout               # per field, not one JSON value
    assert '~ columns.Total.columnName: "Order total" → "Total"' in plan.stdout   # what Qrvey will show
    assert "Plan: 0 to create, 3 to update, 0 to replace, 0 to delete." in plan.stdout
    applied(project)
    world = project.world()["datasets"]
    assert "team" not in world[orders_id]["customAttributes"]
    assert "dataSync" not in world[products_id]
    total = [c for c in world[view_id]["columns"] if c.get("origColumnSourceName") == "Total"]
    assert total[0]["columnName"] == "Total"
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_attributes_the_manifest_never_managed_are_left_alone(project):
    applied(project)
    orders_id = project.dataset_id("dataset.orders")

    def tag(world):
        world["datasets"][orders_id]["customAttributes"]["costCenter"] = "42"
    project.edit_world(tag)
    assert project.run("plan", "--detailed-exitcode").exit_code == 0
    project.replace_in("sales.yaml", "name: Products\n", "name: Catalogue\n")
    applied(project)
    assert project.world()["datasets"][orders_id]["customAttributes"]["costCenter"] == "42"
