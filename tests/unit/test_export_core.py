"""core/export.py and the export use case, without HTTP: names, sources, variables, records,
and what an unusable listing does."""

from __future__ import annotations

import asyncio
import random

import pytest

from qrvey_iac.core.errors import QrveyIacError, ServerError
from qrvey_iac.core.export import AppObjects, ExportedObject, ExportError, build_export, slug
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.kinds import KINDS
from qrvey_iac.core.state import State
from qrvey_iac.exporting import _mark, read_apps

SALES, EMEA = AppRef("u-sales", "a-sales"), AppRef("u-emea", "a-emea")


def dataset(dataset_id: str, name: str, app: AppRef = SALES, shared: bool = False, connection: str = "c-1",
            **extra) -> dict:
    return {"datasetId": dataset_id, "name": name, "appId": app.app_id, "userId": app.user_id,
            "datasetType": "MANAGED", "connectionId": f"top-{dataset_id}", "isPublic": shared,
            "datasources": [{"name": name, "datasourceId": "ds-x", "connectionId": connection,
                             "connectorType": "MSSQL_LIVE", "database": "shop", "tableName": "t"}],
            "columns": [{"columnName": "Total", "columnType": "NUMBER", "origColumnSourceName": "Total",
                         "columnId": "k1"}],
            "customAttributes": {}, **extra}


def view(dataset_id: str, name: str, source: dict, app: AppRef = EMEA) -> dict:
    return {"datasetId": dataset_id, "name": name, "appId": app.app_id, "userId": app.user_id,
            "datasetType": "VIEW", "connectionId": f"top-{dataset_id}",
            "sourceDataset": {k: source[k] for k in ("datasetId", "appId", "userId", "connectionId")},
            "columns": [dict(c) for c in source["columns"]], "customAttributes": {}}


def exported(objects_by_app: dict[str, tuple[AppRef, list[dict]]], state: State | None = None, variables=None):
    apps = [AppObjects(alias, app, tuple(objects)) for alias, (app, objects) in objects_by_app.items()]
    return build_export(apps, state or State(), variables or {})


@pytest.mark.parametrize("name, expected", [
    ("Orders (EMEA)", "orders-emea"), ("  Ventes été 2024 ", "ventes-ete-2024"), ("!!!", "dataset"),
    ("a" * 80, "a" * 56), ("Sales_Q1", "sales-q1"),
])
def test_slug_makes_a_valid_logical_name(name, expected):
    assert slug(name, "dataset") == expected


def test_duplicate_names_are_numbered_by_dataset_id_whatever_the_listing_order():
    objects = [dataset("id-3", "Orders"), dataset("id-1", "Orders"), dataset("id-2", "orders!")]
    first = exported({"sales": (SALES, objects)})
    names = {o.dataset_id: o.address for o in first.objects}
    assert names == {"id-1": "dataset.orders", "id-2": "dataset.orders_2", "id-3": "dataset.orders_3"}
    for seed in range(5):
        shuffled = list(objects)
        random.Random(seed).shuffle(shuffled)
        assert exported({"sales": (SALES, shuffled)}).documents == first.documents


def test_a_tracked_address_keeps_its_name_and_new_ones_avoid_it():
    state = exported({"sales": (SALES, [dataset("id-9", "Orders")])}).state
    again = exported({"sales": (SALES, [dataset("id-1", "Orders"), dataset("id-9", "Orders")])}, state)
    assert {o.dataset_id: (o.address, o.tracked) for o in again.objects} == {
        "id-9": ("dataset.orders", True), "id-1": ("dataset.orders_2", False)}


