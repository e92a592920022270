"""core/diff.diff_documents: the no-change test and the per-field changes."""

from __future__ import annotations

from qrvey_iac.core.diff import diff_documents


def test_equal_documents_have_no_change_whatever_their_key_order_and_number_spelling():
    before = {"name": "Orders", "columns": {"Total": {"columnType": "NUMBER", "width": 10}}, "dataSync": None}
    after = {"dataSync": None, "columns": {"Total": {"width": 10.0, "columnType": "NUMBER"}}, "name": "Orders"}
    assert diff_documents(before, after) == ()          # 10 and 10.0 are one JSON number


def test_a_changed_field_deep_inside_is_one_change_named_by_its_path():
    before = {"name": "Orders", "columns": {"Total": {"columnType": "NUMBER"}, "Id": {"columnType": "STRING"}}}
    after = {"name": "Orders", "columns": {"Total": {"columnType": "STRING"}, "Id": {"columnType": "STRING"}}}
    [change] = diff_documents(before, after)
    assert (change.path, change.before, change.after) == ("columns.Total.columnType", "NUMBER", "STRING")
