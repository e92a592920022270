"""Adoption and a lost state through the CLI, against the embedded emulator (issue 14).

The emulator's world file is Qrvey's side: a command that writes nothing to Qrvey leaves it
byte for byte as it was (wiring saves it only when a call changed it)."""

from __future__ import annotations

import copy

from qrvey_iac.core.kinds.base import ENVIRONMENT_ATTRIBUTE, OWNER_ATTRIBUTE

EXAMPLE_ADDRESSES = 11      # the example: 1 connection, 6 datasets, 4 views


def _applied(project):
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    return project.world_path.read_bytes()


def _lose_state(project):
    for path in project.state_path.parent.glob("local.json*"):
        path.unlink()


def _by_name(world, name):
    return next(d for d in world["datasets"].values() if d["name"] == name)


def test_a_deleted_state_plans_only_imports_and_apply_creates_nothing(project):
    world = _applied(project)
    ids = {a: r["datasetId"] for a, r in project.state()["resources"].items()}
    _lose_state(project)

    plan = project.run("plan")
    assert plan.exit_code == 0, plan.output
    assert plan.output.count("will be imported (not in the state; found in Qrvey by its marker)") == EXAMPLE_ADDRESSES
    assert "will be created" not in plan.output and "will be updated" not in plan.output
    assert f"Plan: {EXAMPLE_ADDRESSES} to import, 0 to create, 0 to update, 0 to replace, 0 to delete." in plan.output

    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert f"Resources: {EXAMPLE_ADDRESSES} imported, 0 created" in applied.output
    assert project.world_path.read_bytes() == world          # no create, no write call of any kind
    assert {a: r["datasetId"] for a, r in project.state()["resources"].items()} == ids
    again = project.run("plan", "--detailed-exitcode")
    assert again.exit_code == 0 and "No changes." in again.output

    assert project.run("state", "rm", "dataset.products").exit_code == 0
    one = project.run("plan")
    assert "Plan: 1 to import, 0 to create, 0 to update, 0 to replace, 0 to delete." in one.output
    assert "<= dataset.products [id=" + ids["dataset.products"] + "]" in one.output
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert project.world_path.read_bytes() == world
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_the_plan_json_and_pr_comment_show_the_imports(project):
    _applied(project)
    assert project.run("state", "rm", "view.orders-emea").exit_code == 0
    as_json = project.run("plan", "--format", "json")
    assert '"op": "import"' in as_json.output and '"import": 1' in as_json.output
    markdown = project.run("plan", "--format", "markdown")
    assert "| import |" in markdown.output and "**import**" in markdown.output


def test_import_of_an_object_whose_columns_differ_shows_exactly_those_changes(project):
    _applied(project)
    products = project.dataset_id("dataset.products")
    assert project.run("state", "rm", "dataset.products").exit_code == 0

    def retype(world):
        columns = world["datasets"][products]["columns"]
        next(c for c in columns if c["columnName"] == "ListPrice")["columnType"] = "STRING"
    project.edit_world(retype)

    imported = project.run("import", "dataset.products", products)
    assert imported.exit_code == 0, imported.output
    assert f"Imported {products} as dataset.products" in imported.output
    assert "columns.ListPrice.columnType" in imported.output
    assert project.state()["resources"]["dataset.products"]["datasetId"] == products
    plan = project.run("plan")
    assert "Plan: 0 to create, 1 to update, 0 to replace, 0 to delete." in plan.output
    field_lines = ("      ~ ", "      + ", "      - ")
    changed = [line.strip() for line in plan.output.splitlines() if line.startswith(field_lines)]
    assert changed == ['~ columns.ListPrice.columnType: "STRING" → "NUMBER"']
    assert "[drift]" not in plan.output                 # the manifests' change, not a hand edit
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_spec_adopt_takes_a_dataset_made_in_the_ui_under_management(project):
    _applied(project)
    products = project.dataset_id("dataset.products")
    assert project.run("state", "rm", "dataset.products").exit_code == 0

    def made_in_the_ui(world):                 # as if built by hand: no marker, one column type differs
        dataset = world["datasets"][products]
        dataset["customAttributes"] = {}
        next(c for c in dataset["columns"] if c["columnName"] == "Sku")["columnType"] = "NUMBER"
    project.edit_world(made_in_the_ui)
    project.replace_in("sales.yaml", "  name: Products\n", f"  name: Products\n  adopt: {{datasetId: {products}}}\n")

    plan = project.run("plan")
    assert plan.exit_code == 0, plan.output
    assert "# dataset.products will be imported (spec.adopt)" in plan.output
    assert f'+ customAttributes.{OWNER_ATTRIBUTE} = "dataset.products"' in plan.output
    assert f'+ customAttributes.{ENVIRONMENT_ATTRIBUTE} = "local"' in plan.output
    assert '~ columns.Sku.columnType: "NUMBER" → "STRING"' in plan.output
    assert "Plan: 1 to import, 0 to create, 0 to update" in plan.output
    before = len(project.world()["datasets"])
    assert project.run("apply", "--auto-approve").exit_code == 0
    world = project.world()
    assert len(world["datasets"]) == before
    assert world["datasets"][products]["customAttributes"] == {OWNER_ATTRIBUTE: "dataset.products",
                                                               ENVIRONMENT_ATTRIBUTE: "local"}
    assert project.run("plan", "--detailed-exitcode").exit_code == 0      # adopt is inert now


