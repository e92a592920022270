"""Issue 13 points 1 and 2 in the core: drift decided field by field next to a manifest change
(planner, text, markdown, JSON), and protect as a state-only change (no API call, never drift).

The golden files per_field_drift.txt / .md are refreshed like the others (see test_render.py).
"""

from __future__ import annotations

import json

import pytest
from fakes.qrvey import FakeQrvey
from fakes.state import MemoryStateStore

from qrvey_iac.cli import differs, render_drift_text
from qrvey_iac.core.diff import canonical_hash
from qrvey_iac.core.errors import ApplyError
from qrvey_iac.core.field_drift import field_digests, field_units
from qrvey_iac.core.kinds import KINDS
from qrvey_iac.core.manifest import Manifest
from qrvey_iac.core.planner import Live, build_plan
from qrvey_iac.core.render import render_json, render_text
from qrvey_iac.core.render_markdown import render_markdown
from qrvey_iac.core.sealing import Sealer, derive_key
from qrvey_iac.core.state import State
from qrvey_iac.engine import Engine
from tests.unit.test_planner import live_dataset, make_dataset, make_manifest, recorded
from tests.unit.test_render import assert_golden

DATASET = KINDS["Dataset"]
COLUMNS = [{"columnName": "Total", "columnType": "NUMBER"}, {"columnName": "Placed", "columnType": "DATE"}]


def applied(resource, dataset_id="d1", fields=True):
    """The state record of ``resource`` as an apply of this release writes it (``fields``:
    with the per-field digests; False: as a format-4 state, without)."""
    record = recorded(resource, dataset_id)
    if fields:
        record = record.model_copy(update={"applied_fields": DATASET.applied_fields(resource.desired),
                                           "managed": DATASET.managed_fields(resource.desired)})
    return record


def plan_of(before, after, live, fields=True):
    state = State(resources={before.address: applied(before, fields=fields)})
    return build_plan(make_manifest(after), state, Live(objects={before.address: live}), environment="prod")


def origins(action):
    return [(c.path, c.origin) for c in action.changes]


def hand_edited(resource, column="Placed", column_type="STRING", **overrides):
    live = live_dataset(resource, **overrides)
    for entry in live["columns"]:
        if entry["columnName"] == column:
            entry["columnType"] = column_type
    return live


# -- point 1: per-field drift in the planner --------------------------------------------------

def test_a_hand_edit_next_to_a_manifest_change_is_marked_drift_field_by_field():
    before = make_dataset(columns=COLUMNS)
    after = make_dataset(columns=COLUMNS, display="Orders (all regions)")
    plan = plan_of(before, after, hand_edited(before))
    (action,) = plan.changes
    assert origins(action) == [("columns.Placed.columnType", "drift"), ("name", "manifests")]
    assert (action.drift, action.reason) == (True, "changed in the manifests and changed outside qrvey-iac")


def test_a_hand_edit_in_another_column_than_the_manifest_change_is_drift():
    before = make_dataset(columns=COLUMNS)
    after = make_dataset(columns=[COLUMNS[0] | {"columnType": "STRING"}, COLUMNS[1]])
    plan = plan_of(before, after, hand_edited(before))
    assert origins(plan.changes[0]) == [("columns.Placed.columnType", "drift"),
                                        ("columns.Total.columnType", "manifests")]


def test_a_field_changed_both_by_hand_and_in_the_manifests_is_the_manifests_change():
    before = make_dataset(columns=COLUMNS)
    after = make_dataset(columns=[COLUMNS[0], COLUMNS[1] | {"columnType": "DATETIME"}])
    plan = plan_of(before, after, hand_edited(before))
    (action,) = plan.changes
    assert [(c.path, c.before, c.after, c.origin) for c in action.changes] == [
        ("columns.Placed.columnType", "STRING", "DATETIME", "manifests")]
    assert (action.drift, action.reason) == (False, "changed in the manifests")


