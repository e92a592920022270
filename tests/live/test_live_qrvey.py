"""Opt-in checks against a real Qrvey instance: `python3 -m pytest -m live tests/live -s`.

Needs QRVEY_URL, QRVEY_API_KEY, QRVEY_SOURCE_APP and QRVEY_TARGET_APP ("userId:appId" of two
apps), QRVEY_CONNECTION_ID and QRVEY_CONNECTOR_TYPE (an existing database connection). It
creates one dataset and one view, prints what the instance answers to the questions that
qrvey-api.md §6 leaves open, and deletes both. Never part of the default run.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest

from qrvey_iac.adapters.qrvey.client import QrveyClient
from qrvey_iac.core.keys import AppRef

pytestmark = [pytest.mark.live, pytest.mark.anyio]
NEEDED = ("QRVEY_URL", "QRVEY_API_KEY", "QRVEY_SOURCE_APP", "QRVEY_TARGET_APP",
          "QRVEY_CONNECTION_ID", "QRVEY_CONNECTOR_TYPE")


def app_from(variable: str) -> AppRef:
    user_id, _, app_id = os.environ[variable].partition(":")
    return AppRef(user_id, app_id)


@pytest.fixture
def live():
    missing = [name for name in NEEDED if not os.environ.get(name)]
    if missing:
        pytest.skip(f"live Qrvey checks need {', '.join(missing)}")
    return os.environ


def observe(what: str, value) -> None:
    print(f"\n[live] {what}: {json.dumps(value, default=str)[:400]}")


async def test_seed_flows_on_a_real_instance(live):
    source, target = app_from("QRVEY_SOURCE_APP"), app_from("QRVEY_TARGET_APP")
    dataset_id = str(uuid.uuid4())
    body = {
        "datasetId": dataset_id, "name": f"qrvey-iac live check {dataset_id[:8]}",
        "datasources": [{"name": "live check", "connectionId": live["QRVEY_CONNECTION_ID"],
                         "connectorType": live["QRVEY_CONNECTOR_TYPE"], "query": "select 1 as one"}],
        "columns": [{"columnName": "one", "columnType": "NUMBER", "origColumnType": "NUMBER",
                     "appId": source.app_id, "userId": source.user_id,
                     "connectionId": live["QRVEY_CONNECTION_ID"]}],
        "customAttributes": {"qrveyIacAddress": "dataset.live-check"},
    }
    async with QrveyClient(live["QRVEY_URL"], live["QRVEY_API_KEY"], parallelism=2) as client:
        created = await client.create_dataset(source, body)
        view = None
        try:
            observe("create keeps the client datasetId", created.get("datasetId") == dataset_id)
            fetched = await client.get_dataset(source, created["datasetId"])
            assert fetched["connectionId"], "Get Dataset has a top-level connectionId (qrvey-api.md D2)"
            observe("status after create", fetched.get("status"))
            observe("isPublic echoed by Get Dataset", "isPublic" in fetched)
            observe("customAttributes kept", fetched.get("customAttributes"))
            await client.set_shared(source, created["datasetId"], True)
            view = await client.create_view(target, source, fetched["connectionId"])
            observe("clone response keys", sorted(view))
            fetched_view = await client.get_dataset(target, view["datasetId"])
            observe("view type/source fields", {k: v for k, v in fetched_view.items()
                                                if k not in ("columns", "datasources")})
            await client.set_shared(source, created["datasetId"], False)
            observe("view after unshare", await client.get_dataset(target, view["datasetId"]))
        finally:
            if view is not None:
                await client.delete_dataset(target, view["datasetId"])
            await client.delete_dataset(source, created["datasetId"])
