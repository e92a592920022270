"""build_plan with dict literals: every action kind, drift vs manifest change, order."""

import copy
import pytest

from qrvey_iac.core.diff import canonical_hash
from qrvey_iac.core.kinds import KINDS
from qrvey_iac.core.kinds.base import OWNER_ATTRIBUTE
from qrvey_iac.core.errors import ProtectedResourceError
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.manifest import Manifest, Resource
from qrvey_iac.core.kinds.dataset import DatasetSpec
from qrvey_iac.core.kinds.view import DatasetViewSpec
from qrvey_iac.core.plan import execution_levels, fingerprint
from qrvey_iac.core.planner import Live, build_plan
from qrvey_iac.core.state import ResourceState, State

SALES = AppRef("u1", "a-sales")
EMEA = AppRef("u2", "a-emea")


def make_dataset(name="orders", shared=False, protect=False, columns=None, app=SALES, display="Orders"):
    spec = DatasetSpec.model_validate({
        "app": "sales", "name": display, "shared": shared, "protect": protect,
        "datasources": [{"name": "Orders", "connectionId": "c1", "connectorType": "MSSQL_LIVE",
                         "database": "shop", "tableName": "orders"}],
        "columns": columns or [{"columnName": "Total", "columnType": "NUMBER"}],
    })
    return Resource(f"dataset.{name}", "Dataset", app, "sales", spec, ())


def make_view(name="orders-emea", source="dataset.orders", display="Orders (EMEA)"):
    spec = DatasetViewSpec.model_validate({"app": "emea", "source": source, "name": display})
    return Resource(f"view.{name}", "DatasetView", EMEA, "emea", spec, (source,))


def make_manifest(*resources):
    return Manifest(resources={r.address: r for r in resources})


def live_dataset(resource, dataset_id="d1", **overrides):
    """What the emulator's Get Dataset returns for a dataset created from ``resource``."""
    spec = resource.spec
    body = {
        "datasetId": dataset_id, "appId": resource.app.app_id, "userId": resource.app.user_id,
        "status": "DRAFT", "connectionId": f"sys-{dataset_id}", "datasetType": "MANAGED",
        "isPublic": spec.shared, "name": spec.name,
        "datasources": [{**d.model_dump(exclude_none=True), "datasourceId": "ds-1"} for d in spec.datasources],
        "columns": [{"columnName": c.columnName, "columnType": c.columnType, "columnId": f"col{i}",
                     "datasetId": dataset_id, "origColumnType": c.columnType,
                     "origColumnSourceName": c.columnName} for i, c in enumerate(spec.columns)],
        "customAttributes": {OWNER_ATTRIBUTE: resource.address},
    }
    body.update(overrides)
    return body


def live_view(resource, dataset_id="v1", source_id="d1", **overrides):
    body = {
        "datasetId": dataset_id, "appId": resource.app.app_id, "userId": resource.app.user_id,
        "datasetType": "VIEW", "name": resource.spec.name, "connectionId": f"sys-{dataset_id}",
        "columns": [{"columnName": "Total", "columnType": "NUMBER", "origColumnSourceName": "Total"}],
        "customAttributes": {OWNER_ATTRIBUTE: resource.address},
        "sourceDataset": {"datasetId": source_id}, "sourceStatus": "AVAILABLE",
    }
    body.update(overrides)
    return body


def recorded(resource, dataset_id="d1", shared=None, source=None):
    return ResourceState(
        kind=resource.kind, datasetId=dataset_id, appId=resource.app.app_id, userId=resource.app.user_id,
        connectionId=f"sys-{dataset_id}",
        shared=resource.spec.shared if shared is None and resource.kind == "Dataset" else bool(shared),
        applied_hash=canonical_hash(resource.desired), source=source, protect=resource.spec.protect,
    )


def ops(plan):
    return [(a.op, a.address) for a in plan.changes]


