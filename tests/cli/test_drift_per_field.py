"""Issue 13 points 1-3 through the CLI: per-field drift next to a manifest change, protect as a
state-only change, and protection that follows --target / --exclude."""

import json

import yaml

from tests.cli.test_pr_workflow import applied, protect_products


def edit_dataset(project, address, edit):
    dataset_id = project.dataset_id(address)

    def change(world):
        edit(world["datasets"][dataset_id])
    project.edit_world(change)


def set_override(project, overrides):
    config = yaml.safe_load((project.root / "qrvey-iac.yaml").read_text())
    config["environments"]["local"]["overrides"] = overrides
    (project.root / "qrvey-iac.yaml").write_text(yaml.safe_dump(config))


# -- point 3: selection and protection agree ----------------------------------------------------

def test_destroy_target_is_not_refused_for_an_unrelated_protected_dataset(project):
    protect_products(project)
    applied(project)
    result = project.run("destroy", "--target", "dataset.emea-targets", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "protected" not in result.output
    resources = project.state()["resources"]
    assert "dataset.emea-targets" not in resources
    assert "dataset.products" in resources and len(resources) == 10


def test_a_protected_dataset_excluded_does_not_block_the_rest(project):
    protect_products(project)
    applied(project)
    refused = project.run("destroy", "--exclude", "dataset.products", "--auto-approve")
    assert refused.exit_code == 1               # its connection cannot go while it stays
    assert "connection.warehouse cannot be planned (its delete is refused: 1 dataset(s) in Qrvey still use it: " \
           "dataset.products" in refused.stdout
    result = project.run("destroy", "--exclude", "dataset.products", "--exclude", "connection.warehouse",
                         "--auto-approve")
    assert result.exit_code == 0, result.output
    assert set(project.state()["resources"]) == {"dataset.products", "connection.warehouse"}


def test_a_targeted_protected_dataset_still_refuses(project):
    protect_products(project)
    applied(project)
    for args in (("--target", "dataset.products"), ()):
        result = project.run("destroy", *args, "--auto-approve")
        assert result.exit_code == 1
        assert "the plan would destroy protected resources: dataset.products (delete" in result.stderr
    assert len(project.state()["resources"]) == 11


def test_plan_target_skips_a_protected_delete_elsewhere(project):
    protect_products(project)
    applied(project)
    documents = project.manifest("sales.yaml").read_text().split("---\n")
    project.manifest("sales.yaml").write_text("\n---\n".join(d for d in documents if "name: products" not in d))
    set_override(project, {})
    project.replace_in("sales.yaml", "name: Customers\n", "name: Clients\n")
    result = project.run("plan", "--target", "dataset.customers")
    assert result.exit_code == 0, result.output
    assert "~ dataset.customers" in result.stdout and "- dataset.products left out: not targeted" in result.stdout
    assert "dataset.products will be destroyed" not in result.stdout
    refused = project.run("plan")
    assert refused.exit_code == 1 and "dataset.products (delete" in refused.stderr


# -- point 1: per-field drift next to a manifest change ----------------------------------------

def retype_by_hand(project, address, column, column_type):
    def edit(dataset):
        for entry in dataset["columns"]:
            if entry["columnName"] == column:
                entry["columnType"] = column_type
    edit_dataset(project, address, edit)


def test_a_hand_edit_next_to_the_pull_requests_change_is_drift_in_text_markdown_json_and_drift(project):
    applied(project)
    project.replace_in("sales.yaml", "name: Orders\n", "name: Orders (all regions)\n")
    retype_by_hand(project, "dataset.orders", "Total", "STRING")

    text = project.run("plan")
    assert text.exit_code == 0, text.output
    assert "# dataset.orders will be updated in place (changed in the manifests and changed outside qrvey-iac) " \
           "[drift]" in text.stdout
    assert '~ columns.Total.columnType: "STRING" → "NUMBER"  [drift]' in text.stdout
    assert '~ name: "Orders" → "Orders (all regions)"  [manifests]' in text.stdout

    markdown = project.run("plan", "--format", "markdown").stdout
    assert '| <code>columns.Total.columnType</code> | <code>"STRING"</code> | <code>"NUMBER"</code> | **drift** |' \
        in markdown
    assert '| <code>name</code> | <code>"Orders"</code> | <code>"Orders (all regions)"</code> | manifests |' in markdown

    data = json.loads(project.run("plan", "--format", "json").stdout)
    (orders,) = [a for a in data["actions"] if a["address"] == "dataset.orders"]
    assert orders["drift"] is True
    assert [(c["path"], c["drift"]) for c in orders["changes"]] == [("columns.Total.columnType", True), ("name", False)]

    drift = project.run("drift")
    assert drift.exit_code == 2
    drifted, pending = drift.stdout.split("Manifest changes not applied yet (1):")
    assert "Changed outside qrvey-iac (1):" in drifted and "columns.Total.columnType" in drifted
    assert "name:" not in drifted
    assert '~ name: "Orders" → "Orders (all regions)"' in pending and "columns.Total" not in pending
    drift_json = json.loads(project.run("drift", "--format", "json").stdout)
    assert [(c["path"], c["drift"]) for a in drift_json["actions"] if a["address"] == "dataset.orders"
            for c in a["changes"]] == [("columns.Total.columnType", True), ("name", False)]

    refresh_only = project.run("plan", "--refresh-only").stdout
    assert "columns.Total.columnType" in refresh_only and "Orders (all regions)" not in refresh_only

    assert project.run("plan", "--out", "p.json").exit_code == 0     # a reviewed plan applies as it is
    result = project.run("apply", "p.json")
    assert result.exit_code == 0, result.output
    orders = project.world()["datasets"][project.dataset_id("dataset.orders")]
    assert orders["name"] == "Orders (all regions)"
    assert {c["columnName"]: c["columnType"] for c in orders["columns"]}["Total"] == "NUMBER"
    assert project.run("drift").exit_code == 0


def test_after_apply_a_hand_edit_alone_is_drift_and_a_manifest_change_alone_is_not(project):
    applied(project)
    retype_by_hand(project, "dataset.customers", "Segment", "NUMBER")
    result = project.run("plan")
    assert "# dataset.customers will be updated in place (changed outside qrvey-iac) [drift]" in result.stdout
    assert "[manifests]" not in result.stdout
    applied(project)
    project.replace_in("sales.yaml", "name: Customers\n", "name: Clients\n")
    result = project.run("plan")
    assert "# dataset.customers will be updated in place (changed in the manifests)\n" in result.stdout
    assert "[drift]" not in result.stdout


# -- point 2: protect is a state-only change ----------------------------------------------------

def test_protect_toggled_in_overrides_is_state_only_never_drift_and_sends_nothing(project):
    applied(project)
    world_before = project.world_path.read_bytes()
    for protect in (True, False):
        set_override(project, {"dataset.products": {"protect": protect}})
        plan = project.run("plan", "--detailed-exitcode")
        assert plan.exit_code == 2, plan.output           # a change to record: apply has something to do
        assert (f"# dataset.products will be updated in the state only (protect: {str(protect).lower()} in the "
                "manifests; no API call)") in plan.stdout
        assert "[drift]" not in plan.stdout
        json_plan = json.loads(project.run("plan", "--format", "json").stdout)
        (action,) = [a for a in json_plan["actions"] if a["op"] != "no-op"]
        assert (action["drift"], action["changes"]) == (False, [
            {"path": "protect", "before": not protect, "after": protect, "drift": False, "state_only": True}])
        drift = project.run("drift")
        assert drift.exit_code == 0, drift.output
        assert drift.stdout.startswith("No drift: Qrvey matches the manifests")
        assert "Recorded in the state only by the next apply, not drift (1):" in drift.stdout
        assert "Changed outside qrvey-iac" not in drift.stdout
        assert project.run("plan", "--refresh-only").stdout.endswith("No changes. Qrvey matches the manifests.\n")
        result = project.run("apply", "--auto-approve")
        assert result.exit_code == 0, result.output
        assert "dataset.products: Updating" in result.stderr
        assert project.world_path.read_bytes() == world_before     # no API call changed anything in Qrvey
        assert project.state()["resources"]["dataset.products"]["protect"] is protect
        assert project.run("drift").exit_code == 0


def test_protect_toggled_in_a_manifest_is_state_only_too(project):
    applied(project)
    project.replace_in("sales.yaml", "name: Orders\n", "name: Orders\n  protect: true\n")
    result = project.run("plan")
    assert "dataset.orders will be updated in the state only (protect: true in the manifests; no API call)" \
        in result.stdout
    assert project.run("drift").exit_code == 0


def test_a_plan_file_of_format_1_is_refused_with_what_to_do(project):
    applied(project)
    project.replace_in("sales.yaml", "name: Products\n", "name: Catalogue\n")
    assert project.run("plan", "--out", "p.json").exit_code == 0
    data = json.loads((project.root / "p.json").read_text())
    assert data["format_version"] == 2
    for action in data["actions"]:
        for change in action["changes"]:
            del change["drift"], change["state_only"]
    (project.root / "old.json").write_text(json.dumps({**data, "format_version": 1}))
    result = project.run("apply", "old.json")
    assert result.exit_code == 1
    assert "Error: plan file old.json has format_version 1, written by an older qrvey-iac; run qrvey-iac plan " \
           "--out again and review the new plan" in result.stderr
    assert "Traceback" not in result.output
