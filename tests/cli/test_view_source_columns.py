"""Views follow their source (issue 16 point 3): a source column removed by hand, directly in
the emulator, shows in the views of it (qrvey-api.md §4), and `plan` and `drift` name the view
overrides that point at it. A managed source gets the column back from its manifest in the same
apply (not blocked); an unmanaged source cannot, so its view is blocked until fixed."""

from __future__ import annotations

import json

from test_unmanaged_sources import EXTERNAL_VIEW, PARTNER, PARTNER_ID, create_partner_source, in_qrvey

NOTE = ("spec.columns overrides column 'Total', which its source dataset.orders no longer has in Qrvey: "
        "this apply puts it back on dataset.orders first")


def remove_source_column(project, address: str, column: str) -> None:
    """Remove ``column`` from the dataset of ``address`` in the emulator's world file, by hand."""
    dataset_id = project.dataset_id(address)

    def edit(world):
        stored = world["datasets"][dataset_id]
        stored["columns"] = [c for c in stored["columns"] if c["columnName"] != column]
    project.edit_world(edit)


def test_a_source_column_removed_by_hand_is_named_by_plan_and_drift_then_apply_restores_it(project):
    assert project.run("apply", "--auto-approve").exit_code == 0
    remove_source_column(project, "dataset.orders", "Total")

    plan = project.run("plan")
    assert plan.exit_code == 0, plan.output
    assert f"# view.orders-emea will be updated in place (changed outside qrvey-iac; {NOTE}) [drift]" in plan.stdout
    assert "view.orders-apac" not in plan.stdout          # its override (CustomerId) still has its column
    drift = project.run("drift", "--format", "json")
    assert drift.exit_code == 2, drift.output
    reasons = {a["address"]: a["reason"] for a in json.loads(drift.stdout)["actions"] if a["op"] != "no-op"}
    assert NOTE in reasons["view.orders-emea"]
    assert reasons["dataset.orders"] == "changed outside qrvey-iac"

    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert project.run("plan").stdout.strip() == "No changes. Qrvey matches the manifests."
    view = project.world()["datasets"][project.dataset_id("view.orders-emea")]
    total = [c for c in view["columns"] if c["origColumnSourceName"] == "Total"]
    assert [c["columnName"] for c in total] == ["Order total"]


def test_a_source_column_retyped_by_hand_is_retyped_in_its_views(project):
    assert project.run("apply", "--auto-approve").exit_code == 0
    dataset_id = project.dataset_id("dataset.orders")

    def retype(world):
        for column in world["datasets"][dataset_id]["columns"]:
            if column["columnName"] == "Total":
                column["columnType"] = "STRING"
    project.edit_world(retype)
    def view_total_types():
        view = project.world()["datasets"][project.dataset_id("view.orders-emea")]
        return {c["columnType"] for c in view["columns"] if c["origColumnSourceName"] == "Total"}
    assert "columns.Total.columnType" in project.run("plan").stdout    # the source's drift
    assert view_total_types() == {"STRING"}        # the view, read by the plan, followed its source
    project.run("apply", "--auto-approve")
    assert view_total_types() == {"NUMBER"}


def test_an_unmanaged_source_that_lost_an_overridden_column_blocks_its_view(project, monkeypatch):
    monkeypatch.setenv("QI_SOURCE_ID", PARTNER_ID)
    assert project.run("apply", "--auto-approve").exit_code == 0
    in_qrvey(project, create_partner_source)
    project.manifest("partner.yaml").write_text(EXTERNAL_VIEW + "  columns:\n    - {column: Total, columnName: Sum}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0

    async def drop_total(client):
        source = await client.get_dataset(PARTNER, PARTNER_ID)
        body = {key: source[key] for key in ("name", "datasources")}
        body["columns"] = [{"columnName": "Units", "columnType": "NUMBER"}]
        await client.update_dataset(PARTNER, PARTNER_ID, body)
        await client.apply_changes(PARTNER, PARTNER_ID)
    in_qrvey(project, drop_total)

    plan = project.run("plan")
    assert "! view.partner-orders" in plan.stdout
    assert "no longer has column 'Total' that spec.columns overrides" in plan.stdout
    assert PARTNER_ID not in plan.output
    drift = project.run("drift")
    assert drift.exit_code == 2 and "no longer has column 'Total'" in drift.stdout
    refused = project.run("apply", "--auto-approve")
    assert refused.exit_code == 1 and "apply refused" in refused.stderr
    project.replace_in("partner.yaml", "  columns:\n    - {column: Total, columnName: Sum}\n", "")
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert project.run("plan").stdout.strip() == "No changes. Qrvey matches the manifests."


def test_a_new_view_overriding_a_column_an_unmanaged_source_lacks_is_blocked(project, monkeypatch):
    monkeypatch.setenv("QI_SOURCE_ID", PARTNER_ID)
    assert project.run("apply", "--auto-approve").exit_code == 0
    in_qrvey(project, create_partner_source)
    project.manifest("partner.yaml").write_text(EXTERNAL_VIEW + "  columns:\n    - {column: Units, visible: false}\n")
    plan = project.run("plan")
    assert "has no column 'Units' that spec.columns overrides" in plan.stdout