def test_a_view_names_a_shared_exported_source_by_address_and_any_other_by_ids():
    shared, unshared = dataset("id-1", "Orders", shared=True), dataset("id-2", "Returns")
    elsewhere = dataset("id-3", "Benchmarks", app=AppRef("u-x", "a-x"), shared=True)
    result = exported({"sales": (SALES, [shared, unshared]),
                       "emea": (EMEA, [view("v-1", "Orders", shared), view("v-2", "Returns", unshared),
                                       view("v-3", "Benchmarks", elsewhere)])})
    specs = {o.dataset_id: o.spec for o in result.objects}
    assert specs["v-1"]["source"] == "dataset.orders"
    assert specs["v-2"]["source"] == {"appId": "a-sales", "userId": "u-sales", "datasetId": "id-2"}
    assert specs["v-3"]["source"] == {"appId": "a-x", "userId": "u-x", "datasetId": "id-3"}
    records = result.state.resources
    assert records["view.orders"].source == {"address": "dataset.orders", "datasetId": "id-1",
                                             "appId": "a-sales", "userId": "u-sales"}
    assert records["view.returns"].source == {"appId": "a-sales", "userId": "u-sales", "datasetId": "id-2"}
    assert records["dataset.orders"].shared and not records["dataset.returns"].shared


def test_the_record_is_what_apply_records_for_the_managed_document():
    result = exported({"sales": (SALES, [dataset("id-1", "Orders", dataSync={"cron": "0 3 * * *"},
                                                 customAttributes={"team": "revenue"})])})
    [obj] = result.objects
    record = result.state.resources["dataset.orders"]
    kind = KINDS["Dataset"]
    assert obj.desired["customAttributes"] == {"team": "revenue", "qrveyIacAddress": "dataset.orders"}
    assert record.applied_hash == kind.applied_hash(obj.desired)
    assert record.applied_fields == kind.applied_fields(obj.desired)
    assert record.managed == {"customAttributes": ["qrveyIacAddress", "team"], "dataSync": ["*"]}
    assert (record.datasetId, record.appId, record.userId, record.connectionId) == (
        "id-1", "a-sales", "u-sales", "top-id-1")
    assert obj.needs_marking
    assert "qrveyIacAddress" not in obj.spec.get("customAttributes", {})


def test_an_object_with_its_marker_needs_no_marking():
    marked = dataset("id-1", "Orders", customAttributes={"qrveyIacAddress": "dataset.orders"})
    [obj] = exported({"sales": (SALES, [marked])}).objects
    assert not obj.needs_marking and obj.address == "dataset.orders"


def test_connection_ids_become_variables_reusing_the_environments():
    objects = [dataset("id-1", "Orders", connection="c-known"), dataset("id-2", "Leads", connection="c-new"),
               dataset("id-3", "Other", connection="c-new2")]
    result = exported({"sales": (SALES, objects)}, variables={"warehouse": "c-known", "shop_connection": "x"})
    assert result.reused == {"warehouse": "c-known"}
    assert result.variables == {"shop_connection_2": "c-new", "shop_connection_3": "c-new2"}
    sources = [d["spec"]["datasources"][0]["connectionId"] for d in result.documents["sales"]]
    assert sources == ["${var.shop_connection_2}", "${var.warehouse}", "${var.shop_connection_3}"]   # leads, orders, other
    assert result.objects[0].spec["datasources"][0]["connectionId"] in {"c-new", "c-known", "c-new2"}


def test_what_no_manifest_can_hold_is_reported_all_at_once():
    broken = dataset("id-1", "Orders")
    broken["datasources"][0]["query"] = "select 1"          # a table and a query
    nameless = dataset("id-2", "Leads")
    nameless["columns"][0]["columnType"] = None
    with pytest.raises(ExportError) as raised:
        exported({"sales": (SALES, [broken, nameless, {"name": "no id"}])})
    text = str(raised.value)
    assert "cannot export: 3 problems; nothing was written or changed" in text
    assert "app sales: an object names no datasetId" in text
    assert ("Dataset id-1 ('Orders') in app sales cannot be written as a manifest: spec.datasources[0]: "
            "Value error, give exactly one of tableName or query") in text
    assert "Dataset id-2 ('Leads') in app sales cannot be written as a manifest: spec.columns[0].columnType" in text


