"""The import op (issue 14): adoption declared by spec.adopt, found by this environment's marker
when the state lacks an address, and never across environments. Engine + FakeQrvey."""

from __future__ import annotations

import pytest
from fakes.qrvey import FakeQrvey
from fakes.state import MemoryStateStore

from qrvey_iac.core.errors import PlanError
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.kinds import KINDS
from qrvey_iac.core.kinds.base import ENVIRONMENT_ATTRIBUTE, OWNER_ATTRIBUTE, owner_marker
from qrvey_iac.core.kinds.dataset import DatasetSpec
from qrvey_iac.core.kinds.view import DatasetViewSpec
from qrvey_iac.core.manifest import Manifest, Resource
from qrvey_iac.core.plan import Import, Plan, execution_levels, plan_steps
from qrvey_iac.core.planner import refuse_blocked
from qrvey_iac.core.render import render_text, summary_line
from qrvey_iac.core.render_markdown import render_markdown
from qrvey_iac.engine import Engine

SALES = AppRef("u1", "a-sales")
EMEA = AppRef("u2", "a-emea")
ENV = "staging"


def dataset(name="orders", env=ENV, shared=True, columns=None, adopt=None, app=SALES):
    spec = DatasetSpec.model_validate({
        "app": "sales", "name": name.title(), "shared": shared,
        "datasources": [{"name": "Orders", "connectionId": "c1", "connectorType": "MSSQL_LIVE",
                         "database": "shop", "tableName": "orders"}],
        "columns": columns or [{"columnName": "Total", "columnType": "NUMBER"}],
        **({"adopt": {"datasetId": adopt}} if adopt else {}),
    })
    return Resource(f"dataset.{name}", "Dataset", app, "sales", spec, (), file="sales.yaml", line=3, environment=env)


def view(name="orders-emea", env=ENV, source="dataset.orders", adopt=None):
    spec = DatasetViewSpec.model_validate({"app": "emea", "source": source, "name": "Orders (EMEA)",
                                           **({"adopt": {"datasetId": adopt}} if adopt else {})})
    return Resource(f"view.{name}", "DatasetView", EMEA, "emea", spec, (source,), environment=env)


def manifest(*resources, env=ENV):
    return Manifest(resources={r.address: r for r in resources}, environment=env)


def ops(plan):
    return [(a.op, a.address) for a in plan.changes]


async def applied(qrvey, store, wanted, env=ENV):
    engine = Engine(qrvey, store)
    plan, _ = await engine.plan(wanted, store.read(), env)
    await engine.apply(plan, store.read(), wanted.sealer)
    return plan


def ui_dataset(qrvey, dataset_id="ui-1", app=SALES, column_type="NUMBER", attributes=None):
    """A dataset made in the Qrvey UI: no marker."""
    qrvey.objects[dataset_id] = {
        "datasetId": dataset_id, "appId": app.app_id, "userId": app.user_id, "name": "Orders",
        "isPublic": True, "connectionId": f"conn-{dataset_id}", "datasetType": "MANAGED", "status": "LOADED",
        "datasources": [{"name": "Orders", "connectionId": "c1", "connectorType": "MSSQL_LIVE",
                         "database": "shop", "tableName": "orders", "datasourceId": "ds1"}],
        "columns": [{"columnName": "Total", "columnType": column_type}],
        "customAttributes": dict(attributes or {}),
    }


# -- the marker -------------------------------------------------------------------------------


def test_the_marker_names_the_address_and_the_environment_and_plans_leave_it_out():
    resource = dataset()
    assert resource.desired["customAttributes"] == {OWNER_ATTRIBUTE: "dataset.orders", ENVIRONMENT_ATTRIBUTE: ENV}
    assert owner_marker("dataset.orders", ENV) == {OWNER_ATTRIBUTE: "dataset.orders", ENVIRONMENT_ATTRIBUTE: ENV}
    assert view().desired["customAttributes"][ENVIRONMENT_ATTRIBUTE] == ENV
    paths = [path for path, _ in KINDS["Dataset"].create_fields(resource.desired)]
    assert not [p for p in paths if p.startswith("customAttributes")]