def test_empty_state_creates_datasets_then_shares_then_views():
    orders, view = make_dataset(shared=True), make_view()
    plan = build_plan(make_manifest(view, orders), State(), Live())
    assert ops(plan) == [("create", "dataset.orders"), ("share", "dataset.orders"), ("create", "view.orders-emea")]
    levels = [[s.key for s in level] for level in execution_levels(plan)]
    assert levels == [["create:dataset.orders"], ["share:dataset.orders"], ["create:view.orders-emea"]]
    assert plan.summary() == {"create": 2, "update": 0, "replace": 0, "delete": 0, "share": 1, "unshare": 0,
                              "load": 0, "blocked": 0, "move": 0, "forget": 0, "import": 0}


def test_converged_world_is_no_op():
    orders, view = make_dataset(shared=True), make_view()
    state = State(resources={
        orders.address: recorded(orders), view.address: recorded(view, "v1", source={"address": orders.address, "datasetId": "d1"}),
    })
    live = Live(objects={orders.address: live_dataset(orders), view.address: live_view(view)})
    plan = build_plan(make_manifest(orders, view), state, live)
    assert not plan.has_changes
    assert [a.op for a in plan.actions] == ["no-op", "no-op"]


def test_manifest_column_type_change_is_one_field_update():
    before = make_dataset()
    after = make_dataset(columns=[{"columnName": "Total", "columnType": "STRING"}])
    state = State(resources={before.address: recorded(before)})
    plan = build_plan(make_manifest(after), state, Live(objects={before.address: live_dataset(before)}))
    (action,) = plan.changes
    assert (action.op, action.drift, action.reason) == ("update", False, "changed in the manifests")
    assert [(c.path, c.before, c.after) for c in action.changes] == [("columns.Total.columnType", "NUMBER", "STRING")]


def test_out_of_band_edit_is_drift():
    orders = make_dataset()
    state = State(resources={orders.address: recorded(orders)})
    live = live_dataset(orders, name="Orders (edited by hand)")
    plan = build_plan(make_manifest(orders), state, Live(objects={orders.address: live}))
    (action,) = plan.changes
    assert (action.op, action.drift) == ("update", True)
    assert [(c.path, c.before, c.after) for c in action.changes] == [("name", "Orders (edited by hand)", "Orders")]


def test_server_owned_fields_never_diff():
    orders = make_dataset()
    state = State(resources={orders.address: recorded(orders)})
    live = live_dataset(orders, status="LOADED", updateDate="2026-01-01T00:00:00.000Z", pendingChanges=True)
    live["columns"][0]["columnId"] = "other"
    plan = build_plan(make_manifest(orders), state, Live(objects={orders.address: live}))
    assert not plan.has_changes


def test_deleted_outside_is_recreated_as_drift():
    orders = make_dataset()
    state = State(resources={orders.address: recorded(orders)})
    plan = build_plan(make_manifest(orders), state, Live(objects={orders.address: None}))
    (action,) = plan.changes
    assert (action.op, action.drift, action.reason) == ("create", True, "deleted outside qrvey-iac")


def test_removed_shared_dataset_and_views_delete_views_first():
    orders, view = make_dataset(shared=True), make_view()
    state = State(resources={
        orders.address: recorded(orders), view.address: recorded(view, "v1", source={"address": orders.address, "datasetId": "d1"}),
    })
    live = Live(objects={orders.address: live_dataset(orders), view.address: live_view(view)})
    plan = build_plan(make_manifest(), state, live)
    assert ops(plan) == [("delete", "view.orders-emea"), ("delete", "dataset.orders")]
    levels = [[s.key for s in level] for level in execution_levels(plan)]
    assert levels == [["delete:view.orders-emea"], ["delete:dataset.orders"]]


def test_rename_display_name_is_update_not_replace():
    before, after = make_dataset(), make_dataset(display="Orders v2")
    state = State(resources={before.address: recorded(before)})
    plan = build_plan(make_manifest(after), state, Live(objects={before.address: live_dataset(before)}))
    assert ops(plan) == [("update", "dataset.orders")]


