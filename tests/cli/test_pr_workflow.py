"""Saved plans, drift, selection, environments, schema: the pull-request workflow."""

import json

import yaml

from qrvey_iac.core.plan import Plan


def applied(project, *extra):
    result = project.run("apply", "--auto-approve", *extra)
    assert result.exit_code == 0, result.output
    return result


def rename_in_world(project, address, name):
    dataset_id = project.dataset_id(address)

    def edit(world):
        world["datasets"][dataset_id]["name"] = name
    project.edit_world(edit)


def test_saved_plan_applies_exactly_what_was_reviewed(project):
    applied(project)
    project.replace_in("sales.yaml", "name: Products\n", "name: Catalogue\n")
    assert project.run("plan", "--out", "p.json").exit_code == 0
    saved = Plan.model_validate({k: v for k, v in json.loads((project.root / "p.json").read_text()).items() if k != "summary"})
    assert [(a.op, a.address) for a in saved.changes] == [("update", "dataset.products")]
    result = project.run("apply", "p.json")
    assert result.exit_code == 0, result.output
    assert "Apply complete! Resources: 0 created, 1 updated" in result.stdout
    assert project.world()["datasets"][project.dataset_id("dataset.products")]["name"] == "Catalogue"
    again = project.run("apply", "p.json")
    assert again.exit_code == 1
    assert "the state changed since the plan was made" in again.stderr


def test_the_json_plan_pins_every_object_it_read_and_the_saved_one_the_same(project):
    """Fingerprints are taken only for a plan that is saved or shown as JSON (both hold them);
    the saved one must pin every object read, or a change made meanwhile would go unseen."""
    applied(project)
    shown = project.run("plan", "--format", "json")
    assert shown.exit_code == 0, shown.output
    pinned = json.loads(shown.stdout)["fingerprints"]
    assert set(pinned) == set(project.state()["resources"]) and len(pinned) == 11
    assert project.run("plan", "--out", "p.json").exit_code == 0
    assert json.loads((project.root / "p.json").read_text())["fingerprints"] == pinned


def test_saved_plan_refuses_when_an_object_it_read_moved(project):
    applied(project)
    project.replace_in("sales.yaml", "name: Products\n", "name: Catalogue\n")
    assert project.run("plan", "--out", "p.json").exit_code == 0
    rename_in_world(project, "dataset.customers", "Edited in the UI")
    result = project.run("apply", "p.json")
    assert result.exit_code == 1
    assert "the saved plan is stale; nothing was changed" in result.stderr
    assert "- dataset.customers changed in Qrvey since the plan was made (edited)" in result.stderr
    assert "dataset.products" not in result.stderr
    assert project.world()["datasets"][project.dataset_id("dataset.products")]["name"] == "Products"


def test_plan_against_empty_state_applies_once(project):
    assert project.run("plan", "--out", "p.json").exit_code == 0
    assert not project.state_path.exists()
    first = project.run("apply", "p.json")
    assert first.exit_code == 0, first.output
    assert len(project.world()["datasets"]) == 10
    second = project.run("apply", "p.json")
    assert second.exit_code == 1
    assert "a plan can be applied once" in second.stderr
    assert len(project.world()["datasets"]) == 10


