"""kind: Moved and kind: Removed as plan operations: ``move`` and ``forget``.

A wrong planner would show a rename as a delete and a create, re-create a view whose source
moved, delete a removed object, or refuse to forget a protected one; a wrong engine would
send a create or a delete for a move, lose the rename when the update fails, or leave the
ownership marker on a forgotten object. Each test below fails for one of those.
"""

from __future__ import annotations

import json

import pytest
from fakes.qrvey import FakeQrvey
from fakes.state import MemoryStateStore

from qrvey_iac.adapters.plan_file import load_plan, save_plan
from qrvey_iac.core.errors import ApplyError, ManifestError, PlanError, ProtectedResourceError
from qrvey_iac.core.kinds.base import OWNER_ATTRIBUTE
from qrvey_iac.core.manifest import Manifest, Moved, Removed
from qrvey_iac.core.plan import Forget, Move
from qrvey_iac.core.planner import Live, build_plan
from qrvey_iac.core.render import render_json, render_text, summary_line
from qrvey_iac.core.render_markdown import render_markdown
from qrvey_iac.core.state import JournalDetail, JournalEntry, State
from qrvey_iac.engine import Engine

from test_planner import EMEA, live_dataset, live_view, make_dataset, make_view, recorded

MOVE = Moved("dataset.orders", "dataset.sales-orders", "manifests/moves.yaml", 4)


def wanted(*resources, moves=(), removals=()) -> Manifest:
    return Manifest(resources={r.address: r for r in resources}, moves=tuple(moves), removals=tuple(removals))


def ops(plan):
    return [(a.op, a.address) for a in plan.changes]


def applied_orders():
    """dataset.orders (shared, id d1) and its view, as applied: the state and what refresh reads."""
    orders, emea = make_dataset(shared=True), make_view()
    state = State(resources={
        "dataset.orders": recorded(orders),
        "view.orders-emea": recorded(emea, "v1", source={"address": "dataset.orders", "datasetId": "d1",
                                                        "appId": "a-sales", "userId": "u1"}),
    })
    live = Live(objects={"dataset.orders": live_dataset(orders), "view.orders-emea": live_view(emea)})
    return state, live


def renamed():
    """The manifests after the rename: orders is declared as sales-orders, its view follows."""
    return make_dataset("sales-orders", shared=True), make_view(source="dataset.sales-orders")


# -- planning a move ------------------------------------------------------------------------


def test_a_rename_through_moved_is_one_move_carrying_the_marker_change_never_a_delete_and_create():
    state, live = applied_orders()
    plan = build_plan(wanted(*renamed(), moves=[MOVE]), state, live)
    assert ops(plan) == [("move", "dataset.sales-orders")]
    (move,) = plan.changes
    assert isinstance(move, Move) and move.moved_from == "dataset.orders" and move.dataset_id == "d1"
    assert [(c.path, c.before, c.after) for c in move.changes] == [
        (f"customAttributes.{OWNER_ATTRIBUTE}", "dataset.orders", "dataset.sales-orders")]
    assert not move.drift and "manifests/moves.yaml:4" in move.reason
    assert plan.summary()["move"] == 1 and plan.summary()["create"] == plan.summary()["delete"] == 0


def test_without_the_moved_document_the_same_rename_is_a_delete_and_a_create():
    state, live = applied_orders()
    plan = build_plan(wanted(*renamed()), state, live)
    assert ("delete", "dataset.orders") in ops(plan) and ("create", "dataset.sales-orders") in ops(plan)


def test_a_move_carries_the_other_changes_of_the_manifests_too():
    state, live = applied_orders()
    moved = make_dataset("sales-orders", shared=True, display="Sales orders")
    plan = build_plan(wanted(moved, make_view(source="dataset.sales-orders"), moves=[MOVE]), state, live)
    (move,) = plan.changes
    assert {c.path for c in move.changes} == {"name", f"customAttributes.{OWNER_ATTRIBUTE}"}