def test_the_applied_hash_is_the_one_a_release_without_the_environment_marker_recorded():
    kind = KINDS["Dataset"]
    assert kind.applied_hash(dataset().desired) == kind.applied_hash(dataset(env="").desired)
    assert kind.applied_fields(dataset().desired) == kind.applied_fields(dataset(env="").desired)


# -- a lost state -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_lost_state_plans_imports_and_apply_writes_nothing_then_plan_is_empty():
    qrvey, wanted = FakeQrvey(), manifest(dataset(), view())
    first = MemoryStateStore()
    await applied(qrvey, first, wanted)
    ids = {a: r.datasetId for a, r in first.read().resources.items()}
    writes = list(qrvey.writes())

    lost = MemoryStateStore()                       # a fresh CI runner: no state at all
    engine = Engine(qrvey, lost)
    before = len(qrvey.calls)
    plan, _ = await engine.plan(wanted, lost.read(), ENV)
    assert ops(plan) == [("import", "dataset.orders"), ("import", "view.orders-emea")]
    assert [c[0] for c in qrvey.calls[before:]].count("list_app") == 2          # one listing per app
    assert all(not a.changes for a in plan.changes)
    assert [s.op for s in plan_steps(plan)] == ["import", "import"]              # no update step
    await engine.apply(plan, lost.read(), wanted.sealer)
    assert qrvey.writes() == writes                 # no create, no update, nothing written
    assert {a: r.datasetId for a, r in lost.read().resources.items()} == ids
    assert lost.read().resources["view.orders-emea"].source["address"] == "dataset.orders"
    again, _ = await engine.plan(wanted, lost.read(), ENV)
    assert not again.has_changes


@pytest.mark.anyio
async def test_after_state_rm_of_one_address_only_that_one_is_imported():
    qrvey, wanted, store = FakeQrvey(), manifest(dataset(), dataset("products", shared=False)), MemoryStateStore()
    await applied(qrvey, store, wanted)
    store.write(store.read().without_resource("dataset.products").bumped(), store.read().serial)
    plan, _ = await Engine(qrvey, store).plan(wanted, store.read(), ENV)
    assert ops(plan) == [("import", "dataset.products")]
    assert "1 to import, 0 to create" in summary_line(plan)


@pytest.mark.anyio
async def test_two_environments_sharing_an_instance_never_adopt_each_others_objects():
    qrvey, staging = FakeQrvey(), MemoryStateStore()
    await applied(qrvey, staging, manifest(dataset(), view()))
    prod, prod_manifest = MemoryStateStore(), manifest(dataset(env="prod"), view(env="prod"), env="prod")
    plan, _ = await Engine(qrvey, prod).plan(prod_manifest, prod.read(), "prod")
    assert ops(plan) == [("create", "dataset.orders"), ("share", "dataset.orders"), ("create", "view.orders-emea")]
    assert plan.untracked == ()                          # staging's objects are not prod's business
    await applied(qrvey, prod, prod_manifest, env="prod")
    staged, _ = await Engine(qrvey, staging).plan(manifest(dataset(), view()), staging.read(), ENV)
    assert not staged.has_changes                        # prod's copies are no claim on staging's addresses
    ids = {r.datasetId for r in staging.read().resources.values()}
    assert not ids & {r.datasetId for r in prod.read().resources.values()}


@pytest.mark.anyio
async def test_two_live_objects_claiming_one_address_are_an_error_naming_both_and_nothing_is_created():
    qrvey, store, wanted = FakeQrvey(), MemoryStateStore(), manifest(dataset())
    await applied(qrvey, store, wanted)
    original = store.read().resources["dataset.orders"].datasetId
    ui_dataset(qrvey, "copy-1", attributes=owner_marker("dataset.orders", ENV))   # e.g. duplicated in the UI
    lost = MemoryStateStore()
    with pytest.raises(PlanError) as raised:
        await Engine(qrvey, lost).plan(wanted, lost.read(), ENV)
    assert original in str(raised.value) and "copy-1" in str(raised.value)
    assert "nothing is created" in str(raised.value)
    assert not lost.exists()