def test_a_column_added_by_hand_is_drift_next_to_a_manifest_rename():
    before = make_dataset(columns=COLUMNS)
    after = make_dataset(columns=COLUMNS, display="Orders 2")
    live = live_dataset(before)
    live["columns"].append({"columnName": "Extra", "columnType": "STRING"})
    changes = {c.path: c.origin for c in plan_of(before, after, live).changes[0].changes}
    assert changes["name"] == "manifests"
    assert all(origin == "drift" for path, origin in changes.items() if path.startswith("columns.Extra"))
    assert any(path.startswith("columns.Extra") for path in changes)


def test_removing_a_whole_field_from_the_manifests_is_the_manifests_change():
    with_sync = make_dataset(columns=COLUMNS)
    with_sync = with_sync.__class__(with_sync.address, with_sync.kind, with_sync.app, with_sync.app_alias,
                                    with_sync.spec.model_copy(update={"dataSync": {"enabled": True}}), ())
    after = make_dataset(columns=COLUMNS)
    state = State(resources={with_sync.address: applied(with_sync)})
    live = hand_edited(with_sync, dataSync={"enabled": True})
    plan = build_plan(make_manifest(after), state, Live(objects={after.address: live}))
    assert origins(plan.changes[0]) == [("columns.Placed.columnType", "drift"), ("dataSync.enabled", "manifests")]


def test_a_state_without_field_digests_decides_for_the_whole_resource_as_before():
    before = make_dataset(columns=COLUMNS)
    after = make_dataset(columns=COLUMNS, display="Orders (all regions)")
    (action,) = plan_of(before, after, hand_edited(before), fields=False).changes
    assert origins(action) == [("columns.Placed.columnType", "manifests"), ("name", "manifests")]
    assert (action.drift, action.reason) == (False, "changed in the manifests")
    (only_drift,) = plan_of(before, before, hand_edited(before), fields=False).changes
    assert origins(only_drift) == [("columns.Placed.columnType", "drift")] and only_drift.drift


def test_field_units_split_objects_by_entry():
    assert field_units({"name": "O", "columns": {"A": {"t": 1}, "B": {}}, "dataSync": None, "tags": {}}) == {
        "name": "O", "columns.A": {"t": 1}, "columns.B": {}, "dataSync": None}


def test_field_digests_of_a_secret_are_keyed_and_a_secret_field_name_is_concealed():
    document = {"name": "Orders", "datasources": {"Main": {"database": "pin-4711"}}, "columns": {"pin-4711": {}}}
    keyed = Sealer(frozenset({"pin-4711"}), derive_key("api-key"))
    digests = field_digests(document, keyed)
    assert digests["name"] == canonical_hash("Orders")[:16]                 # no secret: the plain digest
    assert digests["datasources.Main"] != canonical_hash({"database": "pin-4711"})[:16]
    assert digests["datasources.Main"] == field_digests(document, keyed)["datasources.Main"]
    assert digests["datasources.Main"] != field_digests(document, Sealer(keyed.secrets, derive_key("other")))[
        "datasources.Main"]
    assert "pin-4711" not in json.dumps(digests)


def test_a_secret_change_next_to_a_hand_edit_is_the_manifests_change_and_never_shown():
    secret_v1, secret_v2 = "pin-1111", "pin-2222"
    sealer = Sealer(frozenset({secret_v1, secret_v2}), derive_key("api-key"))

    def with_database(database, display="Orders"):
        resource = make_dataset(columns=COLUMNS, display=display)
        spec = resource.spec.model_copy(update={"datasources": tuple(
            d.model_copy(update={"database": database}) for d in resource.spec.datasources)})
        return resource.__class__(resource.address, resource.kind, resource.app, resource.app_alias, spec, ())

    before, after = with_database(secret_v1), with_database(secret_v2)
    record = recorded(before).model_copy(update={
        "applied_hash": DATASET.applied_hash(before.desired, sealer),
        "applied_fields": DATASET.applied_fields(before.desired, sealer)})
    manifest = Manifest(resources={after.address: after}, secrets=sealer.secrets, seal_key=sealer.key)
    live = Live(objects={after.address: hand_edited(before)})
    plan = build_plan(manifest, State(resources={after.address: record}), live)
    assert origins(plan.changes[0]) == [("columns.Placed.columnType", "drift"),
                                        ("datasources.Orders.database", "manifests")]
    shown = "".join(render(plan, sealer.secrets) for render in (render_text, render_json, render_markdown))
    assert secret_v1 not in shown and secret_v2 not in shown