def test_a_view_whose_source_moved_keeps_its_object():
    """Its recorded source follows the move: not 'source changed', not a replacement."""
    state, live = applied_orders()
    plan = build_plan(wanted(*renamed(), moves=[MOVE]), state, live)
    view = next(a for a in plan.actions if a.address == "view.orders-emea")
    assert view.op == "no-op"


def test_a_moved_dataset_whose_share_changed_also_shares_after_the_move():
    state, live = applied_orders()
    live = Live(objects={**live.objects, "dataset.orders": live_dataset(make_dataset(shared=True), isPublic=False)})
    plan = build_plan(wanted(*renamed(), moves=[MOVE]), state, live)
    assert ops(plan) == [("move", "dataset.sales-orders"), ("share", "dataset.sales-orders")]


def test_a_move_already_done_is_a_no_op_so_the_document_may_stay():
    state, live = applied_orders()
    state = state.with_move("dataset.orders", "dataset.sales-orders")
    live = Live(objects={"dataset.sales-orders": live_dataset(renamed()[0]), "view.orders-emea": live.objects[
        "view.orders-emea"]})
    plan = build_plan(wanted(*renamed(), moves=[MOVE]), state, live)
    assert not plan.has_changes


def test_on_an_empty_state_a_move_has_nothing_to_move_and_the_target_is_created():
    plan = build_plan(wanted(renamed()[0], moves=[MOVE]), State(), Live())
    assert ops(plan) == [("create", "dataset.sales-orders"), ("share", "dataset.sales-orders")]


def test_both_addresses_in_the_state_is_an_error_naming_the_document_and_both_ids():
    state, live = applied_orders()
    state = state.with_resource("dataset.sales-orders", recorded(renamed()[0], "d2"))
    with pytest.raises(ManifestError) as raised:
        build_plan(wanted(*renamed(), moves=[MOVE]), state, live)
    message = str(raised.value)
    assert message.startswith("manifests/moves.yaml:4: spec.from: dataset.orders and dataset.sales-orders are both")
    assert "d1" in message and "d2" in message and "state rm" in message


def test_a_from_the_state_does_not_know_on_a_move_not_done_is_an_error_with_a_suggestion():
    state, live = applied_orders()
    typo = Moved("dataset.ordres", "dataset.sales-orders", "manifests/moves.yaml", 4)
    with pytest.raises(ManifestError) as raised:
        build_plan(wanted(*renamed(), moves=[typo]), state, live)
    message = str(raised.value)
    assert message.startswith("manifests/moves.yaml:4: spec.from: dataset.ordres is not in the state")
    assert "did you mean 'dataset.orders'?" in message


def test_a_moved_object_deleted_outside_qrvey_iac_is_refused_not_created():
    state, live = applied_orders()
    live = Live(objects={**live.objects, "dataset.orders": None})
    with pytest.raises(PlanError, match=r"manifests/moves.yaml:4: dataset.orders cannot move to "
                                        r"dataset.sales-orders: it was deleted outside qrvey-iac"):
        build_plan(wanted(*renamed(), moves=[MOVE]), state, live)


def test_a_move_that_would_also_replace_the_object_is_refused():
    state, live = applied_orders()
    elsewhere = make_dataset("sales-orders", shared=True, app=EMEA)
    with pytest.raises(PlanError, match="cannot move to dataset.sales-orders and be replaced"):
        build_plan(wanted(elsewhere, make_view(source="dataset.sales-orders"), moves=[MOVE]), state, live)


def test_a_protected_object_can_be_moved():
    orders = make_dataset(shared=True, protect=True)
    state = State(resources={"dataset.orders": recorded(orders)})
    live = Live(objects={"dataset.orders": live_dataset(orders)})
    moved = make_dataset("sales-orders", shared=True, protect=True)
    assert ops(build_plan(wanted(moved, moves=[MOVE]), state, live)) == [("move", "dataset.sales-orders")]