@pytest.mark.anyio
async def test_a_tracked_object_of_a_release_without_the_environment_marker_brings_no_update():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    await applied(qrvey, store, manifest(dataset(env=""), view(env=""), env=""), env=ENV)
    marker = qrvey.objects[store.read().resources["dataset.orders"].datasetId]["customAttributes"]
    assert marker == {OWNER_ATTRIBUTE: "dataset.orders"}          # as the release before wrote it
    plan, _ = await Engine(qrvey, store).plan(manifest(dataset(), view()), store.read(), ENV)
    assert not plan.has_changes                                     # no update storm after the upgrade


@pytest.mark.anyio
async def test_an_untracked_object_of_a_release_without_the_environment_marker_is_blocked_not_created():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    await applied(qrvey, store, manifest(dataset(env=""), env=""), env=ENV)
    legacy = store.read().resources["dataset.orders"].datasetId
    lost = MemoryStateStore()
    plan, _ = await Engine(qrvey, lost).plan(manifest(dataset()), lost.read(), ENV)
    assert ops(plan) == [("blocked", "dataset.orders")]
    assert f"qrvey-iac import dataset.orders {legacy}" in plan.changes[0].reason
    with pytest.raises(PlanError):
        refuse_blocked(plan, "apply")


@pytest.mark.anyio
async def test_a_pending_create_is_left_to_the_create_that_takes_it_over():
    qrvey, wanted = FakeQrvey(), manifest(dataset(), view())
    store = MemoryStateStore()
    await applied(qrvey, store, wanted)
    from qrvey_iac.core.state import JournalDetail, JournalEntry
    state = store.read()
    entry = JournalEntry(id="j1", op="create", address="view.orders-emea", appId=EMEA.app_id, userId=EMEA.user_id,
                         detail=JournalDetail(kind="DatasetView"))
    state = state.without_resource("view.orders-emea").with_journal(entry)
    plan, _ = await Engine(qrvey, store).plan(wanted, state, ENV)
    assert ("import", "view.orders-emea") not in ops(plan)


# -- spec.adopt and the import op ---------------------------------------------------------------


@pytest.mark.anyio
async def test_adopting_an_object_that_differs_shows_exactly_its_changes_then_apply_updates_it_once():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    ui_dataset(qrvey, "ui-1", column_type="STRING", attributes={"team": "bi"})
    wanted = manifest(dataset(adopt="ui-1"))
    engine = Engine(qrvey, store)
    plan, _ = await engine.plan(wanted, store.read(), ENV)
    assert ops(plan) == [("import", "dataset.orders")]
    action = plan.changes[0]
    assert isinstance(action, Import) and action.dataset_id == "ui-1" and action.reason == "spec.adopt"
    assert {(c.path, c.before, c.after) for c in action.changes} == {
        ("columns.Total.columnType", "STRING", "NUMBER"),
        (f"customAttributes.{OWNER_ATTRIBUTE}", None, "dataset.orders"),
        (f"customAttributes.{ENVIRONMENT_ATTRIBUTE}", None, ENV),
    }
    assert not action.drift
    assert [[s.key for s in level] for level in execution_levels(plan)] == [
        ["import:dataset.orders"], ["update:dataset.orders"]]
    await engine.apply(plan, store.read(), wanted.sealer)
    assert not [w for w in qrvey.writes() if w[0] in ("create_dataset", "clone_view")]
    assert [w[0] for w in qrvey.writes()] == ["update_dataset", "apply_changes"]
    live = qrvey.objects["ui-1"]
    assert live["customAttributes"] == {"team": "bi", **owner_marker("dataset.orders", ENV)}
    assert live["columns"][0]["columnType"] == "NUMBER"
    again, _ = await engine.plan(wanted, store.read(), ENV)
    assert not again.has_changes
    # once in the state, spec.adopt is inert: another id there changes nothing
    inert, _ = await engine.plan(manifest(dataset(adopt="no-such-id")), store.read(), ENV)
    assert not inert.has_changes