class Listing:
    """A Qrvey port that lists what it is given and reads what it holds."""

    def __init__(self, items: list[dict], held: dict[str, dict]) -> None:
        self.items, self.held = items, held
        self.updated: list[str] = []

    async def list_app(self, app):
        return self.items

    async def read(self, app, dataset_id):
        return self.held.get(dataset_id)


def test_a_listing_naming_an_id_twice_cannot_be_told_complete():
    port = Listing([{"datasetId": "id-1"}, {"datasetId": "id-1"}, {"name": "x"}], {"id-1": dataset("id-1", "A")})
    with pytest.raises(ExportError) as raised:
        asyncio.run(read_apps(port, {"sales": SALES}, 4, lambda _: None, []))
    assert "app sales: the listing names id-1 twice: it cannot be told complete" in str(raised.value)
    assert "app sales: item 2 of the listing names no datasetId" in str(raised.value)


def test_an_object_listed_then_gone_stops_the_export():
    port = Listing([{"datasetId": "id-1"}, {"datasetId": "id-2"}], {"id-1": dataset("id-1", "A")})
    with pytest.raises(ExportError) as raised:
        asyncio.run(read_apps(port, {"sales": SALES}, 4, lambda _: None, []))
    assert "app sales: id-2 was listed but is not found (deleted meanwhile?)" in str(raised.value)
    assert "run export again" in str(raised.value)


def test_a_listed_object_of_another_app_is_left_out_and_said():
    port = Listing([{"datasetId": "id-1", "appId": "a-sales"}, {"datasetId": "id-2", "appId": "a-hq"}],
                   {"id-1": dataset("id-1", "A")})
    skipped: list[str] = []
    [app] = asyncio.run(read_apps(port, {"sales": SALES}, 4, lambda _: None, skipped))
    assert [o["datasetId"] for o in app.objects] == ["id-1"]
    assert skipped == ["id-2 (listed in app sales, of app a-hq)"]


def test_a_marking_that_fails_says_what_the_next_plan_and_apply_do():
    class Failing:
        async def read(self, app, dataset_id):
            raise ServerError(503, "unavailable", "GET", f"dataset/{dataset_id}")

    obj = ExportedObject("dataset.orders", "Dataset", "sales", SALES, "id-1", "Orders", {}, {}, False, True)
    with pytest.raises(QrveyIacError) as raised:
        asyncio.run(_mark(Failing(), [obj], 2, lambda _: None, "local"))
    text = str(raised.value)
    assert "exported and recorded in the state, but 1 of 1 objects could not be marked as managed" in text
    assert "- dataset.orders (id-1):" in text
    assert "The next plan shows their marker as an update; `qrvey-iac apply` adds it." in text


def test_a_view_overrides_only_what_it_shows_otherwise_than_its_source():
    source = dataset("id-1", "Orders", shared=True)
    source["columns"] = [{"columnName": "Order total", "origColumnSourceName": "Total", "columnType": "NUMBER"},
                         {"columnName": "Email", "columnType": "STRING", "visible": False}]
    elsewhere = {**source, "datasetId": "id-x", "appId": "a-x", "userId": "u-x"}
    inherits = view("v-1", "Orders", source)
    hides = view("v-2", "Orders", source)
    hides["columns"][0] = {**hides["columns"][0], "visible": False}
    unexported = view("v-3", "Orders", elsewhere)
    result = exported({"sales": (SALES, [source]), "emea": (EMEA, [inherits, hides, unexported])})
    specs = {o.dataset_id: o.spec for o in result.objects}
    assert "columns" not in specs["v-1"]
    assert specs["v-2"]["columns"] == [{"column": "Total", "visible": False}]
    assert specs["v-3"]["columns"] == [{"column": "Total", "columnName": "Order total"},     # source not read:
                                       {"column": "Email", "visible": False}]               # against its names
    assert specs["id-1"]["columns"][0] == {"columnName": "Order total", "columnType": "NUMBER",
                                           "origColumnSourceName": "Total"}
