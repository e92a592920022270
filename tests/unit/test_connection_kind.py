"""kind: Connection over in-memory ports (issue 16 point 1): created before the datasets that
name it, its id resolved into theirs, its password write-only, a late landing found by its
marker, its delete refused while datasets use it.

A wrong program would send a dataset's ``connectionId`` as the placeholder, plan a change
forever because Qrvey does not return the password, store the password, duplicate a connection
whose create answer was lost, or delete a connection its datasets still need.
"""

from __future__ import annotations

import json

import pytest
from fakes.qrvey import FakeQrvey
from fakes.state import MemoryStateStore

from qrvey_iac.core.errors import PlanError
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.kinds import KINDS
from qrvey_iac.core.kinds.base import OWNER_ATTRIBUTE, reference
from qrvey_iac.core.kinds.connection import ConnectionSpec
from qrvey_iac.core.kinds.dataset import DatasetSpec
from qrvey_iac.core.manifest import Manifest, Resource
from qrvey_iac.core.planner import refuse_blocked
from qrvey_iac.core.sealing import derive_key
from qrvey_iac.engine import Engine

pytestmark = pytest.mark.anyio
SALES = AppRef("u1", "a-sales")
PASSWORD = "pw-Zq8-UNIQUE-771"


def connection(password=PASSWORD, app=SALES, host="db.internal"):
    spec = ConnectionSpec.model_validate({"app": "sales", "name": "Warehouse", "connectorType": "MSSQL_LIVE",
                                          "host": host, "port": 1433, "user": "reader", "password": password})
    return Resource("connection.warehouse", "Connection", app, "sales", spec, ())


def dataset(name="orders", source=None):
    source = source or {"connection": "connection.warehouse"}
    spec = DatasetSpec.model_validate({
        "app": "sales", "name": name.title(),
        "datasources": [{"name": "Orders", **source, "connectorType": "MSSQL_LIVE", "tableName": name}],
        "columns": [{"columnName": "Total", "columnType": "NUMBER"}],
    })
    depends = (source["connection"],) if "connection" in source else ()
    return Resource(f"dataset.{name}", "Dataset", SALES, "sales", spec, depends)


def manifest(*resources, password=PASSWORD) -> Manifest:
    return Manifest(resources={r.address: r for r in resources}, digest="d",
                    secrets=frozenset({password}), seal_key=derive_key("the-api-key"))


async def converge(engine: Engine, store: MemoryStateStore, wanted: Manifest):
    plan, _ = await engine.plan(wanted, store.read(), "test")
    refuse_blocked(plan, "apply")
    await engine.apply(plan, store.read(), wanted.sealer)
    return plan


def connection_of(qrvey: FakeQrvey, dataset_id: str) -> str:
    return qrvey.objects[dataset_id]["datasources"][0]["connectionId"]


async def test_the_connection_is_created_first_and_its_id_sent_as_the_datasets_connection_id():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    engine = Engine(qrvey, store)
    wanted = manifest(connection(), dataset("orders"), dataset("products"))
    plan = await converge(engine, store, wanted)
    create = next(a for a in plan.actions if a.address == "dataset.orders")
    assert create.desired["datasources"]["Orders"]["connectionId"] == reference("connection.warehouse")
    assert [op for op, _ in qrvey.writes()][0] == "create_connection"
    state = store.read()
    connection_id = state.resources["connection.warehouse"].datasetId
    assert connection_id in qrvey.connections
    assert qrvey.connections[connection_id]["password"] == PASSWORD          # Qrvey got it
    assert qrvey.connections[connection_id]["customAttributes"] == {OWNER_ATTRIBUTE: "connection.warehouse"}
    for address in ("dataset.orders", "dataset.products"):
        assert connection_of(qrvey, state.resources[address].datasetId) == connection_id
    assert PASSWORD not in json.dumps(state.model_dump(mode="json"))
    again, _ = await engine.plan(wanted, state, "test")
    assert not again.has_changes, [(a.address, a.changes) for a in again.changes]


async def test_a_literal_connection_id_still_works_beside_a_reference():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    engine = Engine(qrvey, store)
    wanted = manifest(connection(), dataset("orders"), dataset("legacy", {"connectionId": "conn-legacy"}))
    await converge(engine, store, wanted)
    state = store.read()
    assert connection_of(qrvey, state.resources["dataset.legacy"].datasetId) == "conn-legacy"
    assert not (await engine.plan(wanted, state, "test"))[0].has_changes


async def test_a_new_password_plans_an_update_that_sends_it_and_shows_no_value():
    """Rotation by keyed digest: the state's applied hash covers the password (HMAC with the
    seal key), so a new value in the environment variable is one update; the old and new
    values are in no plan or state."""
    qrvey, store = FakeQrvey(), MemoryStateStore()
    engine = Engine(qrvey, store)
    await converge(engine, store, manifest(connection(), dataset()))
    rotated = manifest(connection(password="pw-rotated-992"), dataset(), password="pw-rotated-992")
    plan, _ = await engine.plan(rotated, store.read(), "test")
    [update] = plan.changes
    assert (update.op, update.address) == ("update", "connection.warehouse")
    assert [(c.path, c.before) for c in update.changes] == [("password", "(write-only: not returned by Qrvey)")]
    await engine.apply(plan, store.read(), rotated.sealer)
    connection_id = store.read().resources["connection.warehouse"].datasetId
    assert qrvey.connections[connection_id]["password"] == "pw-rotated-992"
    assert qrvey.connections[connection_id]["host"] == "db.internal"             # the rest kept
    assert not (await engine.plan(rotated, store.read(), "test"))[0].has_changes
    stored = json.dumps(store.read().model_dump(mode="json"))
    assert PASSWORD not in stored and "pw-rotated-992" not in stored