@pytest.mark.anyio
async def test_adopting_an_unshared_dataset_the_manifest_shares_imports_then_shares():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    ui_dataset(qrvey, "ui-1", attributes=owner_marker("dataset.orders", ENV))
    qrvey.objects["ui-1"]["isPublic"] = False
    plan, _ = await Engine(qrvey, store).plan(manifest(dataset(adopt="ui-1")), store.read(), ENV)
    assert ops(plan) == [("import", "dataset.orders"), ("share", "dataset.orders")]
    await Engine(qrvey, store).apply(plan, store.read())
    assert qrvey.objects["ui-1"]["isPublic"] is True and store.read().resources["dataset.orders"].shared


@pytest.mark.anyio
async def test_adoption_problems_are_all_reported_at_once_and_nothing_is_planned():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    await applied(qrvey, store, manifest(dataset()))
    tracked = store.read().resources["dataset.orders"].datasetId
    ui_dataset(qrvey, "in-emea", app=EMEA)
    wanted = manifest(dataset(), dataset("ghost", adopt="no-such-id"), dataset("twin", adopt=tracked),
                      dataset("elsewhere", adopt="in-emea"), view("v", source="dataset.orders"))
    with pytest.raises(PlanError) as raised:
        await Engine(qrvey, store).plan(wanted, store.read(), ENV)
    text = str(raised.value)
    assert "3 object(s) cannot be adopted" in text
    assert "sales.yaml:3: dataset.ghost spec.adopt.datasetId no-such-id does not exist in app a-sales" in text
    assert f"dataset.twin spec.adopt.datasetId {tracked} is already managed as dataset.orders" in text
    assert "dataset.elsewhere spec.adopt.datasetId in-emea is in app a-emea, not in app a-sales" in text


@pytest.mark.anyio
async def test_a_view_adopted_must_be_a_view_of_its_manifests_source():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    await applied(qrvey, store, manifest(dataset(), dataset("other"), view()))
    view_id = store.read().resources["view.orders-emea"].datasetId
    state = store.read().without_resource("view.orders-emea")
    wrong = manifest(dataset(), dataset("other"), view(source="dataset.other", adopt=view_id))
    with pytest.raises(PlanError, match=f"{view_id} is a view of"):
        await Engine(qrvey, store).plan(wrong, state, ENV)


def test_an_import_round_trips_through_a_plan_file_and_renders_in_text_and_markdown():
    resource = dataset()
    action = Import(address=resource.address, kind="Dataset", reason="spec.adopt", dataset_id="ui-1",
                    desired=resource.desired, changes=())
    plan = Plan(environment=ENV, actions=(action,))
    assert Plan.model_validate_json(plan.model_dump_json()) == plan
    assert plan.summary()["import"] == 1
    text = render_text(plan)
    assert "  <= dataset.orders [id=ui-1]" in text and "will be imported (spec.adopt)" in text
    assert text.rstrip().endswith("Plan: 1 to import, 0 to create, 0 to update, 0 to replace, 0 to delete.")
    markdown = render_markdown(plan)
    assert "| create | update | replace | delete | share | unshare | import |" in markdown
    assert "**import**" in markdown


@pytest.mark.anyio
async def test_a_view_is_not_adopted_as_a_dataset():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    await applied(qrvey, store, manifest(dataset(), view()))
    view_id = store.read().resources["view.orders-emea"].datasetId
    wrong = manifest(dataset(), view(), dataset("copy", adopt=view_id, app=EMEA))
    with pytest.raises(PlanError, match=f"{view_id} is already managed as view.orders-emea"):
        await Engine(qrvey, store).plan(wrong, store.read(), ENV)
    state = store.read().without_resource("view.orders-emea")
    with pytest.raises(PlanError, match=f"dataset.copy: {view_id} is not a Dataset \\(datasetType VIEW\\)"):
        await Engine(qrvey, store).plan(manifest(dataset(), dataset("copy", adopt=view_id, app=EMEA)), state, ENV)
