"""qrvey-iac export (issue 14 point 1): apps made outside qrvey-iac become manifests and state.

The world of the Must-show is built directly in the emulator over HTTP, as a team's UI-made
Qrvey would be: three apps of the config and a fourth that is not, duplicated display names,
shared datasets, views across apps (one of a dataset of the fourth app), and views in the
fourth app of a dataset of the exported ones.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner

from qrvey_iac.cli import cli
from qrvey_iac.emulator import EmulatorConfig
from qrvey_iac.emulator.testing import running_server

KEY = "export-test-key"
APPS = {"hq": ("u-hq", "a-hq"), "emea": ("u-emea", "a-emea"), "apac": ("u-apac", "a-apac")}
OTHER = ("u-other", "a-other")          # an app that is not in the config
WAREHOUSE = "84b500d7-71c8-4b1f-adf4-f1eb0000973d"   # declared as a variable in the config
CRM = "5c0f9a52-7d4e-4a8e-9b1e-2f2d3c4b5a69"         # not declared: export names it
READS = {"GET /qollect/dataset/{datasetId}", "POST /qollect/dataset/all",
         "GET /user/{userId}/app/{appId}"}   # the last: plan checks that each app exists


def prefix(app: tuple[str, str]) -> str:
    return f"/devapi/v4/user/{app[0]}/app/{app[1]}"


class World:
    """Builds objects over HTTP, as the Qrvey UI would (no ownership marker)."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, headers={"x-api-key": KEY})

    def call(self, method: str, path: str, body=None) -> dict:
        response = self.http.request(method, path, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def dataset(self, app, name: str, connection: str = WAREHOUSE, shared: bool = False, **extra) -> dict:
        source = {"name": name, "connectionId": connection, "connectorType": "MSSQL_LIVE", "database": "shop"}
        source.update(extra.pop("source", {"tableName": name.lower().replace(" ", "_")}))
        body = {"name": name, "datasources": [source],
                "columns": extra.pop("columns", [{"columnName": "Id", "columnType": "NUMBER"},
                                                 {"columnName": "Total", "columnType": "NUMBER"},
                                                 {"columnName": "Email", "columnType": "STRING"}]),
                **extra}
        made = self.call("POST", f"{prefix(app)}/qollect/dataset", body)
        if shared:
            self.call("PUT", f"{prefix(app)}/qollect/dataset/{made['datasetId']}/publishVersion", {"isPublic": True})
        return self.call("GET", f"{prefix(app)}/qollect/dataset/{made['datasetId']}")

    def view(self, app, source: dict, name: str, renamed: dict | None = None, hidden: tuple = ()) -> dict:
        body = {"appId": source["appId"], "userId": source["userId"], "name": name}
        view = self.call("POST", f"{prefix(app)}/qollect/dataset/clone/connection/{source['connectionId']}", body)
        if renamed or hidden:
            columns = [{**c, "columnName": (renamed or {}).get(c["columnName"], c["columnName"]),
                        **({"visible": False} if c["columnName"] in hidden else {})} for c in view["columns"]]
            update = {k: view[k] for k in ("name", "datasources", "customAttributes")}
            path = f"{prefix(app)}/qollect/dataset/{view['datasetId']}"
            self.call("PUT", path, {**update, "datasetId": view["datasetId"], "columns": columns})
            self.call("POST", f"{path}/applyChanges")
        return view


def build_world(base_url: str) -> dict[str, list[dict]]:
    """20 datasets in the three apps (duplicated names, 5 shared), 10 views across them, a
    shared dataset in the fourth app with a view of it in hq, and 2 views in the fourth app."""
    world = World(base_url)
    hq, emea, apac = (APPS[a] for a in ("hq", "emea", "apac"))
    made: dict[str, list[dict]] = {"datasets": [], "views": [], "other": []}
    d = made["datasets"]
    d.append(world.dataset(hq, "Orders", shared=True))
    d.append(world.dataset(hq, "Orders", customAttributes={"team": "revenue"}))
    d.append(world.dataset(hq, "Orders"))
    d.append(world.dataset(hq, "Customers", connection=CRM, shared=True,
                           columns=[{"columnName": "CustomerId", "columnType": "NUMBER"},
                                    {"columnName": "Email", "columnType": "STRING", "visible": False}]))
    d.append(world.dataset(hq, "Monthly revenue", source={"query": "select month, sum(total) from orders group by 1"}))
    d.append(world.dataset(hq, "Products", shared=True, dataSync={"enabled": True, "cron": "0 3 * * *"}))
    d.append(world.dataset(hq, "Ventes été", connection=CRM))
    for _ in range(3):
        d.append(world.dataset(emea, "Targets"))
    d.append(world.dataset(emea, "Orders (EMEA)", shared=True))
    d.append(world.dataset(emea, "Leads", connection=CRM))
    d.append(world.dataset(emea, "Leads", connection=CRM))
    d.append(world.dataset(emea, "Returns"))
    d.append(world.dataset(apac, "Campaigns", shared=True))
    d.append(world.dataset(apac, "Campaigns"))
    d.append(world.dataset(apac, "Orders"))
    d.append(world.dataset(apac, "Stock", columns=[{"columnName": "Sku", "columnType": "STRING",
                                                     "accessRoles": ["buyer"]}]))
    d.append(world.dataset(apac, "!!!"))
    d.append(world.dataset(apac, "Regions"))
    assert len(d) == 20 and sum(x["isPublic"] for x in d) == 5
    orders, customers, products, orders_emea, campaigns = (d[0], d[3], d[5], d[10], d[14])
    external = world.dataset(OTHER, "Benchmarks", shared=True)
    v = made["views"]
    v.append(world.view(emea, orders, "Orders"))
    v.append(world.view(apac, orders, "Orders", renamed={"Total": "Order total"}))
    v.append(world.view(emea, customers, "Customers (EMEA)", hidden=("CustomerId",)))
    v.append(world.view(apac, customers, "Customers"))
    v.append(world.view(emea, products, "Products"))
    v.append(world.view(apac, products, "Products"))
    v.append(world.view(hq, orders_emea, "Orders (EMEA)"))
    v.append(world.view(apac, orders_emea, "Orders (EMEA)", renamed={"Id": "Order id"}, hidden=("Email",)))
    v.append(world.view(hq, campaigns, "Campaigns"))
    v.append(world.view(hq, external, "Benchmarks"))          # its source is in an app not exported
    made["other"] = [world.view(OTHER, orders, "Orders"), world.view(OTHER, customers, "Customers")]
    world.http.close()
    return made


def write_config(root: Path, base_url: str, extra_variables: str = "") -> None:
    apps = "\n".join(f"      {alias}: {{userId: {user}, appId: {app}}}" for alias, (user, app) in APPS.items())
    (root / "qrvey-iac.yaml").write_text(
        "manifests: manifests\ndefaultEnvironment: uat\nenvironments:\n  uat:\n"
        f"    endpoint: {base_url}\n    apiKeyEnv: QI_EXPORT_KEY\n    apps:\n{apps}\n"
        f"    variables:\n      warehouse: {WAREHOUSE}\n{extra_variables}"
    )


def printed_variables(output: str) -> str:
    """The variable lines export prints for the config, as they go under ``variables:``."""
    lines = output.split("(other environments need their own values):\n", 1)[1]
    return "".join(line + "\n" for line in lines.splitlines() if line.startswith("      "))


def files_of(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def writes(counts: dict[str, int]) -> dict[str, int]:
    return {route: count for route, count in counts.items() if route not in READS and count}


@pytest.fixture
def served(tmp_path, monkeypatch):
    monkeypatch.setenv("QI_EXPORT_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    with running_server(EmulatorConfig(api_key=KEY)) as server:
        made = build_world(server.base_url)
        write_config(tmp_path, server.base_url)
        yield server, made, tmp_path


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_export_all_apps_then_plan_is_empty_apply_writes_nothing_and_export_again_is_identical(served):
    server, made, root = served
    exported = run("export", "--all-apps")
    assert exported.exit_code == 0, exported.output
    assert "Exported 20 datasets, 10 views of 3 app(s)" in exported.stdout
    assert "Recorded 30 objects in the state of environment uat." in exported.stdout
    assert "Marked 30 objects as managed by environment uat" in exported.stdout
    assert sorted(p.name for p in (root / "manifests").iterdir()) == ["apac.yaml", "emea.yaml", "hq.yaml"]

    # the warehouse connection is the config's variable; the CRM one is printed, to add
    block = printed_variables(exported.stdout)
    assert block == f'      shop_connection: "{CRM}"\n'
    write_config(root, server.base_url, block)

    before = dict(server.emulator.request_counts)
    planned = run("plan", "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output
    assert "No changes" in planned.stdout
    applied = run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    after = dict(server.emulator.request_counts)
    assert writes({r: after.get(r, 0) - before.get(r, 0) for r in after}) == {}
    assert after["GET /qollect/dataset/{datasetId}"] > before["GET /qollect/dataset/{datasetId}"]   # it did read

    again = run("export", "--all-apps", "--out", "again")
    assert again.exit_code == 0, again.output
    assert "Already tracked, not recorded again: 30" in again.stdout
    assert "Marked 0 objects" in again.stdout
    assert files_of(root / "again") == files_of(root / "manifests")
    assert writes({r: server.emulator.request_counts[r] - after.get(r, 0) for r in server.emulator.request_counts}) == {}

    # with the state lost, the markers give every object its address back: the same files
    (root / "state" / "uat.json").unlink()
    lost = run("export", "--all-apps", "--out", "lost")
    assert lost.exit_code == 0, lost.output
    assert "Marked 0 objects" in lost.stdout
    assert files_of(root / "lost") == files_of(root / "manifests")


def test_exported_manifests_name_duplicates_by_id_order_and_point_views_at_their_sources(served):
    server, made, root = served
    assert run("export", "--all-apps").exit_code == 0
    documents = [doc for name in ("hq", "emea", "apac")
                 for doc in yaml.safe_load_all((root / "manifests" / f"{name}.yaml").read_text())]
    by_address = {f"{'dataset' if d['kind'] == 'Dataset' else 'view'}.{d['metadata']['name']}": d for d in documents}
    state = json.loads((root / "state" / "uat.json").read_text())["resources"]
    ids = {address: record["datasetId"] for address, record in state.items()}

    orders = sorted(x["datasetId"] for x in made["datasets"] if x["name"] == "Orders")
    assert [ids[a] for a in ("dataset.orders", "dataset.orders_2", "dataset.orders_3", "dataset.orders_4")] == orders
    assert {"dataset.targets", "dataset.targets_2", "dataset.targets_3", "dataset.ventes-ete",
            "dataset.orders-emea", "dataset.dataset", "view.orders", "view.orders_2"} <= set(by_address)
    assert sum(d["spec"].get("shared", False) for d in documents) == 5
    assert {a for a, d in by_address.items() if d["spec"].get("shared")} == {
        a for a in by_address if state[a]["shared"]}

    views = {a: d["spec"] for a, d in by_address.items() if a.startswith("view.")}
    assert len(views) == 10
    other_source = next(s for s in views.values() if s["name"] == "Benchmarks")["source"]
    assert other_source == {"appId": OTHER[1], "userId": OTHER[0], "datasetId": other_source["datasetId"]}
    by_source = {a: s["source"] for a, s in views.items() if isinstance(s["source"], str)}
    address_of = {dataset_id: address for address, dataset_id in ids.items()}
    shared_ids = {x["datasetId"] for x in made["datasets"] if x["isPublic"]}
    assert len(by_source) == 9 and set(by_source.values()) == {address_of[i] for i in shared_ids}
    renamed = [s for s in views.values() if s.get("columns")]
    assert {json.dumps(s["columns"]) for s in renamed} == {
        json.dumps([{"column": "Total", "columnName": "Order total"}]),
        json.dumps([{"column": "CustomerId", "visible": False}]),
        json.dumps([{"column": "Id", "columnName": "Order id"}, {"column": "Email", "visible": False}]),
    }   # the customers' Email, hidden in the source, is inherited by its views: no override
    for address, spec in views.items():      # the state records the source as apply would
        recorded = state[address]["source"]
        assert recorded.get("address") == (spec["source"] if isinstance(spec["source"], str) else None)

    # the fourth app's views are not exported, nor recorded
    assert not {v["datasetId"] for v in made["other"]} & set(ids.values())
    text = (root / "manifests" / "hq.yaml").read_text()
    assert "connectionId: ${var.warehouse}" in text and "connectionId: ${var.shop_connection}" in text
    assert WAREHOUSE not in text and CRM not in text


def test_export_refuses_to_overwrite_unless_forced(served):
    server, made, root = served
    (root / "manifests").mkdir()
    (root / "manifests" / "emea.yaml").write_text("# mine\n")
    before = dict(server.emulator.request_counts)
    refused = run("export", "--all-apps")
    assert refused.exit_code == 1
    assert "manifests/emea.yaml exists already: pass --force to overwrite" in refused.stderr
    assert (root / "manifests" / "emea.yaml").read_text() == "# mine\n"
    assert sorted(p.name for p in (root / "manifests").iterdir()) == ["emea.yaml"]
    assert not (root / "state").exists()
    assert dict(server.emulator.request_counts) == before          # refused before any call
    forced = run("export", "--app", "emea", "--force")
    assert forced.exit_code == 0, forced.output
    assert "kind: Dataset" in (root / "manifests" / "emea.yaml").read_text()
    assert sorted(p.name for p in (root / "manifests").iterdir()) == ["emea.yaml"]


# -- the example project in the embedded emulator: what export refuses, and why -------------

def applied_then_unmanaged(project, *, keep_state: bool = False, strip_markers: bool = True) -> None:
    """The example applied, then made to look built in the UI: no manifests, no state, and
    (``strip_markers``) no ownership marker on any object."""
    assert project.run("apply", "--auto-approve").exit_code == 0
    if strip_markers:
        def strip(world):
            for dataset in world["datasets"].values():
                dataset["customAttributes"].pop("qrveyIacAddress", None)
        project.edit_world(strip)
    if not keep_state:
        project.state_path.unlink()
    for path in (project.root / "manifests").iterdir():
        path.unlink()


def copy_object(world: dict, dataset_id: str, new_id: str) -> None:
    world["datasets"][new_id] = {**json.loads(json.dumps(world["datasets"][dataset_id])), "datasetId": new_id}
    world["datasetOrder"][new_id] = max(world["datasetOrder"].values()) + 1


def id_named(world: dict, name: str) -> str:
    return next(i for i, d in world["datasets"].items() if d["name"] == name)


def unchanged(project):
    """What must stay as it is after a refused export: files, state and world."""
    files = sorted(str(p.relative_to(project.root)) for p in project.root.rglob("*") if p.is_file())
    return files, project.world_path.read_bytes()


@pytest.mark.parametrize("args, message", [
    (("--app", "sales", "--app", "emae"),
     "environments.local.apps: unknown app alias 'emae' (did you mean 'emea'?) (known: sales, emea, apac)"),
    ((), "name the apps to export: --app ALIAS (repeatable) or --all-apps (the apps of environment local: "
         "sales, emea, apac)"),
    (("--all-apps", "--app", "sales"), "give --app ALIAS (repeatable) or --all-apps, not both"),
])
def test_export_names_a_wrong_app_choice_and_does_nothing(project, args, message):
    applied_then_unmanaged(project)
    before = unchanged(project)
    result = project.run("export", *args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert unchanged(project) == before


def test_export_refuses_an_out_folder_that_is_a_file(project):
    applied_then_unmanaged(project)
    (project.root / "out").write_text("not a folder")
    before = unchanged(project)
    result = project.run("export", "--all-apps", "--out", "out/sub")
    assert result.exit_code == 1
    assert "Error: --out: out is not a folder: give a folder to write the manifests to" in result.stderr
    assert unchanged(project) == before


def test_export_of_ui_made_objects_marks_them_and_the_plan_is_empty(project):
    applied_then_unmanaged(project)
    result = project.run("export", "--all-apps")
    assert result.exit_code == 0, result.output
    assert "Marked 10 objects as managed by environment local" in result.stdout
    # the CRM connection is a variable of the config already; the example's warehouse connection
    # (kind: Connection, its id minted by Qrvey) is printed as a new variable, to add
    (warehouse_id,) = project.world()["connections"]
    assert printed_variables(result.stdout) == f'      shop_connection: "{warehouse_id}"\n'
    assert all(d["customAttributes"].get("qrveyIacAddress") for d in project.world()["datasets"].values())
    config = project.root / "qrvey-iac.yaml"
    config.write_text(config.read_text().replace("      warehouse_db: shop\n",
                                                 "      warehouse_db: shop\n" + printed_variables(result.stdout), 1))
    planned = project.run("plan", "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output
    assert "No changes" in planned.stdout


def test_export_does_not_record_again_what_the_state_tracks(project):
    applied_then_unmanaged(project, keep_state=True, strip_markers=False)
    before = project.state()
    result = project.run("export", "--app", "emea")
    assert result.exit_code == 0, result.output
    assert ("Already tracked, not recorded again: 3 (dataset.emea-targets, view.customers-emea, view.orders-emea)"
            in result.stdout)
    assert "Recorded 0 objects" in result.stdout and "Marked 0 objects" in result.stdout
    assert project.state() == before


def test_export_refuses_an_object_tracked_under_another_address_than_its_marker(project):
    applied_then_unmanaged(project, keep_state=True, strip_markers=False)
    orders = project.dataset_id("dataset.orders")
    project.edit_world(lambda w: w["datasets"][orders]["customAttributes"].update(qrveyIacAddress="dataset.sales"))
    before = unchanged(project)
    result = project.run("export", "--app", "sales")
    assert result.exit_code == 1
    assert (f"Dataset {orders} ('Orders') in app sales is tracked as dataset.orders but carries the marker of "
            "dataset.sales") in result.stderr
    assert "nothing was written or changed" in result.stderr
    assert unchanged(project) == before


def test_export_refuses_two_objects_claiming_one_address(project):
    applied_then_unmanaged(project, strip_markers=False)
    project.edit_world(lambda w: copy_object(w, id_named(w, "Orders"), "copy-of-orders"))
    before = unchanged(project)
    result = project.run("export", "--app", "sales")
    assert result.exit_code == 1
    assert "two objects carry the marker of dataset.orders:" in result.stderr
    assert "Dataset copy-of-orders ('Orders') in app sales" in result.stderr
    assert unchanged(project) == before


def test_export_refuses_an_object_claiming_an_address_the_state_records_with_another_id(project):
    applied_then_unmanaged(project, keep_state=True, strip_markers=False)
    project.edit_world(lambda w: copy_object(w, id_named(w, "Orders"), "copy-of-orders"))
    result = project.run("export", "--app", "sales")
    assert result.exit_code == 1
    assert (f"Dataset copy-of-orders ('Orders') in app sales carries the marker of dataset.orders, which the "
            f"state records as {project.dataset_id('dataset.orders')} in app a-sales") in result.stderr


def test_export_refuses_a_marker_that_is_not_this_environments(project):
    applied_then_unmanaged(project)
    project.edit_world(lambda w: w["datasets"][id_named(w, "Orders")]["customAttributes"].update(
        qrveyIacAddress="prod/dataset.orders"))
    result = project.run("export", "--app", "sales")
    assert result.exit_code == 1
    assert "carries the ownership marker qrveyIacAddress='prod/dataset.orders'" in result.stderr
    assert not project.state_path.exists()


def test_export_refuses_a_value_a_manifest_would_read_as_a_variable(project):
    applied_then_unmanaged(project)
    project.edit_world(lambda w: w["datasets"][id_named(w, "Orders")]["customAttributes"].update(
        note="costs ${var.price}"))
    result = project.run("export", "--app", "sales")
    assert result.exit_code == 1
    assert "spec.customAttributes.note holds '${var.' or '${env:'" in result.stderr
    assert not (project.root / "manifests" / "sales.yaml").exists()


def test_export_help_says_it_marks_the_objects(project):
    result = project.run("export", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert 'ownership marker (customAttributes qrveyIacAddress) gets it, with one update call each' in text
    assert '"marked N objects as managed by environment E"' in text
    for option in ("--app ALIAS", "--all-apps", "--out DIR", "--force", "--env NAME", "--config FILE"):
        assert option in result.stdout


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands(section: str) -> list[list[str]]:
    """The qrvey-iac commands of the first ``sh`` block of a README section, as argv."""
    text = README.read_text().split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line)[1:] for line in block.splitlines() if line.startswith("qrvey-iac ")]


def test_the_readme_adoption_commands_work_on_a_ui_made_qrvey(project):
    applied_then_unmanaged(project)
    commands = readme_commands("Adopting an existing Qrvey")
    assert [c[0] for c in commands] == ["export", "plan"]
    exported = project.run(*commands[0])
    assert exported.exit_code == 0, exported.output
    assert "Marked 10 objects as managed by environment local" in exported.stdout
    config = project.root / "qrvey-iac.yaml"        # the README's comment: the printed variables added
    config.write_text(config.read_text().replace("      warehouse_db: shop\n",
                                                 "      warehouse_db: shop\n" + printed_variables(exported.stdout), 1))
    planned = project.run(*commands[1])
    assert planned.exit_code == 0, planned.output
    assert "No changes" in planned.stdout


def test_a_listing_that_cannot_be_used_stops_the_export_before_anything_is_written(tmp_path, monkeypatch):
    """(A listing that never ends, or repeats its cursor, is stopped by the client:
    tests/integration/test_client_emulator_hostile.py; export reports it the same way.)"""
    from qrvey_iac.emulator import parse_faults

    monkeypatch.setenv("QI_EXPORT_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    with running_server(EmulatorConfig(api_key=KEY)) as clean:
        build_world(clean.base_url)
        world = clean.emulator.world
    with running_server(EmulatorConfig(api_key=KEY, faults=parse_faults("POST */all: body=error"))) as server:
        server.emulator.world = world
        write_config(tmp_path, server.base_url)
        result = run("export", "--all-apps")
        assert result.exit_code == 1
        assert "Error: Qrvey API POST /devapi/v4/user/" in result.stderr
        assert "/qollect/dataset/all -> HTTP 200: " in result.stderr
        assert "\n  export stopped while reading Qrvey: nothing was written or changed; run it again" in result.stderr
        assert writes(server.emulator.request_counts) == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qrvey-iac.yaml"]


def test_export_records_each_object_exactly_as_apply_did(project):
    """The example applied (apply's records), the state lost, then exported: the same records."""
    assert project.run("apply", "--auto-approve").exit_code == 0
    # connections are not exported (Qrvey never returns a password a manifest would need)
    by_apply = {address: record for address, record in project.state()["resources"].items()
                if record["kind"] != "Connection"}
    project.state_path.unlink()
    result = project.run("export", "--all-apps", "--out", "exported")
    assert result.exit_code == 0, result.output
    assert project.state()["resources"] == by_apply and len(by_apply) == 10


def test_an_app_with_nothing_in_it_gives_an_empty_manifest_file(project):
    project.replace_in("../qrvey-iac.yaml", "      apac: {userId: u-apac-owner, appId: a-apac}\n",
                       "      apac: {userId: u-apac-owner, appId: a-apac}\n      empty: {userId: u-x, appId: a-x}\n")
    result = project.run("export", "--app", "empty")
    assert result.exit_code == 0, result.output
    assert "Exported no objects of 1 app(s): manifests/empty.yaml (0)." in result.stdout
    assert (project.root / "manifests" / "empty.yaml").read_text() == (
        "# App empty, exported by `qrvey-iac export --env local`.\n")
    assert project.run("validate").exit_code == 0
