"""Renames and removals as reviewable data (issue 14 point 3), through the CLI on the
embedded emulator: ``kind: Moved`` plans one move and applies it with no create or delete;
``kind: Removed`` forgets an object and leaves it in Qrvey without its marker; each is checked
against the manifests (``validate``) and the state (``plan``) with precise errors."""

from __future__ import annotations

import json
import re

import pytest

from qrvey_iac.core.kinds.base import OWNER_ATTRIBUTE
from qrvey_iac.emulator.transport import EmulatorTransport

MOVED = """\
apiVersion: qrvey-iac/v1
kind: Moved
spec:
  from: {source}
  to: {target}
"""
REMOVED = """\
apiVersion: qrvey-iac/v1
kind: Removed
spec:
  from: {address}
"""


@pytest.fixture
def requests(monkeypatch) -> list[tuple[str, str]]:
    """(method, path) of every request the embedded emulator receives."""
    seen: list[tuple[str, str]] = []
    handle = EmulatorTransport.handle_async_request

    async def recording(self, request):
        seen.append((request.method, request.url.path))
        return await handle(self, request)

    monkeypatch.setattr(EmulatorTransport, "handle_async_request", recording)
    return seen


def writes(requests: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The requests that change something (a listing is a POST that reads)."""
    return [(m, p) for m, p in requests if m != "GET" and not p.endswith(("/dataset/all", "/connections/all"))]


def applied(project):
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    return result


def rename_orders(project, moved=True):
    """dataset.orders declared as dataset.sales-orders, its views pointing at the new address."""
    project.replace_in("sales.yaml", "  name: orders\n", "  name: sales-orders\n")
    text = project.manifest("regions.yaml").read_text()
    project.manifest("regions.yaml").write_text(text.replace("source: dataset.orders\n",
                                                             "source: dataset.sales-orders\n"))
    if moved:
        project.manifest("moves.yaml").write_text(MOVED.format(source="dataset.orders", target="dataset.sales-orders"))


def test_a_rename_through_moved_is_one_move_and_applies_with_no_create_or_delete(project, requests):
    applied(project)
    orders_id = project.dataset_id("dataset.orders")
    views = {a: project.dataset_id(a) for a in ("view.orders-emea", "view.orders-apac")}
    world_before = set(project.world()["datasets"])
    rename_orders(project)

    plan = project.run("plan", "--detailed-exitcode")
    assert plan.exit_code == 2, plan.output
    actions = re.findall(r"^  # (.*)$", plan.stdout, re.MULTILINE)
    assert actions == ["dataset.orders has moved to dataset.sales-orders (kind: Moved at manifests/moves.yaml:4; "
                       "changed in the manifests)"]
    assert f"  -> dataset.sales-orders [id={orders_id}]" in plan.stdout
    assert f'      ~ customAttributes.{OWNER_ATTRIBUTE}: "dataset.orders" → "dataset.sales-orders"' in plan.stdout
    assert "Plan: 0 to create, 0 to update, 0 to replace, 0 to delete, 1 to move." in plan.stdout

    requests.clear()
    result = applied(project)
    assert "Resources: 0 created, 0 updated, 0 replaced, 0 destroyed, 1 moved." in result.stdout
    # the only writes: the dataset's update (its marker) and the apply of it; no create, no delete
    dataset_path = f"/devapi/v4/user/u-hq-owner/app/a-sales/qollect/dataset/{orders_id}"
    assert writes(requests) == [("PUT", dataset_path), ("POST", f"{dataset_path}/applyChanges")]
    world = project.world()["datasets"]
    assert set(world) == world_before                      # the same objects, the same ids
    assert world[orders_id]["customAttributes"][OWNER_ATTRIBUTE] == "dataset.sales-orders"
    state = project.state()["resources"]
    assert "dataset.orders" not in state and state["dataset.sales-orders"]["datasetId"] == orders_id
    for view, view_id in views.items():                    # the views keep their object and their source
        assert state[view]["datasetId"] == view_id
        assert state[view]["source"]["address"] == "dataset.sales-orders"

    again = project.run("plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert again.stdout == "No changes. Qrvey matches the manifests.\n"


def test_a_saved_plan_with_a_move_applies_as_reviewed(project, requests):
    applied(project)
    rename_orders(project)
    saved = project.run("plan", "--out", "move.plan")
    assert saved.exit_code == 0, saved.output
    assert json.loads((project.root / "move.plan").read_text())["summary"]["move"] == 1
    requests.clear()
    result = project.run("apply", "move.plan")
    assert result.exit_code == 0, result.output
    assert [m for m, _ in writes(requests)] == ["PUT", "POST"]
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_the_same_rename_without_moved_would_delete_and_create(project):
    applied(project)
    rename_orders(project, moved=False)
    plan = project.run("plan")
    assert "# dataset.orders will be destroyed" in plan.stdout
    assert "# dataset.sales-orders will be created" in plan.stdout


def test_removed_forgets_an_object_keeps_it_in_qrvey_without_the_marker(project, requests):
    applied(project)
    view_id = project.dataset_id("view.orders-apac")
    text = project.manifest("regions.yaml").read_text()
    project.manifest("regions.yaml").write_text(
        "---\n".join(d for d in text.split("---\n") if "name: orders-apac\n" not in d))
    project.manifest("removed.yaml").write_text(REMOVED.format(address="view.orders-apac"))

    plan = project.run("plan")
    assert plan.exit_code == 0, plan.output
    assert ("  # view.orders-apac will no longer be managed, and stays in Qrvey "
            "(kind: Removed at manifests/removed.yaml:4)") in plan.stdout
    assert "Plan: 0 to create, 0 to update, 0 to replace, 0 to delete, 1 to forget." in plan.stdout

    requests.clear()
    result = applied(project)
    assert "1 forgotten." in result.stdout
    assert not any(method == "DELETE" for method, _ in requests)
    live = project.world()["datasets"][view_id]
    assert OWNER_ATTRIBUTE not in (live.get("customAttributes") or {})
    assert "view.orders-apac" not in project.state()["resources"]
    assert project.run("plan", "--detailed-exitcode").exit_code == 0   # the Removed may stay


def test_state_mv_and_state_rm_still_work_and_point_at_the_documents(project):
    applied(project)
    orders_id = project.dataset_id("dataset.orders")
    moved = project.run("state", "mv", "dataset.orders", "dataset.sales-orders")
    assert moved.exit_code == 0, moved.output
    state = project.state()["resources"]
    assert state["dataset.sales-orders"]["datasetId"] == orders_id
    assert state["view.orders-emea"]["source"]["address"] == "dataset.sales-orders"
    removed = project.run("state", "rm", "view.orders-apac")
    assert removed.exit_code == 0, removed.output
    assert "view.orders-apac" not in project.state()["resources"]
    assert "kind: Moved" in project.run("state", "mv", "--help").stdout
    assert "kind: Removed" in project.run("state", "rm", "--help").stdout


def test_a_moved_document_that_does_not_match_the_state_is_an_error_naming_it(project):
    applied(project)
    rename_orders(project)
    project.manifest("moves.yaml").write_text(MOVED.format(source="dataset.ordrs", target="dataset.sales-orders"))
    plan = project.run("plan")
    assert plan.exit_code == 1
    assert ("\nError: manifests/moves.yaml:4: spec.from: dataset.ordrs is not in the state (did you mean "
            "'dataset.orders'?), and dataset.sales-orders is not either: nothing to move.") in plan.stderr
    assert "Refreshing" in plan.stderr and "nothing was changed" in plan.stderr
    assert "Traceback" not in plan.output


BAD_DOCUMENTS = [
    (MOVED.format(source="dataset.orders", target="dataset.sales"),
     "manifests/moves.yaml:5: spec.to: dataset.sales is not declared in the manifests"),
    (MOVED.format(source="dataset.customers", target="dataset.orders"),
     "manifests/moves.yaml:4: spec.from: dataset.customers is still declared (at manifests/sales.yaml:"),
    (MOVED.format(source="dataset.orders", target="view.orders"),
     "manifests/moves.yaml:5: spec.to: a move keeps the kind: dataset.orders cannot become view.orders"),
    (MOVED.format(source="dataset.old", target="dataset.older") + "---\n"
     + MOVED.format(source="dataset.older", target="dataset.orders"),
     "manifests/moves.yaml:5: spec.to: a chain of moves: dataset.old -> dataset.older -> dataset.orders: "
     "move each address straight to dataset.orders"),
    (MOVED.format(source="dataset.a", target="dataset.b") + "---\n"
     + MOVED.format(source="dataset.b", target="dataset.a"),
     "manifests/moves.yaml:5: spec.to: a cycle of moves: dataset.a -> dataset.b -> dataset.a"),
    (MOVED.format(source="dataset.orders", target="dataset.old"),
     "manifests/moves.yaml:5: spec.to: dataset.old is not declared in the manifests and dataset.orders is: "
     "spec.from is the old address (in the state), spec.to the new one (declared): are they swapped?"),
    (MOVED.format(source="dataset.x", target="dataset.orders") + "---\n"
     + MOVED.format(source="dataset.y", target="dataset.orders"),
     "manifests/moves.yaml:11: spec.to: dataset.orders is the target of a move already at manifests/moves.yaml:1"),
    (MOVED.replace("from:", "form:").format(source="dataset.x", target="dataset.orders"),
     "manifests/moves.yaml:4: spec.form: unknown field (did you mean 'from'?)"),
    (REMOVED.format(address="dataset.orders"),
     "manifests/moves.yaml:4: spec.from: dataset.orders is still declared (at manifests/sales.yaml:"),
    (MOVED.format(source="dataset.x", target="dataset.orders") + "---\n" + REMOVED.format(address="dataset.x"),
     "manifests/moves.yaml:10: spec.from: dataset.x is the spec.from of a Moved at manifests/moves.yaml:1"),
    (REMOVED.format(address="folder.x"),
     "manifests/moves.yaml:4: spec.from: 'folder.x' is no kind's address (expected connection.<name>, dataset.<name>, view.<name>)"),
    ("apiVersion: qrvey-iac/v1\nkind: Remove\nspec: {from: dataset.x}\n",
     "manifests/moves.yaml:2: kind: unknown kind 'Remove' (expected 'Connection', 'Dataset', 'DatasetView', 'Moved', 'Removed') "
     "(did you mean 'Removed'?)"),
]


@pytest.mark.parametrize(("documents", "expected"), BAD_DOCUMENTS)
def test_a_wrong_moved_or_removed_is_a_precise_validation_error(project, documents, expected):
    project.manifest("moves.yaml").write_text(documents)
    result = project.run("validate")
    assert result.exit_code == 1, result.output
    assert f"Error: {expected}" in result.stderr, result.stderr
    assert "Traceback" not in result.output


def test_every_problem_of_moves_and_resources_comes_in_one_run(project):
    project.manifest("moves.yaml").write_text(
        MOVED.format(source="dataset.orders", target="dataset.nowhere") + "---\n"
        + REMOVED.format(address="dataset.customers"))
    project.replace_in("sales.yaml", "columnType: NUMBER}", "columnTyp: NUMBER}")
    result = project.run("validate")
    assert result.exit_code == 1
    assert "spec.to: dataset.nowhere is not declared" in result.stderr
    assert "spec.from: dataset.customers is still declared" in result.stderr
    assert "columnTyp: unknown field" in result.stderr


def test_the_schema_describes_moved_and_removed(project):
    schema = json.loads(project.run("schema").stdout)
    assert {"MovedDocument", "RemovedDocument"} <= set(schema["$defs"])
    assert schema["$defs"]["MovedSpec"]["required"] == ["from", "to"]


def test_validate_counts_the_moved_and_removed_documents(project):
    rename_orders(project)
    project.manifest("removed.yaml").write_text(REMOVED.format(address="dataset.legacy"))
    result = project.run("validate")
    assert result.exit_code == 0, result.output
    assert result.stdout == ("Success: 11 resources are valid (1 connection, 6 datasets, 4 views), and 1 Moved and 1 Removed "
                             "documents, for environment local.\n")