def test_app_change_is_replace_and_replaces_views_of_it():
    before, view = make_dataset(shared=True), make_view()
    moved = make_dataset(shared=True, app=AppRef("u9", "a-other"))
    state = State(resources={
        before.address: recorded(before), view.address: recorded(view, "v1", source={"address": before.address, "datasetId": "d1"}),
    })
    live = Live(objects={before.address: live_dataset(before), view.address: live_view(view)})
    plan = build_plan(make_manifest(moved, view), state, live)
    # listed in execution order: the view is torn down before its source
    assert ops(plan) == [("replace", "view.orders-emea"), ("replace", "dataset.orders"), ("share", "dataset.orders")]
    levels = [[s.key for s in level] for level in execution_levels(plan)]
    assert levels == [
        ["delete:view.orders-emea"], ["delete:dataset.orders"],
        ["create:dataset.orders"], ["share:dataset.orders"], ["create:view.orders-emea"],
    ]


def test_share_and_unshare_follow_manifest_and_detect_drift():
    shared = make_dataset(shared=True)
    state = State(resources={shared.address: recorded(shared)})
    unshared_live = live_dataset(shared, isPublic=False)
    plan = build_plan(make_manifest(shared), state, Live(objects={shared.address: unshared_live}))
    (action,) = plan.changes
    assert (action.op, action.drift) == ("share", True)
    private = make_dataset(shared=False)
    plan = build_plan(make_manifest(private), state, Live(objects={shared.address: live_dataset(shared)}))
    (action,) = plan.changes
    assert (action.op, action.drift, action.reason) == ("unshare", False, "shared: false in the manifests")


def test_view_whose_source_was_deleted_is_replaced():
    orders, view = make_dataset(shared=True), make_view()
    state = State(resources={
        orders.address: recorded(orders), view.address: recorded(view, "v1", source={"address": orders.address, "datasetId": "d1"}),
    })
    live = Live(objects={orders.address: None, view.address: live_view(view, sourceStatus="DELETED")})
    plan = build_plan(make_manifest(orders, view), state, live)
    assert ops(plan) == [("replace", "view.orders-emea"), ("create", "dataset.orders"), ("share", "dataset.orders")]
    levels = [[s.key for s in level] for level in execution_levels(plan)]
    assert levels == [
        ["delete:view.orders-emea"], ["create:dataset.orders"], ["share:dataset.orders"], ["create:view.orders-emea"],
    ]


def test_protected_delete_and_replace_are_refused():
    orders = make_dataset(protect=True)
    state = State(resources={orders.address: recorded(orders)})
    with pytest.raises(ProtectedResourceError, match="dataset.orders"):
        build_plan(make_manifest(), state, Live(objects={orders.address: live_dataset(orders)}))
    moved = make_dataset(protect=True, app=AppRef("u9", "a-other"))
    with pytest.raises(ProtectedResourceError, match="replace"):
        build_plan(make_manifest(moved), state, Live(objects={orders.address: live_dataset(orders)}))


def test_added_and_removed_columns_are_named_by_column():
    before = make_dataset(columns=[{"columnName": "Total", "columnType": "NUMBER"}, {"columnName": "Old", "columnType": "STRING"}])
    after = make_dataset(columns=[{"columnName": "Total", "columnType": "NUMBER"}, {"columnName": "New", "columnType": "DATE"}])
    state = State(resources={before.address: recorded(before)})
    plan = build_plan(make_manifest(after), state, Live(objects={before.address: live_dataset(before)}))
    (action,) = plan.changes
    assert [(c.path, c.before, c.after) for c in action.changes] == [
        ("columns.New.columnType", None, "DATE"), ("columns.Old.columnType", "STRING", None),
    ]


def test_plan_round_trips_through_json():
    orders, view = make_dataset(shared=True), make_view()
    plan = build_plan(make_manifest(orders, view), State(), Live())
    again = type(plan).model_validate_json(plan.model_dump_json())
    assert again == plan