async def test_the_same_password_plans_nothing_though_qrvey_never_returns_it():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    engine = Engine(qrvey, store)
    await converge(engine, store, manifest(connection(), dataset()))
    live = await KINDS["Connection"].read(qrvey, SALES, store.read().resources["connection.warehouse"].datasetId)
    assert "password" not in live
    assert not (await engine.plan(manifest(connection(), dataset()), store.read(), "test"))[0].has_changes


async def test_a_host_changed_in_qrvey_is_drift_and_put_back():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    engine = Engine(qrvey, store)
    wanted = manifest(connection(), dataset())
    await converge(engine, store, wanted)
    connection_id = store.read().resources["connection.warehouse"].datasetId
    qrvey.connections[connection_id]["host"] = "elsewhere"
    plan, _ = await engine.plan(wanted, store.read(), "test")
    [update] = plan.changes
    assert update.drift and [(c.path, c.before, c.after) for c in update.changes] == [
        ("host", "elsewhere", "db.internal")]
    await engine.apply(plan, store.read(), wanted.sealer)
    assert qrvey.connections[connection_id]["host"] == "db.internal"
    assert qrvey.connections[connection_id]["password"] == PASSWORD     # the PUT sent it again


async def test_a_lost_create_answer_is_found_by_its_marker_not_duplicated():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    qrvey.lose_answer("create_connection")
    engine = Engine(qrvey, store, request_timeout=0.01)
    await converge(engine, store, manifest(connection(), dataset()))
    assert len(qrvey.connections) == 1
    [connection_id] = qrvey.connections
    assert store.read().resources["connection.warehouse"].datasetId == connection_id
    assert connection_of(qrvey, store.read().resources["dataset.orders"].datasetId) == connection_id


async def test_a_replaced_connection_gives_its_datasets_the_new_id():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    engine = Engine(qrvey, store)
    await converge(engine, store, manifest(connection(), dataset()))
    old = store.read().resources["connection.warehouse"].datasetId
    moved = AppRef("u1", "a-sales-2")
    wanted = manifest(connection(app=moved), dataset())
    plan, _ = await engine.plan(wanted, store.read(), "test")
    assert [(a.op, a.address) for a in plan.changes] == [
        ("replace", "connection.warehouse"), ("update", "dataset.orders")]
    [change] = next(a for a in plan.changes if a.address == "dataset.orders").changes
    assert (change.path, change.before, change.after) == (
        "datasources.Orders.connectionId", old, reference("connection.warehouse"))
    await engine.apply(plan, store.read(), wanted.sealer)
    new = store.read().resources["connection.warehouse"].datasetId
    assert new != old and connection_of(qrvey, store.read().resources["dataset.orders"].datasetId) == new


async def test_deleting_a_connection_its_managed_datasets_still_use_is_refused_naming_them():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    engine = Engine(qrvey, store)
    await converge(engine, store, manifest(connection(), dataset("orders"), dataset("products")))
    connection_id = store.read().resources["connection.warehouse"].datasetId
    literal = {"connectionId": connection_id}
    wanted = manifest(dataset("orders", literal), dataset("products", literal))     # the connection removed
    plan, _ = await engine.plan(wanted, store.read(), "test")
    [blocked] = plan.refused
    assert blocked.address == "connection.warehouse"
    assert "dataset.orders, dataset.products" in blocked.reason
    assert "--exclude connection.warehouse" in blocked.reason
    with pytest.raises(PlanError, match="connection.warehouse"):
        refuse_blocked(plan, "apply")
    assert connection_id in qrvey.connections


async def test_deleting_a_connection_an_unmanaged_dataset_uses_is_refused_naming_it():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    engine = Engine(qrvey, store)
    await converge(engine, store, manifest(connection(), dataset("orders")))
    connection_id = store.read().resources["connection.warehouse"].datasetId
    await qrvey.create_dataset(SALES, {                    # made in Qrvey's UI, not by qrvey-iac
        "datasetId": "hand-made", "name": "Hand made", "columns": [],
        "datasources": [{"name": "x", "connectionId": connection_id, "connectorType": "MSSQL_LIVE"}]})
    plan, _ = await engine.plan(manifest(), store.read(), "test")     # everything removed
    [blocked] = plan.refused
    assert "'Hand made' (id hand-made, not managed by qrvey-iac)" in blocked.reason
    assert "dataset.orders" not in blocked.reason          # deleted by the same plan, before it


async def test_a_connection_deleted_with_its_datasets_goes_after_them():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    engine = Engine(qrvey, store)
    await converge(engine, store, manifest(connection(), dataset("orders")))
    plan = await converge(engine, store, manifest())
    assert [(a.op, a.address) for a in plan.changes] == [
        ("delete", "dataset.orders"), ("delete", "connection.warehouse")]
    deletes = [op for op, _ in qrvey.writes() if op.startswith("delete")]
    assert deletes == ["delete", "delete_connection"]
    assert qrvey.connections == {} and store.read().resources == {}


async def test_a_dataset_moved_off_the_connection_lets_it_go_on_the_next_plan():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    engine = Engine(qrvey, store)
    await converge(engine, store, manifest(connection(), dataset("orders")))
    wanted = manifest(dataset("orders", {"connectionId": "conn-new"}))
    plan, _ = await engine.plan(wanted, store.read(), "test")
    assert [a.address for a in plan.refused] == ["connection.warehouse"]   # the update runs after deletes
    rest = plan.model_copy(update={"actions": tuple(a for a in plan.actions if a.op != "blocked")})
    await engine.apply(rest, store.read(), wanted.sealer)
    plan = await converge(engine, store, wanted)
    assert [(a.op, a.address) for a in plan.changes] == [("delete", "connection.warehouse")]
