"""The kind registry: the rules every kind must keep, and a new kind planned with no other change.

``Folder`` below is a kind made up for these tests (with a write-only field, as a Connection's
password will be): registering it is all it takes for the planner, the renderers and the
plan's execution order to handle it.
"""

from __future__ import annotations

from typing import Any, Literal

import pytest

from qrvey_iac.core.diff import canonical_hash
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.kinds import KINDS, Registry
from qrvey_iac.core.kinds.base import (
    OWNER_ATTRIBUTE, FieldRules, Frozen, Kind, Metadata, app_changed, owner_attributes,
)
from qrvey_iac.core.manifest import Manifest, Resource
from qrvey_iac.core.plan import execution_levels
from qrvey_iac.core.planner import WRITE_ONLY, Live, build_plan
from qrvey_iac.core.render import render_text
from qrvey_iac.core.state import ResourceState, State

APP = AppRef("u1", "a1")


class FolderSpec(Frozen):
    app: str
    name: str
    protect: bool = False
    token: str | None = None


class FolderDocument(Frozen):
    apiVersion: Literal["qrvey-iac/v1"]
    kind: Literal["Folder"]
    metadata: Metadata
    spec: FolderSpec


class FolderKind(Kind):
    name = "Folder"
    prefix = "folder"
    plural = "folders"
    document = FolderDocument
    rules = FieldRules(managed=("name", "token", "customAttributes"), read_back=("name", "customAttributes"),
                       server_owned=("datasetId", "appId", "userId"), forces_replacement=("app",),
                       write_only=("token",))
    replacement_checks = {"app": app_changed}
    teardown_phase = 0

    def desired(self, address: str, spec: FolderSpec, environment: str = "") -> dict[str, Any]:
        document = {"name": spec.name, "customAttributes": owner_attributes(spec, address, environment)}
        if spec.token is not None:
            document["token"] = spec.token
        return document

    def project_live(self, live, desired):
        attributes = live.get("customAttributes") or {}
        return {"name": live.get("name"), "customAttributes": {k: attributes.get(k) for k in desired["customAttributes"]}}


FOLDER = FolderKind()


@pytest.fixture
def folder_kind():
    KINDS.register(FOLDER)
    yield FOLDER
    KINDS.unregister(FOLDER)


def folder(name="docs", display="Docs", token=None):
    return Resource(f"folder.{name}", "Folder", APP, "sales", FolderSpec(app="sales", name=display, token=token), ())


def recorded(resource, dataset_id="f1"):
    return ResourceState(kind=resource.kind, datasetId=dataset_id, appId=APP.app_id, userId=APP.user_id,
                         applied_hash=resource.definition.applied_hash(resource.desired))


def live(resource, dataset_id="f1", **changes):
    return {"datasetId": dataset_id, "appId": APP.app_id, "userId": APP.user_id, "name": resource.spec.name,
            "customAttributes": {OWNER_ATTRIBUTE: resource.address}, **changes}


@pytest.mark.parametrize("kind", list(KINDS), ids=lambda k: k.name)
def test_every_kind_keeps_the_rules(kind):
    assert KINDS.of_address(kind.address("x")) is kind
    assert set(kind.rules.forces_replacement) == set(kind.replacement_checks)
    assert set(kind.rules.managed) <= set(kind.rules.read_back) | set(kind.rules.write_only), \
        "a managed field the refresh drops could never show a change"
    assert not set(kind.rules.managed) & set(kind.rules.server_owned)


def test_server_owned_fields_never_enter_a_desired_document():
    from qrvey_iac.core.kinds.dataset import DatasetSpec
    from qrvey_iac.core.kinds.view import DatasetViewSpec

    dataset = Resource("dataset.orders", "Dataset", APP, "sales", DatasetSpec.model_validate({
        "app": "sales", "name": "Orders", "datasources": [
            {"name": "O", "connectionId": "c", "connectorType": "MYSQL_LIVE", "tableName": "o"}],
        "columns": [{"columnName": "Total", "columnType": "NUMBER"}]}), ())
    view = Resource("view.o", "DatasetView", APP, "sales",
                    DatasetViewSpec.model_validate({"app": "sales", "source": "dataset.orders", "name": "O"}), ())
    for resource in (dataset, view):
        owned = set(resource.definition.rules.server_owned)
        assert set(resource.desired) <= set(resource.definition.rules.managed)
        assert not owned & set(resource.desired)


def test_the_registry_refuses_what_it_does_not_know():
    with pytest.raises(ValueError, match="unknown kind 'Folder'"):
        KINDS.known("Folder")
    with pytest.raises(ValueError, match="unknown kind"):
        ResourceState(kind="Folder", datasetId="f1", appId="a", userId="u")
    assert KINDS.of_address("folder.docs") is None and KINDS.of_address("dataset") is None