def view_with_columns(columns):
    spec = DatasetViewSpec.model_validate({"app": "emea", "source": "dataset.orders", "name": "Orders (EMEA)",
                                           "columns": columns})
    return Resource("view.orders-emea", "DatasetView", EMEA, "emea", spec, ("dataset.orders",))


def compared_scenarios():
    """(manifest resource, live answer) pairs, each differing from the manifest in one field a
    plan compares; the answers also carry the server-owned fields a refresh lets go."""
    rich = [{"columnName": "Total", "columnType": "NUMBER", "origColumnType": "INT", "visible": True,
             "accessRoles": ["admin"], "origColumnSourceName": "TOTAL"}]
    spec = make_dataset(columns=rich).spec.model_copy(update={"dataSync": {"type": "none"}, "customAttributes": {"k": 1}})
    dataset = Resource("dataset.orders", "Dataset", SALES, "sales", spec, ())
    full = live_dataset(dataset, dataSync={"type": "none"}, customAttributes={OWNER_ATTRIBUTE: dataset.address, "k": 1})
    full["columns"][0].update(origColumnType="INT", visible=True, accessRoles=["admin"], origColumnSourceName="TOTAL")
    full["columns"].append({"columnName": "Extra", "columnType": "STRING", "columnId": "x", "datasetId": "d1"})

    def edited(edit):
        answer = copy.deepcopy(full)
        edit(answer)
        return dataset, answer

    view = view_with_columns([{"column": "Total", "columnName": "Sum"}, {"column": "Tax", "visible": False}])
    view_columns = [
        {"columnName": "Sum", "origColumnSourceName": "Total", "columnType": "NUMBER", "columnId": "c1", "visible": True},
        {"columnName": "Tax", "origColumnSourceName": "Tax", "columnType": "NUMBER", "columnId": "c2", "visible": True},
    ]
    return [
        edited(lambda a: None),
        edited(lambda a: a.update(name="Renamed")),
        edited(lambda a: a.update(isPublic=True)),
        edited(lambda a: a.update(dataSync={"type": "daily"})),
        edited(lambda a: a["customAttributes"].update(k=2)),
        edited(lambda a: a["columns"][0].update(origColumnType="BIGINT")),
        edited(lambda a: a["columns"][0].update(visible=False)),
        edited(lambda a: a["columns"][0].update(accessRoles=["everyone"])),
        edited(lambda a: a["columns"][0].update(origColumnSourceName="total")),
        edited(lambda a: a["columns"][1].update(columnType="DATE")),
        edited(lambda a: a["datasources"][0].update(database="other", datasourceId="ds-2")),
        (view, live_view(view, columns=view_columns)),
        (view, live_view(view, columns=[{**view_columns[0], "columnName": "Total"}, view_columns[1]])),
        (view, live_view(view, sourceStatus="DELETED", columns=view_columns)),
    ]


def test_a_plan_over_the_compared_part_equals_a_plan_over_whole_answers():
    """What a refresh keeps of an answer (compared_part) must plan exactly like the answer:
    every scenario changes one field a plan reads, so a field dropped by mistake shows here."""
    def compared_part(address, answer):
        return KINDS.of_address(address).compared_part(answer)

    paths = set()
    for resource, answer in compared_scenarios():
        orders = make_dataset(shared=True)
        resources = {resource.address: resource} if resource.kind == "Dataset" else {orders.address: orders, resource.address: resource}
        source = {"address": orders.address, "datasetId": "d1"} if resource.kind == "DatasetView" else None
        state = State(resources={a: recorded(r, "v1" if r.kind == "DatasetView" else "d1", source=source if r is resource else None)
                                 for a, r in resources.items()})
        objects = {resource.address: answer}
        if resource.kind == "DatasetView":
            objects[orders.address] = live_dataset(orders)
        whole = build_plan(make_manifest(*resources.values()), state, Live(objects=objects))
        kept = build_plan(make_manifest(*resources.values()), state,
                          Live(objects={a: compared_part(a, o) for a, o in objects.items()},
                               fingerprints={a: fingerprint(o) for a, o in objects.items()}))
        assert kept == whole
        assert all(len(compared_part(a, o)["columns"][0]) < len(o["columns"][0]) for a, o in objects.items())
        paths |= {(a.op, c.path) for a in whole.changes for c in a.changes} | {(a.op, "") for a in whole.changes}
    assert {("update", "name"), ("unshare", "shared"), ("update", "dataSync.type"), ("update", "customAttributes.k"),
            ("update", "columns.Total.origColumnType"), ("update", "columns.Total.visible"),
            ("update", "columns.Total.accessRoles.0"), ("update", "columns.Total.origColumnSourceName"),
            ("update", "columns.Extra.columnType"), ("update", "datasources.Orders.database"),
            ("update", "columns.Tax.visible"), ("update", "columns.Total.columnName"), ("replace", "")} <= paths