# -- point 1: what the renderers say ----------------------------------------------------------

def mixed_origin_plan():
    before = make_dataset(columns=COLUMNS)
    after = make_dataset(columns=COLUMNS, display="Orders (all regions)", protect=True)
    return plan_of(before, after, hand_edited(before))


def test_text_marks_each_field_of_a_mixed_update():
    text = render_text(mixed_origin_plan())
    assert "  # dataset.orders will be updated in place (changed in the manifests and changed outside " \
           "qrvey-iac) [drift]" in text
    assert '      ~ columns.Placed.columnType: "STRING" → "DATE"  [drift]' in text
    assert '      ~ name: "Orders" → "Orders (all regions)"  [manifests]' in text
    assert "      ~ protect: false → true  [state only]" in text


def test_markdown_gives_a_mixed_update_a_from_column():
    markdown = render_markdown(mixed_origin_plan())
    assert "| Field | Before | After | From |" in markdown
    assert "| <code>columns.Placed.columnType</code> | <code>\"STRING\"</code> | <code>\"DATE\"</code> | **drift** |" \
        in markdown
    assert "| <code>name</code> | <code>\"Orders\"</code> | <code>\"Orders (all regions)\"</code> | manifests |" \
        in markdown
    assert "| <code>protect</code> | <code>false</code> | <code>true</code> | state only |" in markdown
    assert "- <code>dataset.orders</code> **update**: changed in the manifests and changed outside qrvey-iac · drift" \
        in markdown


def test_json_says_the_origin_of_every_field():
    data = json.loads(render_json(mixed_origin_plan()))
    assert data["format_version"] == 2
    (action,) = [a for a in data["actions"] if a["op"] == "update"]
    assert action["drift"] is True
    assert [(c["path"], c["drift"], c["state_only"]) for c in action["changes"]] == [
        ("columns.Placed.columnType", True, False), ("name", False, False), ("protect", False, True)]


def test_drift_report_lists_the_hand_edit_as_drift_and_the_rest_as_manifest_changes():
    text = render_drift_text(mixed_origin_plan(), frozenset())
    drifted, pending = text.split("Manifest changes not applied yet (1):")
    assert drifted.startswith("Changed outside qrvey-iac (1):")
    assert "columns.Placed.columnType" in drifted and "name" not in drifted.split("[id=d1]")[1]
    assert "(changed outside qrvey-iac) [drift]" in drifted
    assert "columns.Placed" not in pending and '~ name: "Orders" → "Orders (all regions)"  [manifests]' in pending
    assert "~ protect: false → true  [state only]" in pending
    assert differs(mixed_origin_plan())


def golden_plan():
    """Three updates of the same dataset: a hand edit next to a manifest change, drift alone,
    and protect alone."""
    mixed = mixed_origin_plan()
    before = make_dataset("customers", columns=COLUMNS)
    drift_only = plan_of(before, before, hand_edited(before, column="Total", column_type="STRING"))
    protected = make_dataset("products", columns=COLUMNS, protect=True)
    protect_only = plan_of(make_dataset("products", columns=COLUMNS), protected,
                           live_dataset(make_dataset("products", columns=COLUMNS)))
    actions = (*mixed.changes, *drift_only.changes, *protect_only.changes)
    return mixed.model_copy(update={"actions": actions})


