"""Shapes of new stored objects."""

from __future__ import annotations

from qrvey_iac.emulator.context import Call, utc_now

MANAGED = "MANAGED"
VIEW = "VIEW"


def new_dataset(call: Call, dataset_id: str, name: str, dataset_type: str) -> dict:
    """The server-owned shell every dataset starts from, owned by the path's user and app."""
    now = utc_now()
    return {
        "datasetId": dataset_id,
        "name": name,
        "appId": call.app_id,
        "userId": call.user_id,
        "status": "DRAFT",
        "datasetType": dataset_type,
        "connectionId": call.mint_short_id(),
        "isPublic": False,
        "pendingChanges": False,
        "datasources": [],
        "columns": [],
        "customAttributes": {},
        "createDate": now,
        "updateDate": now,
    }