# -- views over unmanaged sources: a source gone or unshared blocks only its views ---------------

PARTNER_SOURCE = {"appId": "a-partner", "userId": "u-partner", "datasetId": "d-partner"}


def partner_view(datasetId="d-partner"):
    spec = DatasetViewSpec.model_validate({"app": "emea", "source": {**PARTNER_SOURCE, "datasetId": datasetId},
                                           "name": "Partner"})
    return Resource("view.partner", "DatasetView", EMEA, "emea", spec, ())


def partner_plan(view, source_answer, recorded_source=PARTNER_SOURCE):
    orders = make_dataset()
    state = State(resources={orders.address: recorded(orders),
                             view.address: recorded(view, "v1", source=recorded_source)})
    objects = {orders.address: live_dataset(orders), view.address: live_view(view, source_id="d-partner")}
    renamed = make_dataset(display="Orders v2")
    return build_plan(make_manifest(renamed, view), state,
                      Live(objects=objects, sources={view.external_source.datasetId: source_answer}))


@pytest.mark.parametrize("answer, said", [
    (None, "was deleted in Qrvey: restore it"),
    ({"datasetId": "d-partner", "isPublic": False}, "is no longer shared in Qrvey: share it again"),
])
def test_a_gone_or_unshared_source_blocks_its_view_as_drift_and_the_rest_still_plans(answer, said):
    plan = partner_plan(partner_view(), answer)
    assert ops(plan) == [("update", "dataset.orders"), ("blocked", "view.partner")]
    (blocked,) = plan.refused
    assert blocked.drift is True and blocked.dataset_id == "v1" and not blocked.changes
    assert blocked.reason == (f"its source dataset d-partner in app a-partner {said}, or point the view at "
                              "another shared dataset, or leave it out with --exclude view.partner")


def test_a_shared_source_plans_the_view_as_usual():
    plan = partner_plan(partner_view(), {"datasetId": "d-partner", "isPublic": True})
    assert ops(plan) == [("update", "dataset.orders")] and not plan.refused


def test_a_source_changed_in_the_manifest_to_a_missing_one_is_blocked_but_not_drift():
    plan = partner_plan(partner_view("d-typo"), None)
    (blocked,) = plan.refused
    assert blocked.drift is False
    assert blocked.reason.startswith("its source dataset d-typo in app a-partner does not exist: check "
                                     "spec.source.datasetId, or point")


def test_apply_refuses_a_plan_with_blocked_views_unless_they_are_excluded():
    from qrvey_iac.core.errors import PlanError
    from qrvey_iac.core.planner import refuse_blocked
    from qrvey_iac.core.selection import select

    plan = partner_plan(partner_view(), None)
    with pytest.raises(PlanError, match=r"apply refused: 1 resource\(s\) cannot be planned \(view.partner; .*"
                                        r"run apply --exclude view.partner to apply the rest"):
        refuse_blocked(plan, "apply")
    rest = select(plan, excludes=["view.partner"])
    refuse_blocked(rest, "apply")
    assert ops(rest) == [("update", "dataset.orders")]


# -- changes read per field -----------------------------------------------------------------------

