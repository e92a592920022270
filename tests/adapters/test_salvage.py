"""validation.salvage: what is valid of a document that failed, and exactly which paths are not."""

from __future__ import annotations

from qrvey_iac.adapters.validation import fields_at, salvage
from qrvey_iac.core.kinds.dataset import DatasetDocument, DatasetSpec
from qrvey_iac.core.kinds.view import DatasetViewDocument, DatasetViewSpec

SPEC = {
    "app": "sales", "name": "Orders", "shared": True,
    "datasources": [{"name": "Main", "connectionId": "c1", "connectorType": "MSSQL_LIVE", "tableName": "t"}],
    "columns": [{"columnName": "Id", "columnType": "NUMBER"}, {"columnName": "Total", "columnType": "NUMBER"}],
}


def test_a_valid_spec_has_nothing_broken():
    spec, broken = salvage(DatasetSpec, SPEC)
    assert broken == frozenset()
    assert spec == DatasetSpec.model_validate(SPEC)


def test_a_bad_scalar_is_left_out_and_named():
    spec, broken = salvage(DatasetSpec, {**SPEC, "shared": ["yes"]})
    assert broken == {("shared",)}
    assert spec.app == "sales" and [c.columnName for c in spec.columns] == ["Id", "Total"]


def test_a_bad_list_item_keeps_its_valid_fields_and_the_other_items():
    columns = [{"columnName": "Id", "columnType": "NUMBER"}, {"columnName": "Total", "columnTyp": "NUMBER"}]
    spec, broken = salvage(DatasetSpec, {**SPEC, "columns": columns})
    assert broken == {("columns", 1, "columnType"), ("columns", 1, "columnTyp")}
    assert [c.columnName for c in spec.columns] == ["Id", "Total"]


def test_an_item_that_fails_as_a_whole_is_named_as_a_whole():
    datasources = [{**SPEC["datasources"][0], "query": "select 1"}]      # tableName and query both
    _, broken = salvage(DatasetSpec, {**SPEC, "datasources": datasources})
    assert broken == {("datasources", 0)}


def test_missing_required_unknown_and_unusable_fields_are_broken():
    spec, broken = salvage(DatasetViewSpec, {"app": "emea", "source": "dataset.orders", "colour": "red",
                                             "columns": [{"column": "${var.x}"}, 5]},
                           unusable={("columns", 0, "column")})
    assert broken == {("name",), ("colour",), ("columns", 0, "column"), ("columns", 1)}
    assert spec.source == "dataset.orders"


def test_a_spec_that_is_not_a_mapping_has_every_field_broken():
    _, broken = salvage(DatasetSpec, "x")
    assert broken == {(name,) for name in DatasetSpec.model_fields}


def test_the_fields_a_mapping_may_hold_are_found_through_lists_and_unions():
    assert "columnType" in fields_at(DatasetDocument, ("spec", "columns", 1))
    assert "dependsOn" in fields_at(DatasetDocument, ("metadata",))
    assert "datasetId" in fields_at(DatasetViewDocument, ("spec", "source"))
