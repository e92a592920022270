"""Dataset loads (issue 16 point 2): which datasets a plan loads and why (core/loads.py), how
plans show it, and how apply runs the load step on the fakes (engine.load_and_wait)."""

from __future__ import annotations

import asyncio
import json

import pytest
from fakes.qrvey import FakeQrvey
from fakes.state import MemoryStateStore

from qrvey_iac.core.errors import ApplyError, StoppedError
from qrvey_iac.core.kinds import KINDS
from qrvey_iac.core.plan import Plan, execution_levels
from qrvey_iac.core.planner import Live, build_plan
from qrvey_iac.core.render import render_json, render_text
from qrvey_iac.core.render_markdown import render_markdown
from qrvey_iac.core.state import State
from qrvey_iac.engine import Engine
from tests.unit.test_planner import live_dataset, live_view, make_manifest, make_view, recorded
from tests.unit.test_planner import make_dataset as planner_dataset

ANYIO = pytest.mark.anyio


def make_dataset(load=False, **kwargs):
    resource = planner_dataset(**kwargs)
    spec = resource.spec.model_copy(update={"load": load})
    return type(resource)(resource.address, resource.kind, resource.app, resource.app_alias, spec, ())


def planned(resource, status="LOADED", live_from=None, **live_changes):
    """The plan for ``resource``, recorded and live as ``live_from`` (default: itself) made it,
    with ``status`` (and ``live_changes``)."""
    state = State(resources={resource.address: recorded(live_from or resource)})
    live = Live(objects={resource.address: KINDS["Dataset"].compared_part(
        live_dataset(live_from or resource, status=status, **live_changes))})
    return build_plan(make_manifest(resource), state, live)


def ops(plan: Plan) -> list[tuple[str, str, bool]]:
    return [(a.op, a.address, a.load) for a in plan.changes]


# -- which datasets are loaded --------------------------------------------------------------


@pytest.mark.parametrize("load", [True, "onChange"])
def test_a_new_dataset_that_asks_for_loads_is_loaded_after_its_create_and_before_its_share_and_views(load):
    orders, view = make_dataset(load=load, shared=True), make_view()
    plan = build_plan(make_manifest(orders, view), State(), Live())
    assert ops(plan) == [("create", "dataset.orders", True), ("share", "dataset.orders", False),
                         ("create", "view.orders-emea", False)]
    levels = [[s.key for s in level] for level in execution_levels(plan)]
    assert levels == [["create:dataset.orders"], ["load:dataset.orders"], ["share:dataset.orders"],
                      ["create:view.orders-emea"]]


def test_without_load_nothing_is_loaded_whatever_the_status():
    orders = make_dataset(shared=True)
    assert not build_plan(make_manifest(orders), State(), Live()).changes[0].load
    assert not planned(orders, status="DRAFT").has_changes


@pytest.mark.parametrize("load", [True, "onChange"])
@pytest.mark.parametrize("status", ["DRAFT", "FAILED", "LOADING", "draft"])
def test_a_dataset_not_loaded_gets_a_load_action(load, status):
    plan = planned(make_dataset(load=load), status=status)
    [action] = plan.changes
    assert (action.op, action.status, action.load) == ("load", status, False)
    assert (f"status {status}" in action.reason) or ("a load is running" in action.reason)
    assert [[s.key for s in level] for level in execution_levels(plan)] == [["load:dataset.orders"]]


@pytest.mark.parametrize("status", ["LOADED", "ACTIVE"])
def test_a_loaded_dataset_with_no_change_is_left_alone(status):
    assert not planned(make_dataset(load=True), status=status).has_changes


def test_on_change_reloads_after_a_structural_change_only():
    orders = make_dataset(load="onChange", columns=[{"columnName": "Total", "columnType": "STRING"}])
    [update] = planned(orders, live_from=make_dataset()).changes      # live Total is NUMBER: a type change
    assert (update.op, update.load) == ("update", True)
    assert "a structural change (columns.Total.columnType) needs a reload" == update.load_reason
    renamed = make_dataset(load="onChange", display="Renamed orders")
    [update] = planned(renamed, name="Orders").changes
    assert (update.op, update.load) == ("update", False)     # D5: metadata needs no reload