def test_saved_plan_refuses_changed_manifests_and_bad_files(project):
    assert project.run("plan", "--out", "p.json").exit_code == 0
    project.replace_in("sales.yaml", "name: Products\n", "name: Catalogue\n")
    result = project.run("apply", "p.json")
    assert result.exit_code == 1 and "the manifests changed since the plan was made" in result.stderr
    text = (project.root / "p.json").read_text()
    (project.root / "cut.json").write_text(text[: len(text) // 2])
    result = project.run("apply", "cut.json")
    assert result.exit_code == 1 and "is not valid JSON (truncated or not a plan?)" in result.stderr
    assert "Traceback" not in result.output
    assert not project.state_path.exists()


def test_drift_exit_codes(project):
    applied(project)
    clean = project.run("drift")
    assert clean.exit_code == 0, clean.output
    assert clean.stdout.startswith("No drift")
    rename_in_world(project, "dataset.orders", "Hand edited")
    drifted = project.run("drift")
    assert drifted.exit_code == 2
    assert "Changed outside qrvey-iac (1):" in drifted.stdout
    assert '~ name: "Hand edited" → "Orders"' in drifted.stdout
    as_json = project.run("drift", "--format", "json")
    assert as_json.exit_code == 2
    actions = [a for a in json.loads(as_json.stdout)["actions"] if a["op"] != "no-op"]
    assert [(a["address"], a["drift"]) for a in actions] == [("dataset.orders", True)]
    broken = project.run("drift", "--env", "nope")
    assert broken.exit_code == 1
    # drift only reads
    assert project.world()["datasets"][project.dataset_id("dataset.orders")]["name"] == "Hand edited"


def test_refresh_only_shows_drift_but_not_manifest_changes(project):
    applied(project)
    rename_in_world(project, "dataset.orders", "Hand edited")
    project.replace_in("sales.yaml", "name: Products\n", "name: Catalogue\n")
    result = project.run("plan", "--refresh-only")
    assert "dataset.orders" in result.stdout and "dataset.products" not in result.stdout


def test_target_pulls_in_dependencies_and_exclude_leaves_out_dependents(project):
    result = project.run("plan", "--target", "view.orders-emea")
    assert result.exit_code == 0, result.output
    assert "Plan: 3 to create, 0 to update, 0 to replace, 0 to delete, 1 to share." in result.stdout
    assert "dataset.orders pulled in: needed by a target" in result.stdout
    assert "connection.warehouse pulled in: needed by a target" in result.stdout    # dataset.orders' connection
    result = project.run("plan", "--exclude", "dataset.orders")
    assert "Plan: 8 to create" in result.stdout
    assert "view.orders-emea left out: it depends on excluded dataset.orders" in result.stdout
    assert "view.orders-apac left out: it depends on excluded dataset.orders" in result.stdout
    applied(project, "--target", "view.orders-emea")
    assert set(project.state()["resources"]) == {"connection.warehouse", "dataset.orders", "view.orders-emea"}
    unknown = project.run("plan", "--target", "dataset.nope")
    assert unknown.exit_code == 1 and "unknown address dataset.nope" in unknown.stderr


def test_environment_overrides_values_file_and_var(project):
    config = yaml.safe_load((project.root / "qrvey-iac.yaml").read_text())
    config["environments"]["local"]["overrides"] = {"dataset.products": {"protect": True}}
    (project.root / "qrvey-iac.yaml").write_text(yaml.safe_dump(config))
    (project.root / "ci.yaml").write_text("warehouse_db: analytics\n")
    applied(project, "--var-file", "ci.yaml", "--var", "crm_connection=conn-crm-2")
    world = project.world()["datasets"]
    products = world[project.dataset_id("dataset.products")]
    customers = world[project.dataset_id("dataset.customers")]
    assert products["datasources"][0]["database"] == "analytics"
    assert customers["datasources"][0]["connectionId"] == "conn-crm-2"
    assert project.state()["resources"]["dataset.products"]["protect"] is True
    project.manifest("sales.yaml").write_text(
        "\n---\n".join(d for d in project.manifest("sales.yaml").read_text().split("---\n") if "name: products" not in d))
    config["environments"]["local"]["overrides"] = {}
    (project.root / "qrvey-iac.yaml").write_text(yaml.safe_dump(config))
    refused = project.run("plan", "--var-file", "ci.yaml", "--var", "crm_connection=conn-crm-2")
    assert refused.exit_code == 1
    assert "the plan would destroy protected resources: dataset.products (delete: removed from the manifests)" in refused.stderr


def test_env_secrets_are_masked_in_plans_and_plan_files(project, monkeypatch):
    monkeypatch.setenv("QI_SECRET_DB", "s3cr3t-database-name")
    project.replace_in("sales.yaml", "database: crm\n", "database: ${env:QI_SECRET_DB}\n")
    for fmt in ("text", "json"):
        result = project.run("plan", "--format", fmt, "--out", "p.json")
        assert "s3cr3t-database-name" not in result.output
    assert "s3cr3t-database-name" not in (project.root / "p.json").read_text()
    assert "(sensitive)" in (project.root / "p.json").read_text()
    result = project.run("apply", "p.json")
    assert result.exit_code == 0, result.output
    assert "s3cr3t-database-name" not in result.output
    customers = project.world()["datasets"][project.dataset_id("dataset.customers")]
    assert customers["datasources"][0]["database"] == "s3cr3t-database-name"
    assert "s3cr3t-database-name" not in project.state_path.read_text()


def test_schema_validates_examples_and_rejects_an_invalid_one(project):
    import jsonschema

    schema = json.loads(project.run("schema").stdout)
    validator = jsonschema.Draft202012Validator(schema)
    documents = [d for p in sorted((project.root / "manifests").glob("*.yaml"))
                 for d in yaml.safe_load_all(p.read_text()) if d]
    assert len(documents) == 11
    for document in documents:
        validator.validate(document)
    dataset = next(d for d in documents if d["kind"] == "Dataset")
    bad = dict(dataset, spec={**dataset["spec"], "columns": [{"columnName": "x", "columnTyp": "NUMBER"}]})
    assert list(validator.iter_errors(bad))


def test_committed_schema_matches_the_models_and_examples_reference_it(project):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    committed = json.loads((repo / "schema" / "manifest.schema.json").read_text())
    assert committed == json.loads(project.run("schema").stdout), \
        "schema/manifest.schema.json is stale: run `qrvey-iac schema > schema/manifest.schema.json`"
    for manifest in sorted((repo / "manifests").glob("*.yaml")):
        assert manifest.read_text().startswith("# yaml-language-server: $schema=../schema/manifest.schema.json")


def test_rate_limit_option(project):
    result = project.run("apply", "--auto-approve", "--rate-limit", "500/s")
    assert result.exit_code == 0, result.output
    bad = project.run("plan", "--rate-limit", "0/s")
    assert bad.exit_code == 1
    assert bad.stderr.splitlines()[0] == "Error: --rate-limit: expected N/s with N > 0, e.g. 20/s; got '0/s'"


def test_state_commands(project):
    applied(project)
    listed = project.run("state", "list")
    assert listed.exit_code == 0 and len(listed.stdout.splitlines()) == 11
    shown = json.loads(project.run("state", "show", "dataset.orders").stdout)
    assert shown["shared"] is True and shown["appId"] == "a-sales"
    moved = project.run("state", "mv", "dataset.products", "dataset.catalogue")
    assert moved.exit_code == 0, moved.output
    assert "dataset.catalogue" in project.state()["resources"]
    assert project.run("state", "mv", "dataset.catalogue", "view.x").exit_code == 1
    removed = project.run("state", "rm", "dataset.catalogue")
    assert removed.exit_code == 0
    assert "dataset.catalogue" not in project.state()["resources"]
    # forgotten, not deleted: the dataset is still in Qrvey, and it still carries the marker of
    # dataset.products, so the manifest's products adopts it again rather than make a second one
    assert len(project.world()["datasets"]) == 10
    assert ("# dataset.products will be imported (not in the state; found in Qrvey by its marker)"
            in project.run("plan").stdout)
    missing = project.run("state", "show", "dataset.nope")
    assert missing.exit_code == 1 and "dataset.nope is not in the state" in missing.stderr


def test_secrets_stay_masked_when_they_change_are_short_or_look_like_keywords(project, monkeypatch):
    monkeypatch.setenv("QI_DB", "crm_secret_v1")
    project.replace_in("sales.yaml", "database: crm\n", "database: ${env:QI_DB}\n")
    applied(project)
    monkeypatch.setenv("QI_DB", "crm_secret_v2")
    result = project.run("plan", "--out", "p.json")
    assert "crm_secret_v1" not in result.output and "crm_secret_v2" not in result.output
    assert '~ datasources.Customers.database: "(sensitive)" → "(sensitive)"' in result.stdout
    saved = (project.root / "p.json").read_text()
    assert "crm_secret_v1" not in saved and "crm_secret_v2" not in saved
    # the reviewed plan was made with v2: applying it with v3 in the environment is refused
    monkeypatch.setenv("QI_DB", "crm_secret_v3")
    stale = project.run("apply", "p.json")
    assert stale.exit_code == 1
    assert "dataset.customers: a variable or environment value changed since the plan was made" in stale.stderr
    monkeypatch.setenv("QI_DB", "crm_secret_v2")
    assert project.run("apply", "p.json").exit_code == 0
    customers = project.world()["datasets"][project.dataset_id("dataset.customers")]
    assert customers["datasources"][0]["database"] == "crm_secret_v2"
    for short in ("abc", "false", "dataset"):
        monkeypatch.setenv("QI_DB", short)
        result = project.run("plan", "--format", "json")
        plan = json.loads(result.stdout)                     # still valid JSON
        changed = [a for a in plan["actions"] if a["op"] == "update"]
        assert [a["address"] for a in changed] == ["dataset.customers"]
        assert changed[0]["changes"] == [
            {"path": "datasources.Customers.database", "before": "(sensitive)", "after": "(sensitive)",
             "drift": False, "state_only": False}]


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


def test_views_of_unmanaged_sources_are_checked_at_plan_time_and_secrets_stay_masked(project, monkeypatch):
    monkeypatch.setenv("QI_SOURCE_ID", "partner-secret-dataset-id")
    project.manifest("partner.yaml").write_text(EXTERNAL_VIEW)
    missing = project.run("plan")           # blocked, reported on the view: the rest still plans
    assert missing.exit_code == 0, missing.output
    assert ("# view.partner-orders cannot be planned (its source dataset (sensitive) in app a-partner does not exist"
            in missing.stdout)
    assert "partner-secret-dataset-id" not in missing.output
    project.manifest("partner.yaml").unlink()
    applied(project)   # everything but the external view
    project.manifest("partner.yaml").write_text(EXTERNAL_VIEW)
    import asyncio
    from qrvey_iac.emulator import EmulatorConfig, EmulatorTransport, create_app
    from qrvey_iac.adapters.qrvey.client import QrveyClient
    from qrvey_iac.core.keys import AppRef

    # the partner's dataset appears in the (persisted) emulator world, first unshared, then shared
    config = EmulatorConfig(api_key="k", data_file=project.world_path)
    app = create_app(config)

    async def partner(shared: bool):
        async with QrveyClient("http://e", "k", transport=EmulatorTransport(app)) as client:
            partner_app = AppRef("u-partner", "a-partner")
            if not shared:
                body = {"datasetId": "partner-secret-dataset-id", "name": "Partner",
                        "datasources": [{"name": "p", "connectionId": "c", "connectorType": "MSSQL_LIVE", "tableName": "t"}],
                        "columns": [{"columnName": "Total", "columnType": "NUMBER"}]}
                await client.create_dataset(partner_app, body)
            else:
                await client.set_shared(partner_app, "partner-secret-dataset-id", True)
        app.state.emulator.save()   # in-process, the emulator writes its file only when told
    asyncio.run(partner(False))
    unshared = project.run("plan")
    assert "its source dataset (sensitive) in app a-partner is not shared: share it" in unshared.stdout
    asyncio.run(partner(True))
    assert project.run("plan", "--out", "p.json").exit_code == 0
    saved = json.loads((project.root / "p.json").read_text())
    assert any(key.startswith("source:") for key in saved["fingerprints"])
    assert "partner-secret-dataset-id" not in (project.root / "p.json").read_text()
    result = project.run("apply", "p.json")
    assert result.exit_code == 0, result.output
    view = project.world()["datasets"][project.dataset_id("view.partner-orders")]
    assert view["sourceDataset"]["datasetId"] == "partner-secret-dataset-id"


def test_saved_plan_refuses_selection_flags(project):
    assert project.run("plan", "--out", "p.json").exit_code == 0
    result = project.run("apply", "p.json", "--target", "dataset.products")
    assert result.exit_code == 1
    assert "--target and --exclude do not apply to a saved plan" in result.stderr
    assert not project.state_path.exists()


def test_state_mv_of_a_source_keeps_its_views(project):
    applied(project)
    for name in ("sales.yaml", "regions.yaml"):
        text = project.manifest(name).read_text()
        project.manifest(name).write_text(text.replace("name: orders\n", "name: orders2\n")
                                          .replace("source: dataset.orders\n", "source: dataset.orders2\n"))
    assert project.run("state", "mv", "dataset.orders", "dataset.orders2").exit_code == 0
    plan = project.run("plan").stdout
    # the views keep their source; only the ownership marker follows the new address
    assert "Plan: 0 to create, 1 to update, 0 to replace, 0 to delete." in plan
    assert '~ customAttributes.qrveyIacAddress: "dataset.orders" → "dataset.orders2"' in plan
    bad = project.run("state", "mv", "dataset.orders2", "dataset")
    assert bad.exit_code == 1 and "is not an address" in bad.stderr


def test_failed_command_writes_nothing(project):
    result = project.run("plan", "--target", "dataset.nope")
    assert result.exit_code == 1
    assert not project.world_path.exists() and not project.state_path.exists()


def protect_products(project) -> None:
    config = yaml.safe_load((project.root / "qrvey-iac.yaml").read_text())
    config["environments"]["local"]["overrides"] = {"dataset.products": {"protect": True}}
    (project.root / "qrvey-iac.yaml").write_text(yaml.safe_dump(config))


def edited_plan(project, name: str, edit) -> str:
    data = json.loads((project.root / "p.json").read_text())
    actions = {(a["op"], a["address"]): a for a in data["actions"]}
    edit(data, actions)
    (project.root / name).write_text(json.dumps(data))
    return name


def test_a_hand_edited_saved_plan_is_refused_naming_the_difference(project):
    """apply FILE plans again from what the file pins and runs that: a file that says
    otherwise (a delete added, a protected dataset deleted, an app or id changed) is refused."""
    protect_products(project)
    applied(project)
    project.replace_in("sales.yaml", "name: Products\n", "name: Catalogue\n")
    assert project.run("plan", "--out", "p.json").exit_code == 0
    ids = {a: project.dataset_id(a) for a in ("dataset.products", "dataset.orders")}
    serial = project.state()["serial"]

    def delete_protected(data, actions):
        update = actions[("update", "dataset.products")]
        update.update(op="delete", protect=False, desired=None, changes=[], reason="removed from the manifests")

    def delete_added(data, actions):
        actions[("no-op", "dataset.orders")].update(op="delete", desired=None, reason="removed from the manifests")

    def app_changed(data, actions):
        actions[("update", "dataset.products")]["app"]["appId"] = "a-emea"

    def id_changed(data, actions):
        actions[("update", "dataset.products")]["dataset_id"] = ids["dataset.orders"]

    expected = {
        "delete_protected": "- dataset.products: the saved plan has delete, planned now: update",
        "delete_added": "- dataset.orders: the saved plan has delete, planned now: no-op",
        "app_changed": '- update dataset.products: app.appId is "a-emea" in the saved plan, "a-sales" planned now',
        "id_changed": (f'- update dataset.products: dataset_id is "{ids["dataset.orders"]}" in the saved plan, '
                       f'"{ids["dataset.products"]}" planned now'),
    }
    for edit in (delete_protected, delete_added, app_changed, id_changed):
        result = project.run("apply", edited_plan(project, f"{edit.__name__}.json", edit))
        assert result.exit_code == 1, (edit.__name__, result.output)
        assert "Error: the saved plan is not the plan the manifests it pins, the state and Qrvey give" in result.stderr
        assert "nothing was changed" in result.stderr
        assert expected[edit.__name__] in result.stderr, (edit.__name__, result.stderr)
        assert "Traceback" not in result.output
        world = project.world()["datasets"]
        assert set(ids.values()) <= set(world)                     # nothing deleted
        assert world[ids["dataset.products"]]["name"] == "Products"   # nor updated
        assert project.state()["serial"] == serial
    result = project.run("apply", "p.json")                        # the file as it was made
    assert result.exit_code == 0, result.output
    assert project.world()["datasets"][ids["dataset.products"]]["name"] == "Catalogue"


def test_a_saved_plan_made_with_target_is_planned_again_with_the_same_selection(project):
    result = project.run("plan", "--target", "view.orders-emea", "--out", "p.json")
    assert result.exit_code == 0, result.output
    saved = json.loads((project.root / "p.json").read_text())
    assert (saved["targets"], saved["excludes"]) == (["view.orders-emea"], [])
    result = project.run("apply", "p.json")
    assert result.exit_code == 0, result.output
    assert set(project.state()["resources"]) == {"connection.warehouse", "dataset.orders", "view.orders-emea"}