def test_the_saved_plan_pins_the_objects_under_the_addresses_the_state_records():
    state, live = applied_orders()
    plan = build_plan(wanted(*renamed(), moves=[MOVE]), state, live)
    assert set(plan.fingerprints) == {"dataset.orders", "view.orders-emea"}


# -- planning a forget ----------------------------------------------------------------------


def test_a_removed_address_is_forgotten_not_deleted():
    state, live = applied_orders()
    removal = Removed("view.orders-emea", "manifests/removed.yaml", 4)
    plan = build_plan(wanted(make_dataset(shared=True), removals=[removal]), state, live)
    assert ops(plan) == [("forget", "view.orders-emea")]
    (forget,) = plan.changes
    assert isinstance(forget, Forget) and forget.dataset_id == "v1" and "manifests/removed.yaml:4" in forget.reason


def test_a_protected_resource_can_be_forgotten_but_not_deleted():
    orders = make_dataset(protect=True)
    state = State(resources={"dataset.orders": recorded(orders)})
    live = Live(objects={"dataset.orders": live_dataset(orders)})
    with pytest.raises(ProtectedResourceError):
        build_plan(wanted(), state, live)
    plan = build_plan(wanted(removals=[Removed("dataset.orders")]), state, live)
    assert ops(plan) == [("forget", "dataset.orders")] and plan.changes[0].protect


def test_a_removed_address_the_state_does_not_record_is_nothing_to_do():
    state, live = applied_orders()
    plan = build_plan(wanted(make_dataset(shared=True), make_view(), removals=[Removed("dataset.legacy")]),
                      state, live)
    assert not plan.has_changes


# -- plans as files and as text -----------------------------------------------------------


def moving_and_forgetting() -> Plan:
    state, live = applied_orders()
    state = state.with_resource("dataset.legacy", recorded(make_dataset("legacy"), "d9"))
    live = Live(objects={**live.objects, "dataset.legacy": live_dataset(make_dataset("legacy"), "d9")})
    return build_plan(wanted(*renamed(), moves=[MOVE], removals=[Removed("dataset.legacy")]), state, live,
                      environment="test")


def test_a_plan_file_reads_back_the_same_move_and_forget(tmp_path):
    plan = moving_and_forgetting()
    path = tmp_path / "plan.json"
    save_plan(path, render_json(plan))
    again = load_plan(path)
    assert again.actions == plan.actions
    assert json.loads(path.read_text())["summary"]["move"] == json.loads(path.read_text())["summary"]["forget"] == 1
    assert {type(a) for a in again.changes} == {Move, Forget}


def test_the_text_plan_says_what_moved_where_and_counts_both_ops():
    text = render_text(moving_and_forgetting())
    assert "  # dataset.orders has moved to dataset.sales-orders (kind: Moved at manifests/moves.yaml:4" in text
    assert "  -> dataset.sales-orders [id=d1]" in text
    assert "  # dataset.legacy will no longer be managed, and stays in Qrvey (kind: Removed" in text
    assert "  . dataset.legacy [id=d9]" in text
    assert summary_line(moving_and_forgetting()) == (
        "Plan: 0 to create, 0 to update, 0 to replace, 0 to delete, 1 to move, 1 to forget.")


def test_the_pr_comment_counts_both_ops_and_names_the_old_address():
    comment = render_markdown(moving_and_forgetting())
    assert "| create | update | replace | delete | share | unshare | move | forget |" in comment
    assert "| 0 | 0 | 0 | 0 | 0 | 0 | 1 | 1 |" in comment
    assert "- <code>dataset.sales-orders</code> **move** from <code>dataset.orders</code>:" in comment
    assert "- <code>dataset.legacy</code> **forget**:" in comment


def test_the_pr_comment_has_no_move_or_forget_column_when_there_are_none():
    state, live = applied_orders()
    plan = build_plan(wanted(make_dataset(shared=True, display="Orders 2"), make_view()), state, live)
    assert "| create | update | replace | delete | share | unshare |\n" in render_markdown(plan)