def test_on_change_reloads_after_a_datasource_change():
    orders = make_dataset(load="onChange")
    live_sources = [{"name": "Orders", "connectionId": "c1", "connectorType": "MSSQL_LIVE", "database": "shop",
                     "tableName": "old_orders", "datasourceId": "ds-1"}]
    [update] = planned(orders, datasources=live_sources).changes
    assert update.load and "datasources.Orders.tableName" in update.load_reason


def test_load_true_reloads_after_every_update():
    renamed = make_dataset(load=True, display="Renamed orders")
    [update] = planned(renamed, name="Orders").changes
    assert (update.op, update.load, update.load_reason) == ("update", True, "load: true reloads it after every update")


def test_an_update_of_a_dataset_not_loaded_loads_it_once_not_twice():
    renamed = make_dataset(load="onChange", display="Renamed orders")
    plan = planned(renamed, status="FAILED", name="Orders")
    assert ops(plan) == [("update", "dataset.orders", True)]
    assert "status FAILED" in plan.changes[0].load_reason


def test_the_status_is_kept_on_dataset_actions_only():
    orders, view = make_dataset(shared=True), make_view()
    state = State(resources={"dataset.orders": recorded(orders), "view.orders-emea": recorded(view, "v1")})
    live = Live(objects={"dataset.orders": KINDS["Dataset"].compared_part(live_dataset(orders, status="LOADED")),
                         "view.orders-emea": KINDS["DatasetView"].compared_part(live_view(view, status="LOADED"))})
    plan = build_plan(make_manifest(orders, view), state, live)
    assert {a.address: a.status for a in plan.actions} == {"dataset.orders": "LOADED", "view.orders-emea": None}


def test_a_structural_change_is_the_kinds_data():
    kind = KINDS["Dataset"]
    assert [kind.is_structural(p) for p in ("columns.Total.columnType", "datasources.Orders.query",
                                            "columns.a.b.columnType")] == [True, True, True]
    assert [kind.is_structural(p) for p in ("name", "columns.Total.visible", "customAttributes.team",
                                            "dataSync")] == [False, False, False, False]
    assert not KINDS["DatasetView"].loadable and KINDS["Dataset"].loadable


# -- how plans show it ----------------------------------------------------------------------


def test_text_markdown_and_json_show_the_status_and_the_load():
    failed = planned(make_dataset(load=True), status="FAILED")
    text = render_text(failed)
    assert "# dataset.orders will be loaded (status FAILED, not loaded (load: true))" in text
    assert "↻ dataset.orders [id=d1]" in text and "1 to load." in text
    markdown = render_markdown(failed)
    assert "| create | update | replace | delete | share | unshare | load |" in markdown
    assert "**load**: status FAILED" in markdown and "status <code>FAILED</code>" in markdown
    action, noop = json.loads(render_json(failed))["actions"]     # in execution order: the load first
    assert (noop["op"], noop["status"]) == ("no-op", "FAILED")
    assert (action["op"], action["status"], action["load"]) == ("load", "FAILED", False)
    assert json.loads(render_json(failed))["summary"]["load"] == 1
    created = build_plan(make_manifest(make_dataset(load=True)), State(), Live())
    assert "↻ then loaded: a new dataset is empty (DRAFT) until loaded" in render_text(created)
    assert "then **load**" in render_markdown(created)
    assert json.loads(render_json(created))["actions"][0]["load"] is True


def test_a_plan_without_loads_shows_no_load_column():
    plan = build_plan(make_manifest(make_dataset()), State(), Live())
    assert "| load |" not in render_markdown(plan) and "to load" not in render_text(plan)


# -- apply's load step, on the fakes ----------------------------------------------------------


async def converge(engine: Engine, store: MemoryStateStore, wanted) -> Plan:
    plan, _ = await engine.plan(wanted, store.read(), "test")
    await engine.apply(plan, store.read())
    return plan


def loaded_example():
    return make_manifest(make_dataset(load=True, shared=True), make_view())


@ANYIO
async def test_apply_loads_the_dataset_before_sharing_it_and_making_its_view():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    await converge(Engine(qrvey, store), store, loaded_example())
    writes = [operation for operation, _ in qrvey.writes()]
    assert writes == ["create_dataset", "load", "set_shared", "clone_view"]
    dataset_id = store.read().resources["dataset.orders"].datasetId
    assert qrvey.objects[dataset_id]["status"] == "LOADED"
    again, _ = await Engine(qrvey, store).plan(loaded_example(), store.read(), "test")
    assert not again.has_changes


