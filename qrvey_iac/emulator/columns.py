"""Column bookkeeping: server fields, matching on update, synthetic and copied columns."""

from __future__ import annotations

import copy

from qrvey_iac.emulator.context import Call
from qrvey_iac.emulator.errors import invalid

# Columns a dataset made from an existing connection gets (the emulator cannot read a database).
SYNTHETIC_COLUMNS = (("id", "NUMBER"), ("name", "STRING"), ("created_at", "DATE"))


def match_columns(sent: list[dict], stored: list[dict]) -> list[dict | None]:
    """For each sent column, the stored column it updates, or None for a new one.

    A sent ``columnId`` must name a stored column; otherwise a column is matched by
    ``origColumnSourceName`` when sent, else by ``columnName``. Each stored column matches once.
    """
    unmatched = list(stored)
    matches: list[dict | None] = []
    for index, column in enumerate(sent):
        found = _find_match(column, unmatched, index)
        if found is not None:
            unmatched.remove(found)
        matches.append(found)
    return matches


def _find_match(column: dict, candidates: list[dict], index: int) -> dict | None:
    if "columnId" in column:
        for candidate in candidates:
            if candidate.get("columnId") == column["columnId"]:
                return candidate
        raise invalid(f"columns[{index}].columnId {column['columnId']} is not a column of this dataset")
    key = "origColumnSourceName" if "origColumnSourceName" in column else "columnName"
    for candidate in candidates:
        if candidate.get(key) == column[key]:
            return candidate
    return None


def build_columns(call: Call, dataset_id: str, sent: list[dict], stored: list[dict]) -> list[dict]:
    """Stored form of the sent columns: kept columns keep their columnId, new ones get one."""
    built = []
    for column, match in zip(sent, match_columns(sent, stored)):
        built.append(_with_server_fields(call, dataset_id, column, match))
    return built


def fresh_columns(call: Call, dataset_id: str, sent: list[dict]) -> list[dict]:
    """Columns of a new dataset: any client columnId is replaced by a minted one."""
    return [_with_server_fields(call, dataset_id, _without_id(column), None) for column in sent]


def synthetic_columns(call: Call, dataset_id: str) -> list[dict]:
    sent = [{"columnName": name, "columnType": kind} for name, kind in SYNTHETIC_COLUMNS]
    return fresh_columns(call, dataset_id, sent)


def copied_columns(call: Call, view_id: str, source_columns: list[dict]) -> list[dict]:
    """A view's columns: the source's, with new columnIds and the view's datasetId."""
    copies = []
    for column in source_columns:
        copied = copy.deepcopy(column)
        copied["columnId"] = call.mint_short_id()
        copied["datasetId"] = view_id
        copies.append(copied)
    return copies


def _with_server_fields(call: Call, dataset_id: str, column: dict, match: dict | None) -> dict:
    stored = {"columnId": match["columnId"] if match else call.mint_short_id(), "datasetId": dataset_id}
    stored.update({key: value for key, value in column.items() if key not in stored})
    previous = match or {}
    stored.setdefault("origColumnSourceName", previous.get("origColumnSourceName", column["columnName"]))
    stored.setdefault("origColumnType", previous.get("origColumnType", column["columnType"]))
    return stored


def _without_id(column: dict) -> dict:
    return {key: value for key, value in column.items() if key != "columnId"}