# -- applying them (the engine over the in-memory fakes) ----------------------------------


async def applied_world():
    """dataset.orders and view.orders-emea applied on the fakes."""
    qrvey, store = FakeQrvey(), MemoryStateStore()
    engine = Engine(qrvey, store)
    first = wanted(make_dataset(shared=True), make_view())
    plan, _ = await engine.plan(first, store.read(), "test")
    await engine.apply(plan, store.read())
    return qrvey, store, engine


def marker(qrvey: FakeQrvey, dataset_id: str):
    return (qrvey.objects[dataset_id].get("customAttributes") or {}).get(OWNER_ATTRIBUTE)


@pytest.mark.anyio
async def test_applying_a_move_renames_the_state_and_the_marker_with_no_create_or_delete():
    qrvey, store, engine = await applied_world()
    before = dict(store.read().resources)
    qrvey.calls.clear()
    manifest = wanted(*renamed(), moves=[MOVE])
    plan, _ = await engine.plan(manifest, store.read(), "test")
    await engine.apply(plan, store.read())
    writes = [op for op, _ in qrvey.writes()]
    assert "create_dataset" not in writes and "clone_view" not in writes and "delete" not in writes
    state = store.read()
    assert set(state.resources) == {"dataset.sales-orders", "view.orders-emea"}
    orders_id = before["dataset.orders"].datasetId
    assert state.resources["dataset.sales-orders"].datasetId == orders_id
    assert state.resources["view.orders-emea"].source["address"] == "dataset.sales-orders"
    assert marker(qrvey, orders_id) == "dataset.sales-orders"
    again, _ = await engine.plan(manifest, state, "test")
    assert not again.has_changes


@pytest.mark.anyio
async def test_a_move_whose_update_fails_keeps_the_rename_and_plans_the_rest_as_an_update():
    qrvey, store, engine = await applied_world()
    qrvey.refuse("update_dataset")                      # never reaches Qrvey
    manifest = wanted(*renamed(), moves=[MOVE])
    plan, _ = await engine.plan(manifest, store.read(), "test")
    with pytest.raises(ApplyError, match="dataset.sales-orders: failed"):
        await engine.apply(plan, store.read())
    state = store.read()
    assert "dataset.sales-orders" in state.resources and "dataset.orders" not in state.resources
    again, _ = await engine.plan(manifest, state, "test")
    assert ops(again) == [("update", "dataset.sales-orders")]


@pytest.mark.anyio
async def test_applying_a_forget_takes_the_marker_off_keeps_the_object_and_drops_the_record():
    qrvey, store, engine = await applied_world()
    view_id = store.read().resources["view.orders-emea"].datasetId
    name, columns = qrvey.objects[view_id]["name"], qrvey.objects[view_id]["columns"]
    qrvey.objects[view_id]["customAttributes"]["team"] = "emea"
    qrvey.calls.clear()
    manifest = wanted(make_dataset(shared=True), removals=[Removed("view.orders-emea")])
    plan, _ = await engine.plan(manifest, store.read(), "test")
    await engine.apply(plan, store.read())
    assert "delete" not in [op for op, _ in qrvey.writes()]
    assert view_id in qrvey.objects
    assert qrvey.objects[view_id]["customAttributes"] == {"team": "emea"}       # only the marker went
    assert (qrvey.objects[view_id]["name"], qrvey.objects[view_id]["columns"]) == (name, columns)
    assert set(store.read().resources) == {"dataset.orders"}
    again, _ = await engine.plan(manifest, store.read(), "test")
    assert not again.has_changes


@pytest.mark.anyio
async def test_forgetting_a_dataset_leaves_its_definition_as_it_is():
    qrvey, store, engine = await applied_world()
    orders_id = store.read().resources["dataset.orders"].datasetId
    before = {k: v for k, v in qrvey.objects[orders_id].items() if k != "customAttributes"}
    removals = [Removed("dataset.orders"), Removed("view.orders-emea")]
    plan, _ = await engine.plan(wanted(removals=removals), store.read(), "test")
    await engine.apply(plan, store.read())
    after = {k: v for k, v in qrvey.objects[orders_id].items() if k != "customAttributes"}
    assert after == before and marker(qrvey, orders_id) is None
    assert store.read().resources == {}


