"""A view over a dataset qrvey-iac does not manage: when that source is deleted or unshared in
Qrvey, only the views that use it are blocked (reported as drift, with what to do); every other
resource still plans, `--exclude` of those views applies the rest, and apply refuses the rest
only while they are in the plan."""

import asyncio
import json

import pytest

from qrvey_iac.adapters.qrvey.client import QrveyClient
from qrvey_iac.core.keys import AppRef
from qrvey_iac.emulator import EmulatorConfig, EmulatorTransport, create_app

PARTNER_ID = "partner-orders-source-id"        # read through ${env:QI_SOURCE_ID}: a secret
EXTERNAL_VIEW = """
---
apiVersion: qrvey-iac/v1
kind: DatasetView
metadata: {name: partner-orders}
spec:
  app: apac
  source: {appId: a-partner, userId: u-partner, datasetId: "${env:QI_SOURCE_ID}"}
  name: Partner orders
"""
PARTNER = AppRef("u-partner", "a-partner")


def in_qrvey(project, act):
    """Do ``act(client)`` in the project's (persisted) emulator world, as someone in the Qrvey UI would."""
    app = create_app(EmulatorConfig(api_key="k", data_file=project.world_path))

    async def run():
        async with QrveyClient("http://e", "k", transport=EmulatorTransport(app)) as client:
            await act(client)
        app.state.emulator.save()   # in-process, the emulator writes its file only when told
    asyncio.run(run())


async def create_partner_source(client):
    body = {"datasetId": PARTNER_ID, "name": "Partner",
            "datasources": [{"name": "p", "connectionId": "c", "connectorType": "MSSQL_LIVE", "tableName": "t"}],
            "columns": [{"columnName": "Total", "columnType": "NUMBER"}]}
    await client.create_dataset(PARTNER, body)
    await client.set_shared(PARTNER, PARTNER_ID, True)


async def delete_source(client):
    await client.delete_dataset(PARTNER, PARTNER_ID)


async def unshare_source(client):
    await client.set_shared(PARTNER, PARTNER_ID, False)


async def share_source(client):
    await client.set_shared(PARTNER, PARTNER_ID, True)


@pytest.fixture
def with_partner_view(project, monkeypatch):
    """The example applied, plus a view of a partner's shared dataset that qrvey-iac does not manage."""
    monkeypatch.setenv("QI_SOURCE_ID", PARTNER_ID)
    assert project.run("apply", "--auto-approve").exit_code == 0
    in_qrvey(project, create_partner_source)
    project.manifest("partner.yaml").write_text(EXTERNAL_VIEW)
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "view.partner-orders" in project.state()["resources"]
    return project


def rename_products(project):
    project.replace_in("sales.yaml", "name: Products\n", "name: Catalogue\n")


@pytest.mark.parametrize("by_hand, said", [
    (delete_source, "was deleted in Qrvey: restore it"),
    (unshare_source, "is no longer shared in Qrvey: share it again"),
])
def test_a_source_gone_or_unshared_blocks_only_its_views(with_partner_view, by_hand, said):
    project = with_partner_view
    in_qrvey(project, by_hand)
    rename_products(project)

    drift = project.run("drift")
    assert drift.exit_code == 2, drift.output
    assert "Changed outside qrvey-iac (1):" in drift.stdout
    assert (f"# view.partner-orders cannot be planned (its source dataset (sensitive) in app a-partner {said}, "
            "or point the view at another shared dataset, or leave it out with --exclude view.partner-orders) "
            "[drift]") in drift.stdout
    assert PARTNER_ID not in drift.output

    plan = project.run("plan", "--format", "json", "--detailed-exitcode")
    assert plan.exit_code == 2, plan.output
    actions = {a["address"]: a for a in json.loads(plan.stdout)["actions"]}
    assert actions["view.partner-orders"]["op"] == "blocked" and actions["view.partner-orders"]["drift"] is True
    assert actions["dataset.products"]["op"] == "update"          # every other resource still plans
    assert {a["op"] for k, a in actions.items() if k not in ("view.partner-orders", "dataset.products")} == {"no-op"}
    assert PARTNER_ID not in plan.output

    refused = project.run("apply", "--auto-approve")
    assert refused.exit_code == 1
    assert ("Error: apply refused: 1 resource(s) cannot be planned (view.partner-orders; the plan above says why); "
            "nothing was changed. Fix them, or run apply --exclude view.partner-orders to apply the rest"
            in refused.stderr)
    assert project.world()["datasets"][project.dataset_id("dataset.products")]["name"] == "Products"

    saved = project.run("plan", "--out", "p.json")
    assert saved.exit_code == 0, saved.output
    from_file = project.run("apply", "p.json")
    assert from_file.exit_code == 1
    assert "plan again with --exclude view.partner-orders --out FILE and apply that" in from_file.stderr

    excluded = project.run("apply", "--auto-approve", "--exclude", "view.partner-orders")
    assert excluded.exit_code == 0, excluded.output
    assert "Apply complete! Resources: 0 created, 1 updated" in excluded.stdout
    assert project.world()["datasets"][project.dataset_id("dataset.products")]["name"] == "Catalogue"
    assert "view.partner-orders" in project.state()["resources"]     # blocked, never touched


def test_the_view_plans_again_once_its_source_is_shared_again(with_partner_view):
    project = with_partner_view
    in_qrvey(project, unshare_source)
    assert project.run("drift").exit_code == 2
    in_qrvey(project, share_source)
    clean = project.run("drift")
    assert clean.exit_code == 0, clean.output


def test_a_new_view_over_a_missing_source_is_blocked_not_an_error(project, monkeypatch):
    monkeypatch.setenv("QI_SOURCE_ID", PARTNER_ID)
    project.manifest("partner.yaml").write_text(EXTERNAL_VIEW)
    plan = project.run("plan")
    assert plan.exit_code == 0, plan.output
    assert ("# view.partner-orders cannot be planned (its source dataset (sensitive) in app a-partner does not "
            "exist: check spec.source.datasetId, or point the view at another shared dataset, or leave it out "
            "with --exclude view.partner-orders)\n") in plan.stdout
    assert "[drift]" not in plan.stdout.split("view.partner-orders cannot be planned")[1].splitlines()[0]
    assert "Plan: 11 to create, 0 to update, 0 to replace, 0 to delete, 2 to share, 1 to load, 1 blocked" in plan.stdout
    assert PARTNER_ID not in plan.output
