"""The two seed documents, walked end to end through the client.

Seed 000 (Create a Dataset via API): a full definition with datasources and
columns. Seed 001 (Create a Dataset View): share the dataset (publishVersion
with isPublic), read its connectionId with Get Dataset, then clone it into
another app, the target app in the path and the source app and owner in the
body. Unsharing afterwards must flag the view, not delete it.
"""

from __future__ import annotations

import uuid

import pytest
from emulator_backends import EMEA, SALES, connection_body, seed_dataset_body

from qrvey_iac.core.errors import BadRequestError

pytestmark = pytest.mark.anyio


async def test_seed_000_then_seed_001_end_to_end(backend):
    dataset_id = uuid.uuid4().hex[:12]  # the doc invites client-chosen UUIDs
    async with backend.client() as client:
        connection_id = (await client.create_connection(SALES, connection_body()))["connectorid"]

        # Seed 000: create from a full definition, then read it back.
        await client.create_dataset(SALES, seed_dataset_body(SALES, dataset_id, connection_id))
        source = await client.get_dataset(SALES, dataset_id)
        assert (source["datasetId"], source["appId"], source["userId"]) == (dataset_id, SALES.app_id, SALES.user_id)
        [datasource] = source["datasources"]
        assert datasource["datasourceId"] == "f54dd925-2599-432c-9567-403230bdafed"
        assert (datasource["connectionId"], datasource["connectorType"]) == (connection_id, "MSSQL_LIVE")
        [column] = source["columns"]
        assert (column["columnName"], column["columnType"], column["origColumnType"]) == (
            "TheNameofThecolumn", "NUMBER", "NUMBER")
        assert column["columnId"] and column["datasetId"] == dataset_id

        # Seed 001 step 1: a view of an unshared dataset is refused.
        with pytest.raises(BadRequestError, match="not shared"):
            await client.create_view(EMEA, SALES, source["connectionId"])

        # Seed 001 steps 1-3: share, read the connectionId, clone into the other app.
        await client.set_shared(SALES, dataset_id, True)
        shared = await client.get_dataset(SALES, dataset_id)
        assert shared["isPublic"] is True
        view = await client.create_view(EMEA, SALES, shared["connectionId"])

        fetched = await client.get_dataset(EMEA, view["datasetId"])
        assert fetched["datasetType"] == "VIEW"
        assert (fetched["appId"], fetched["userId"]) == (EMEA.app_id, EMEA.user_id)
        assert fetched["sourceDataset"] == {
            "datasetId": dataset_id, "appId": SALES.app_id, "userId": SALES.user_id,
            "connectionId": shared["connectionId"],
        }
        assert fetched["datasources"][0]["connectionId"] == shared["connectionId"]
        assert [(c["columnName"], c["columnType"]) for c in fetched["columns"]] == [("TheNameofThecolumn", "NUMBER")]
        assert fetched["sourceStatus"] == "AVAILABLE"

        # Unsharing the source flags the view and keeps it.
        await client.set_shared(SALES, dataset_id, False)
        flagged = await client.get_dataset(EMEA, view["datasetId"])
        assert flagged["sourceStatus"] == "UNSHARED"
        assert (await client.get_dataset(SALES, dataset_id))["isPublic"] is False

    assert set(backend.datasets) == {dataset_id, view["datasetId"]}


async def test_a_view_needs_the_true_source_owner(backend):
    async with backend.client() as client:
        await client.create_dataset(SALES, seed_dataset_body(SALES, "src", "conn"))
        shared = await client.set_shared(SALES, "src", True)
        with pytest.raises(BadRequestError, match="appId"):
            await client.create_view(EMEA, EMEA, shared["connectionId"])
    assert list(backend.datasets) == ["src"]
