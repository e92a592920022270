"""DatasetView.missing_source_columns: the overrides a source's current columns no longer have."""

from __future__ import annotations

from qrvey_iac.core.kinds.view import VIEW, DatasetViewSpec


def spec(*columns: str) -> DatasetViewSpec:
    return DatasetViewSpec(app="emea", source="dataset.orders", name="V",
                           columns=tuple({"column": c, "visible": False} for c in columns))


def test_overrides_missing_from_the_source_are_named_in_manifest_order():
    live = {"columns": [{"columnName": "Shown", "origColumnSourceName": "Total"}, {"columnName": "Region"}]}
    assert VIEW.missing_source_columns(spec("Zeta", "Total", "Region", "Alpha"), live) == ("Zeta", "Alpha")


def test_nothing_is_judged_without_overrides_or_without_the_sources_columns():
    assert VIEW.missing_source_columns(spec(), {"columns": []}) == ()
    assert VIEW.missing_source_columns(spec("Total"), None) == ()
    assert VIEW.missing_source_columns(spec("Total"), {"name": "no columns in this answer"}) == ()