def with_datasources(*datasources):
    spec = make_dataset().spec.model_copy(update={"datasources": tuple(
        make_dataset().spec.datasources[0].model_copy(update=d) for d in datasources)})
    return Resource("dataset.orders", "Dataset", SALES, "sales", spec, ())


def planned_changes(before, after):
    state = State(resources={before.address: recorded(before)})
    (action,) = build_plan(make_manifest(after), state, Live(objects={before.address: live_dataset(before)})).changes
    return [(c.path, c.before, c.after) for c in action.changes]


def test_a_renamed_datasource_is_diffed_field_by_field():
    before = with_datasources({})
    renamed = with_datasources({"name": "OrdersTable", "tableName": "orders_v2"})
    assert planned_changes(before, renamed) == [
        ("datasources.OrdersTable.name", "Orders", "OrdersTable"),
        ("datasources.OrdersTable.tableName", "orders", "orders_v2"),
    ]
    assert planned_changes(before, with_datasources({"name": "OrdersTable"})) == [
        ("datasources.OrdersTable.name", "Orders", "OrdersTable")]


def test_a_datasource_switched_from_table_to_query_and_an_added_one_read_per_field():
    before = with_datasources({})
    after = with_datasources({"tableName": None, "query": "select 1"},
                             {"name": "Returns", "tableName": "returns", "database": None})
    assert planned_changes(before, after) == [
        ("datasources.Orders.query", None, "select 1"),
        ("datasources.Orders.tableName", "orders", None),
        ("datasources.Returns.connectionId", None, "c1"),
        ("datasources.Returns.connectorType", None, "MSSQL_LIVE"),
        ("datasources.Returns.tableName", None, "returns"),
    ]


def test_two_renamed_datasources_are_not_guessed_apart():
    before = with_datasources({}, {"name": "Returns", "tableName": "returns"})
    after = with_datasources({"name": "A"}, {"name": "B", "tableName": "returns"})
    paths = [path for path, _, _ in planned_changes(before, after)]
    assert "datasources.A.name" not in paths and "datasources.B.name" not in paths
    assert {"datasources.A.tableName", "datasources.Orders.tableName", "datasources.Returns.tableName"} <= set(paths)


def view_with(columns):
    spec = DatasetViewSpec.model_validate({"app": "emea", "source": "dataset.orders", "name": "Orders (EMEA)",
                                           "columns": columns})
    return Resource("view.orders-emea", "DatasetView", EMEA, "emea", spec, ("dataset.orders",))


def test_removing_a_view_column_override_says_what_qrvey_will_show():
    orders = make_dataset(shared=True)
    before = view_with([{"column": "Total", "columnName": "Order total"}, {"column": "Tax", "visible": False}])
    recorded_view = recorded(before, "v1", source={"address": "dataset.orders"})
    recorded_view = recorded_view.model_copy(update={"managed": KINDS["DatasetView"].managed_fields(before.desired)})
    state = State(resources={orders.address: recorded(orders), before.address: recorded_view})
    columns = [{"columnName": "Order total", "origColumnSourceName": "Total", "columnType": "NUMBER", "visible": True},
               {"columnName": "Tax", "origColumnSourceName": "Tax", "columnType": "NUMBER", "visible": False}]
    objects = {orders.address: live_dataset(orders), before.address: live_view(before, columns=columns)}
    plan = build_plan(make_manifest(orders, view_with([])), state, Live(objects=objects))
    (action,) = plan.changes
    # the update sends each column back under its source's name, shown: the plan says exactly that
    assert [(c.path, c.before, c.after) for c in action.changes] == [
        ("columns.Tax.visible", False, True),
        ("columns.Total.columnName", "Order total", "Total"),
    ]
    assert action.desired["columns"] == {"Tax": None, "Total": None}      # what apply sends is unchanged
    at_source = [{**c, "columnName": c["origColumnSourceName"], "visible": True} for c in columns]
    converged = {**objects, before.address: live_view(before, columns=at_source)}
    assert not build_plan(make_manifest(orders, view_with([])), state, Live(objects=converged)).changes