def test_per_field_drift_text_matches_golden_file():
    assert_golden("per_field_drift.txt", render_text(golden_plan()))


def test_per_field_drift_markdown_matches_golden_file():
    assert_golden("per_field_drift.md", render_markdown(golden_plan()))


# -- point 2: protect is a state-only change ----------------------------------------------------

@pytest.mark.parametrize("protect", [True, False])
def test_toggling_protect_is_a_state_only_update_and_never_drift(protect):
    before = make_dataset(columns=COLUMNS, protect=not protect)
    after = make_dataset(columns=COLUMNS, protect=protect)
    plan = plan_of(before, after, live_dataset(before))
    (action,) = plan.changes
    assert (action.op, action.drift, action.state_only) == ("update", False, True)
    assert action.reason == f"protect: {str(protect).lower()} in the manifests; no API call"
    assert [(c.path, c.before, c.after, c.origin) for c in action.changes] == [
        ("protect", not protect, protect, "state only")]
    text = render_text(plan)
    assert f"# dataset.orders will be updated in the state only (protect: {str(protect).lower()} in the " \
           "manifests; no API call)\n" in text
    assert "[drift]" not in text and "drift" not in render_markdown(plan).lower().replace("(drift)", "")
    assert not differs(plan)
    report = render_drift_text(plan, frozenset())
    assert report.startswith("No drift: Qrvey matches the manifests")
    assert "Recorded in the state only by the next apply, not drift (1):" in report


def test_protect_next_to_a_hand_edit_keeps_the_hand_edit_drift():
    before = make_dataset(columns=COLUMNS)
    after = make_dataset(columns=COLUMNS, protect=True)
    (action,) = plan_of(before, after, hand_edited(before)).changes
    assert origins(action) == [("columns.Placed.columnType", "drift"), ("protect", "state only")]
    assert not action.state_only and action.drift


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_applying_a_protect_toggle_sends_nothing_and_records_it(anyio_backend):
    qrvey, store = FakeQrvey(), MemoryStateStore()
    engine = Engine(qrvey, store)
    first = make_dataset(columns=COLUMNS)
    plan, _ = await engine.plan(make_manifest(first), store.read(), "test")
    await engine.apply(plan, store.read())
    recorded_fields = store.read().resources[first.address].applied_fields
    assert recorded_fields == DATASET.applied_fields(first.desired) and "columns.Placed" in recorded_fields
    qrvey.calls.clear()
    protected = make_dataset(columns=COLUMNS, protect=True)
    plan, _ = await engine.plan(make_manifest(protected), store.read(), "test")
    assert [(a.op, a.state_only, a.drift) for a in plan.changes] == [("update", True, False)]
    await engine.apply(plan, store.read())
    assert qrvey.writes() == []
    assert store.read().resources[first.address].protect is True
    again, _ = await engine.plan(make_manifest(protected), store.read(), "test")
    assert not again.has_changes


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_write_settled_from_the_journal_records_its_field_digests(anyio_backend):
    qrvey, store = FakeQrvey(), MemoryStateStore()
    engine = Engine(qrvey, store)
    first = make_dataset(columns=COLUMNS)
    qrvey.lose_answer("create_dataset")                # lands; the answer is lost, the journal decides
    plan, _ = await engine.plan(make_manifest(first), store.read(), "test")
    await engine.apply(plan, store.read())
    assert store.read().resources[first.address].applied_fields == DATASET.applied_fields(first.desired)
    renamed = make_dataset(columns=COLUMNS, display="Orders 2")
    qrvey.lose_answer("update_dataset")
    plan, _ = await engine.plan(make_manifest(renamed), store.read(), "test")
    with pytest.raises(ApplyError):
        await engine.apply(plan, store.read())
    assert store.read().journal                           # the update's outcome is unknown
    settled = await engine.settle_journal(store.read(), make_manifest(renamed))
    assert settled.state.resources[first.address].applied_fields == DATASET.applied_fields(renamed.desired)