def test_a_kind_whose_replacement_rules_disagree_is_refused():
    class Broken(FolderKind):
        name, prefix = "Broken", "broken"
        rules = FieldRules(managed=("name",), read_back=("name",), server_owned=(), forces_replacement=("app", "x"))

    with pytest.raises(ValueError, match=r"differ on \['x'\]"):
        Registry().register(Broken())


def test_a_registered_kind_is_planned_created_and_then_up_to_date(folder_kind):
    docs = folder()
    plan = build_plan(Manifest(resources={docs.address: docs}), State(), Live())
    [create] = plan.changes
    assert (create.op, create.kind, create.desired["name"]) == ("create", "Folder", "Docs")
    assert "+ folder.docs" in render_text(plan)
    assert [[s.key for s in level] for level in execution_levels(plan)] == [["create:folder.docs"]]

    state = State(resources={docs.address: recorded(docs)})
    again = build_plan(Manifest(resources={docs.address: docs}), state, Live(objects={docs.address: live(docs)}))
    assert not again.has_changes


def test_a_hand_edit_of_a_new_kind_is_drift_and_its_removal_a_delete(folder_kind):
    docs = folder()
    state = State(resources={docs.address: recorded(docs)})
    plan = build_plan(Manifest(resources={docs.address: docs}), state,
                      Live(objects={docs.address: live(docs, name="Renamed by hand")}))
    [update] = plan.changes
    assert update.drift and [(c.path, c.before, c.after) for c in update.changes] == [("name", "Renamed by hand", "Docs")]
    gone = build_plan(Manifest(), state, Live(objects={docs.address: live(docs)}))
    assert [(a.op, a.address) for a in gone.changes] == [("delete", "folder.docs")]


def test_a_write_only_field_is_never_compared_with_qrvey_but_a_manifest_change_is_sent(folder_kind):
    docs = folder(token="s3cret")
    state = State(resources={docs.address: recorded(docs)})
    # Qrvey never returns the token: that is no change
    same = build_plan(Manifest(resources={docs.address: docs}), state, Live(objects={docs.address: live(docs)}))
    assert not same.has_changes
    # a new token in the manifests shows through the applied hash
    rotated = folder(token="n3w-secret")
    plan = build_plan(Manifest(resources={rotated.address: rotated}), state,
                      Live(objects={rotated.address: live(rotated)}))
    [update] = plan.changes
    assert (update.op, update.drift, update.reason) == ("update", False, "changed in the manifests")
    assert [(c.path, c.before, c.after) for c in update.changes] == [("token", WRITE_ONLY, "n3w-secret")]
    assert "n3w-secret" not in render_text(plan, frozenset({"n3w-secret"}))


def test_the_applied_hash_ignores_removal_marks_for_every_kind():
    from qrvey_iac.core.kinds.dataset import DATASET
    from qrvey_iac.core.kinds.view import VIEW

    document = {"name": "N", "customAttributes": {OWNER_ATTRIBUTE: "x", "gone": None}, "columns": {"A": None}}
    assert VIEW.applied_hash(document) == canonical_hash({"name": "N", "customAttributes": {OWNER_ATTRIBUTE: "x"},
                                                          "columns": {}})
    with_sync = {"name": "N", "dataSync": None, "customAttributes": {"gone": None}}
    assert DATASET.applied_hash(with_sync) == canonical_hash({"name": "N", "customAttributes": {}})


def test_claimed_twice_names_marked_objects_the_state_does_not_record():
    from qrvey_iac.core.kinds.base import OWNER_ATTRIBUTE, claimed_twice
    from qrvey_iac.core.state import JournalEntry, ResourceState, State

    def view(dataset_id: str, address: str | None) -> dict:
        return {"datasetId": dataset_id, "appId": "a1", "customAttributes": {OWNER_ATTRIBUTE: address} if address else {}}

    state = State(resources={
        "view.a": ResourceState(kind="DatasetView", datasetId="v1", appId="a1", userId="u1"),
        "view.b": ResourceState(kind="DatasetView", datasetId="v2", appId="a1", userId="u1"),
    }, journal=(JournalEntry(id="j", op="create", address="view.b", appId="a1", userId="u1",
                             detail={"kind": "DatasetView"}),))
    items = [view("v1", "view.a"), view("v9", "view.a"), view("v8", "view.b"), view("v7", "view.gone"),
             view("v6", None), view("v2", "view.a")]
    assert claimed_twice(items, state) == [
        f"view.a: v9 in app a1 carries its marker {OWNER_ATTRIBUTE} but the state records v1"]