def test_spec_adopt_of_an_unknown_id_or_a_tracked_one_is_a_precise_error(project):
    _applied(project)
    orders = project.dataset_id("dataset.orders")
    assert project.run("state", "rm", "dataset.products").exit_code == 0
    project.replace_in("sales.yaml", "  name: Products\n", "  name: Products\n  adopt: {datasetId: no-such-id}\n")
    missing = project.run("plan")
    assert missing.exit_code == 1
    assert "dataset.products spec.adopt.datasetId no-such-id does not exist in app a-sales" in missing.output
    assert "manifests/sales.yaml:" in missing.output
    project.replace_in("sales.yaml", "no-such-id", orders)
    tracked = project.run("plan")
    assert tracked.exit_code == 1
    assert f"spec.adopt.datasetId {orders} is already managed as dataset.orders" in tracked.output
    assert "Traceback" not in missing.output + tracked.output


def test_two_objects_carrying_one_marker_are_an_error_naming_both_and_nothing_is_created(project):
    _applied(project)
    products = project.dataset_id("dataset.products")
    _lose_state(project)

    def duplicated(world):
        copied = copy.deepcopy(world["datasets"][products])
        copied["datasetId"] = "copy-of-products"
        world["datasets"]["copy-of-products"] = copied
        world["datasetOrder"].append("copy-of-products") if isinstance(world.get("datasetOrder"), list) else None
    project.edit_world(duplicated)
    world = project.world_path.read_bytes()
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 1
    assert products in result.output and "copy-of-products" in result.output
    assert "nothing is created" in result.output
    assert project.world_path.read_bytes() == world
    drift = project.run("drift")
    assert drift.exit_code == 1 and products in drift.output and "copy-of-products" in drift.output


def test_drift_lists_marked_objects_that_no_state_records(project):
    _applied(project)
    products = project.dataset_id("dataset.products")
    assert project.run("state", "rm", "dataset.products").exit_code == 0
    text = project.manifest("sales.yaml").read_text()
    start = text.index("---\napiVersion: qrvey-iac/v1\nkind: Dataset\nmetadata:\n  name: products")
    end = text.index("---", start + 4)
    project.manifest("sales.yaml").write_text(text[:start] + text[end:])
    result = project.run("drift")
    assert result.exit_code == 2
    assert (f"Marked by environment local but in no state: {products} in app a-sales carries the marker of "
            "dataset.products (not in the manifests) but no state resource records it") in result.output


def test_the_import_command_refuses_what_it_cannot_adopt(project):
    _applied(project)
    orders, products = project.dataset_id("dataset.orders"), project.dataset_id("dataset.products")
    unknown = project.run("import", "dataset.nope", products)
    assert unknown.exit_code == 1 and "dataset.nope is not in the manifests" in unknown.output
    tracked = project.run("import", "dataset.products", products)
    assert tracked.exit_code == 1 and "dataset.products is already in the state" in tracked.output
    assert project.run("state", "rm", "dataset.products").exit_code == 0
    no_id = project.run("import", "dataset.products", "no-such-id")
    assert no_id.exit_code == 1 and "no dataset no-such-id in app a-sales" in no_id.output
    twice = project.run("import", "dataset.products", orders)
    assert twice.exit_code == 1 and "is already managed as dataset.orders" in twice.output
    assert "dataset.products" not in project.state()["resources"]           # nothing recorded
    ok = project.run("import", "dataset.products", products)
    assert ok.exit_code == 0 and "It matches its manifest" in ok.output
    assert project.run("plan", "--detailed-exitcode").exit_code == 0