@pytest.mark.anyio
async def test_a_forget_leaves_alone_an_object_that_carries_another_marker_or_is_gone():
    qrvey, store, engine = await applied_world()
    resources = store.read().resources
    orders_id, view_id = resources["dataset.orders"].datasetId, resources["view.orders-emea"].datasetId
    qrvey.objects[orders_id]["customAttributes"][OWNER_ATTRIBUTE] = "dataset.someone-else"
    del qrvey.objects[view_id]
    qrvey.calls.clear()
    removals = [Removed("dataset.orders"), Removed("view.orders-emea")]
    plan, _ = await engine.plan(wanted(removals=removals), store.read(), "test")
    await engine.apply(plan, store.read())
    assert qrvey.writes() == []
    assert marker(qrvey, orders_id) == "dataset.someone-else"
    assert store.read().resources == {}


def test_a_target_or_exclude_may_name_a_moved_object_by_its_old_address():
    state, live = applied_orders()
    manifest = wanted(*renamed(), make_dataset("products", display="Products"), moves=[MOVE])
    targeted = build_plan(manifest, state, live, targets=["dataset.orders"])
    assert ops(targeted) == [("move", "dataset.sales-orders")]
    assert targeted.targets == ("dataset.sales-orders",)
    assert "dataset.orders is dataset.sales-orders (kind: Moved)" in targeted.notes
    excluded = build_plan(manifest, state, live, excludes=["dataset.orders"])
    assert ops(excluded) == [("create", "dataset.products")]


@pytest.mark.anyio
async def test_a_view_can_move_too_and_keeps_its_object():
    qrvey, store, engine = await applied_world()
    view_id = store.read().resources["view.orders-emea"].datasetId
    move = Moved("view.orders-emea", "view.orders-europe", "manifests/moves.yaml", 4)
    manifest = wanted(make_dataset(shared=True), make_view("orders-europe"), moves=[move])
    qrvey.calls.clear()
    plan, _ = await engine.plan(manifest, store.read(), "test")
    assert ops(plan) == [("move", "view.orders-europe")]
    await engine.apply(plan, store.read())
    assert "clone_view" not in [op for op, _ in qrvey.writes()] and "delete" not in [op for op, _ in qrvey.writes()]
    assert store.read().resources["view.orders-europe"].datasetId == view_id
    assert marker(qrvey, view_id) == "view.orders-europe"
    again, _ = await engine.plan(manifest, store.read(), "test")
    assert not again.has_changes


def test_a_state_move_takes_the_recorded_sources_of_views_and_of_pending_view_creates_along():
    state, _ = applied_orders()
    entry = JournalEntry(id="e1", op="create", address="view.orders-apac", appId="a-apac", userId="u3",
                         detail=JournalDetail(kind="DatasetView", source={"address": "dataset.orders",
                                                                          "datasetId": "d1"}))
    other = JournalEntry(id="e2", op="create", address="dataset.products", appId="a-sales", userId="u1",
                         detail=JournalDetail(kind="Dataset"))
    moved = state.with_journal(entry).with_journal(other).with_move("dataset.orders", "dataset.sales-orders")
    assert set(moved.resources) == {"dataset.sales-orders", "view.orders-emea"}
    assert moved.resources["dataset.sales-orders"] == state.resources["dataset.orders"]
    assert moved.resources["view.orders-emea"].source["address"] == "dataset.sales-orders"
    assert moved.resources["view.orders-emea"].source["datasetId"] == "d1"
    assert moved.journal[0].detail.source == {"address": "dataset.sales-orders", "datasetId": "d1"}
    assert moved.journal[1] == other