@ANYIO
async def test_a_failed_load_fails_the_apply_its_views_are_not_made_and_a_rerun_converges():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    qrvey.load_ends = "FAILED"
    with pytest.raises(ApplyError) as failed:
        await converge(Engine(qrvey, store), store, loaded_example())
    report = str(failed.value)
    assert "load:dataset.orders: failed: dataset.orders (dataset " in report and "failed to load (status FAILED)" in report
    assert "not started: 2 (share:dataset.orders, create:view.orders-emea)" in report
    assert "clone_view" not in [operation for operation, _ in qrvey.writes()]
    assert set(store.read().resources) == {"dataset.orders"}
    qrvey.load_ends = "LOADED"                                   # the source fixed
    plan = await converge(Engine(qrvey, store), store, loaded_example())
    assert ops(plan) == [("load", "dataset.orders", False), ("share", "dataset.orders", False),
                         ("create", "view.orders-emea", False)]
    again, _ = await Engine(qrvey, store).plan(loaded_example(), store.read(), "test")
    assert not again.has_changes


@ANYIO
async def test_a_load_running_when_apply_starts_is_waited_for_not_started_again():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    orders = make_manifest(make_dataset(load=True))
    await converge(Engine(qrvey, store), store, orders)
    dataset_id = store.read().resources["dataset.orders"].datasetId
    qrvey.objects[dataset_id]["status"] = "LOADING"             # a run stopped while its load ran
    qrvey.loading[dataset_id] = 2
    before = len(qrvey.writes())
    plan = await converge(Engine(qrvey, store), store, orders)
    assert ops(plan) == [("load", "dataset.orders", False)]
    assert qrvey.writes()[before:] == []                         # no second load started
    assert qrvey.objects[dataset_id]["status"] == "LOADED"


@ANYIO
async def test_a_load_still_running_after_the_load_timeout_is_an_error_naming_the_dataset():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    qrvey.load_reads = 10_000
    with pytest.raises(ApplyError) as failed:
        await converge(Engine(qrvey, store, load_timeout=0.3), store, make_manifest(make_dataset(load=True)))
    assert "dataset.orders (dataset " in str(failed.value) and "still LOADING after waiting" in str(failed.value)
    assert "--load-timeout" in str(failed.value)


@ANYIO
async def test_a_lost_answer_to_the_load_call_is_read_back_not_an_error():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    qrvey.lose_answer("load")
    await converge(Engine(qrvey, store), store, make_manifest(make_dataset(load=True)))
    assert qrvey.objects[store.read().resources["dataset.orders"].datasetId]["status"] == "LOADED"


@ANYIO
async def test_engine_load_loads_the_addresses_and_reports_each_failure():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    both = make_manifest(make_dataset(), make_dataset(name="customers", display="Customers"))
    await converge(Engine(qrvey, store), store, both)
    lines = await Engine(qrvey, store).load(store.read(), ["dataset.orders", "dataset.customers"])
    assert [line.split(" ")[0] for line in lines] == ["dataset.orders", "dataset.customers"]
    assert all("status LOADED" in line for line in lines)
    qrvey.load_ends = "FAILED"
    with pytest.raises(ApplyError) as failed:
        await Engine(qrvey, store).load(store.read(), ["dataset.orders"])
    assert "1 of 1 dataset(s) not loaded" in str(failed.value) and "dataset.orders: dataset.orders (dataset" in str(
        failed.value)


@ANYIO
async def test_a_stop_request_ends_the_wait_and_says_the_load_goes_on():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    qrvey.load_reads = 10_000
    engine = Engine(qrvey, store)
    asyncio.get_running_loop().call_later(0.3, engine.stop.request, "SIGTERM", 143)
    with pytest.raises(StoppedError) as stopped:
        await converge(engine, store, make_manifest(make_dataset(load=True)))
    assert stopped.value.exit_code == 143
    assert "stopped by SIGTERM while waiting for the load of dataset" in str(stopped.value)
    assert "the load goes on in Qrvey and the next plan or apply waits for it" in str(stopped.value)
    assert set(store.read().resources) == {"dataset.orders"}
