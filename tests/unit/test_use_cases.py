"""The use cases (engine, journal, flows) over in-memory ports: no HTTP, no files.

A wrong engine would duplicate an object whose create answer was lost, skip the journal,
or plan changes right after an apply; each test below would catch one of those.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import pytest
from fakes.qrvey import FakeQrvey
from fakes.state import MemoryLocker, MemoryStateStore

from qrvey_iac.core.errors import ApplyError, StateConflictError, StoppedError, TransportError
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.kinds.base import OWNER_ATTRIBUTE
from qrvey_iac.core.kinds.dataset import DatasetSpec
from qrvey_iac.core.kinds.view import DatasetViewSpec
from qrvey_iac.core.manifest import Manifest, Resource
from qrvey_iac.engine import Engine, Stop
from qrvey_iac.flows import RunOptions, converge, make_plan

pytestmark = pytest.mark.anyio
SALES, EMEA = AppRef("u1", "a-sales"), AppRef("u2", "a-emea")


def dataset(name="orders", shared=True, display="Orders"):
    spec = DatasetSpec.model_validate({
        "app": "sales", "name": display, "shared": shared,
        "datasources": [{"name": "Orders", "connectionId": "c1", "connectorType": "MSSQL_LIVE", "tableName": "o"}],
        "columns": [{"columnName": "Total", "columnType": "NUMBER"}],
    })
    return Resource(f"dataset.{name}", "Dataset", SALES, "sales", spec, ())


def view(name="orders-emea", source="dataset.orders", columns=()):
    spec = DatasetViewSpec.model_validate({"app": "emea", "source": source, "name": "Orders (EMEA)",
                                           "columns": list(columns)})
    return Resource(f"view.{name}", "DatasetView", EMEA, "emea", spec, (source,))


def manifest(*resources) -> Manifest:
    return Manifest(resources={r.address: r for r in resources}, digest="d")


def marked(qrvey: FakeQrvey, address: str) -> list[str]:
    return sorted(o["datasetId"] for o in qrvey.objects.values()
                  if (o.get("customAttributes") or {}).get(OWNER_ATTRIBUTE) == address)


async def converge_once(engine: Engine, store: MemoryStateStore, wanted: Manifest):
    plan, _ = await engine.plan(wanted, store.read(), "test")
    await engine.apply(plan, store.read())
    return plan


async def test_apply_over_fakes_converges_and_records_every_id():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    engine = Engine(qrvey, store)
    wanted = manifest(dataset(), view(columns=[{"column": "Total", "columnName": "Amount"}]))
    plan = await converge_once(engine, store, wanted)
    assert [(a.op, a.address) for a in plan.changes] == [
        ("create", "dataset.orders"), ("share", "dataset.orders"), ("create", "view.orders-emea")]
    state = store.read()
    assert state.journal == ()
    assert {a: r.datasetId for a, r in state.resources.items()} == {
        "dataset.orders": marked(qrvey, "dataset.orders")[0], "view.orders-emea": marked(qrvey, "view.orders-emea")[0]}
    assert qrvey.objects[state.resources["view.orders-emea"].datasetId]["columns"][0]["columnName"] == "Amount"
    again, _ = await engine.plan(wanted, state, "test")
    assert not again.has_changes                      # the convergence law, on the fakes


async def test_a_lost_create_answer_is_found_again_not_duplicated():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    qrvey.lose_answer("create_dataset")               # the dataset lands; its answer does not
    qrvey.lose_answer("clone_view")                   # the view lands; its answer does not
    engine = Engine(qrvey, store)
    await converge_once(engine, store, manifest(dataset(), view()))
    assert len(marked(qrvey, "dataset.orders")) == 1 and len(marked(qrvey, "view.orders-emea")) == 1
    assert [op for op, _ in qrvey.writes()].count("create_dataset") == 1
    assert [op for op, _ in qrvey.writes()].count("clone_view") == 1
    assert set(store.read().resources) == {"dataset.orders", "view.orders-emea"}


async def test_a_create_that_did_not_land_is_sent_again_with_the_same_id():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    qrvey.fail("create_dataset")
    engine = Engine(qrvey, store)
    await converge_once(engine, store, manifest(dataset(shared=False)))
    sent = [what for op, what in qrvey.writes() if op == "create_dataset"]
    assert len(sent) == 2 and sent[0] == sent[1] == store.read().resources["dataset.orders"].datasetId


async def test_a_failed_view_create_keeps_its_journal_entry_when_the_outcome_stays_unknown():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    engine = Engine(qrvey, store, request_timeout=0.01)     # each unknown outcome is waited out: keep it short
    await converge_once(engine, store, manifest(dataset()))
    qrvey.fail("clone_view", times=10)
    with pytest.raises(ApplyError, match="outcome unknown"):
        await converge_once(engine, store, manifest(dataset(), view()))
    [entry] = store.read().journal
    assert (entry.op, entry.address, entry.detail.kind) == ("create", "view.orders-emea", "DatasetView")
    assert entry.detail.marker == {OWNER_ATTRIBUTE: "view.orders-emea"}


async def test_a_view_found_landed_after_the_last_attempt_still_gets_its_overrides():
    """Found by the look after the last attempt (each attempt's outcome unknown, the last one
    landed): the clone carries only its name, so the column overrides must still be set, or the
    state records as applied what the view does not have (the next plan shows it as drift)."""
    qrvey, store = FakeQrvey(), MemoryStateStore()
    engine = Engine(qrvey, store, request_timeout=0.01)
    await converge_once(engine, store, manifest(dataset()))
    qrvey.fail("clone_view", times=3)          # attempts 1 to 3: nothing lands
    qrvey.lose_answer("clone_view")            # attempt 4 (the last): it lands, its answer is lost
    wanted = manifest(dataset(), view(columns=[{"column": "Total", "columnName": "Amount"}]))
    await converge_once(engine, store, wanted)
    [view_id] = marked(qrvey, "view.orders-emea")
    assert [op for op, _ in qrvey.writes()].count("clone_view") == 4
    assert qrvey.objects[view_id]["columns"][0]["columnName"] == "Amount"
    again, _ = await engine.plan(wanted, store.read(), "test")
    assert not again.has_changes


class FakeWorkspace:
    """ports.Workspace over the fakes."""

    def __init__(self) -> None:
        self.environment_name = "test"
        self.request_timeout = 30.0
        self.config_file = "qrvey-iac.yaml"
        self.store, self.locker, self.qrvey_fake = MemoryStateStore(), MemoryLocker(), FakeQrvey()

    def parallelism(self, requested):
        return requested or 4

    @asynccontextmanager
    async def qrvey(self, parallelism, rate_limit=None):
        yield self.qrvey_fake


class QuietUI:
    def __init__(self) -> None:
        self.shown = []

    def progress(self, message):
        pass

    def started(self, total, what):
        pass

    def advanced(self, count=1):
        pass

    def finished(self):
        pass

    def learn_secrets(self, secrets):
        pass

    def show_plan(self, plan):
        self.shown.append(plan)

    def confirm(self, command):
        return True


async def test_the_command_flows_run_on_ports_alone():
    workspace, ui = FakeWorkspace(), QuietUI()
    wanted = manifest(dataset(), view())

    async def read_manifest():
        return wanted

    applied = await converge(workspace, read_manifest, ui, RunOptions(command="apply", auto_approve=True))
    assert applied is not None and len(applied.changes) == 3
    assert not workspace.locker.is_locked()           # released after the command
    plan = await make_plan(workspace, read_manifest, ui, RunOptions())
    assert not plan.has_changes and plan.environment == "test"


class TakenOver(MemoryStateStore):
    """A store another writer took over after ``allowed`` writes: every later write is refused."""

    def __init__(self, allowed: int) -> None:
        super().__init__()
        self.allowed = allowed

    def write(self, state, expected_serial):
        if self.allowed == 0:
            raise StateConflictError("state changed by another writer", expected_serial, expected_serial + 5)
        self.allowed -= 1
        super().write(state, expected_serial)


@pytest.mark.parametrize("allowed, reported", [(0, True), (1, False)])
async def test_a_refused_state_write_stops_apply_as_a_conflict(allowed, reported):
    """Refused at the first journal write, the step fails and apply's report comes first;
    refused when results are recorded, the conflict comes alone. Either way it stays a
    StateConflictError, for callers that tell another writer from a full disk."""
    qrvey, store = FakeQrvey(), TakenOver(allowed)
    engine = Engine(qrvey, store)
    plan, _ = await engine.plan(manifest(dataset(shared=False), dataset("other", shared=False)), store.read(), "t")
    with pytest.raises(StateConflictError, match="another writer") as caught:
        await engine.apply(plan, store.read())
    assert ("apply stopped" in str(caught.value)) is reported
    assert [op for op, _ in qrvey.writes()] == ([] if reported else ["create_dataset", "create_dataset"])


async def test_an_apply_that_stops_with_writes_pending_leaves_the_state_file_complete(tmp_path):
    """The local store appends an apply's writes to a sidecar while the journal is not empty;
    when apply stops with an outcome unknown, the file alone must still hold the pending
    entry (a CI job that commits only state/prod.json must not lose it)."""
    import shutil

    from qrvey_iac.adapters.state.local import LocalStateStore

    qrvey, store = FakeQrvey(), LocalStateStore(tmp_path / "state.json")
    engine = Engine(qrvey, store, request_timeout=0.01)     # each unknown outcome is waited out: keep it short
    qrvey.fail("clone_view", times=100)
    # the datasets' creates (first write: whole) and results (empty journal: whole), their
    # shares' entries (appended), results (whole), then the view's entry (appended) and it fails
    with pytest.raises(ApplyError, match="outcome unknown"):
        await converge_once(engine, store, manifest(dataset(), dataset("other"), view()))
    assert not store.wal_path.exists()
    alone = tmp_path / "copied" / "state.json"
    alone.parent.mkdir()
    shutil.copy(tmp_path / "state.json", alone)                 # the file without anything beside it
    assert [e.address for e in LocalStateStore(alone).read().journal] == ["view.orders-emea"]
    assert LocalStateStore(alone).read() == LocalStateStore(tmp_path / "state.json").read()


class HeldQrvey(FakeQrvey):
    """Dataset creates wait on ``release``; ``sent`` is set once one is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.sent, self.release = asyncio.Event(), asyncio.Event()

    async def create_dataset(self, app, body):
        self.sent.set()
        await self.release.wait()
        return await super().create_dataset(app, body)


async def test_a_stop_request_starts_no_new_step_and_lets_the_ones_in_flight_finish():
    qrvey, store, stop = HeldQrvey(), MemoryStateStore(), Stop()
    engine = Engine(qrvey, store, stop=stop)
    plan, _ = await engine.plan(manifest(dataset(), view()), store.read(), "t")
    applying = asyncio.ensure_future(engine.apply(plan, store.read()))
    await qrvey.sent.wait()
    assert stop.applying
    stop.request("SIGTERM", 143)
    qrvey.release.set()
    with pytest.raises(StoppedError) as stopped:
        await applying
    assert stopped.value.exit_code == 143 and not stop.applying
    report = str(stopped.value)
    assert report.startswith("apply stopped by SIGTERM: the calls in flight were let finish; no new call was started")
    assert "done and recorded in state: 1 (create:dataset.orders)" in report
    assert "not started: 2 (share:dataset.orders, create:view.orders-emea)" in report
    assert [op for op, _ in qrvey.writes()] == ["create_dataset"]      # nothing sent after the request
    state = store.read()
    assert state.journal == () and list(state.resources) == ["dataset.orders"]


async def test_a_second_signal_cancels_the_calls_in_flight_and_keeps_them_journaled():
    qrvey, store, stop = HeldQrvey(), MemoryStateStore(), Stop()
    engine = Engine(qrvey, store, stop=stop)
    plan, _ = await engine.plan(manifest(dataset(), view()), store.read(), "t")
    applying = asyncio.ensure_future(engine.apply(plan, store.read()))
    await qrvey.sent.wait()
    stop.request("SIGINT", 130)
    applying.cancel()                                   # what cli.py does on the second signal
    with pytest.raises(StoppedError) as stopped:
        await applying
    report = str(stopped.value)
    assert report.startswith("apply stopped by SIGINT: the calls in flight were cancelled (a second signal)")
    assert "cut off in flight: 1 (create:dataset.orders): kept in the state's journal" in report
    assert "not started: 2 (share:dataset.orders, create:view.orders-emea)" in report
    assert [e.address for e in store.read().journal] == ["dataset.orders"]   # the next run settles it


# -- failures that leave nothing to settle; settling concurrently (issue 13, point 8) ---------

async def test_a_create_refused_at_connect_leaves_no_journal_entry():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    engine = Engine(qrvey, store)
    qrvey.refuse("create_dataset")
    with pytest.raises(ApplyError, match=r"create:dataset.orders: failed \(nothing was sent\)"):
        await converge_once(engine, store, manifest(dataset()))
    assert store.read().journal == ()
    assert qrvey.objects == {}


async def test_a_view_whose_clone_landed_keeps_its_entry_when_a_later_call_is_refused():
    """The clone reached Qrvey: the follow-up PUT refused at connect proves nothing about it."""
    qrvey, store = FakeQrvey(), MemoryStateStore()
    engine = Engine(qrvey, store)
    await converge_once(engine, store, manifest(dataset()))
    qrvey.refuse("update_dataset")
    wanted = manifest(dataset(), view(columns=[{"column": "Total", "columnName": "Order total"}]))
    with pytest.raises(ApplyError) as raised:
        await converge_once(engine, store, wanted)
    assert "nothing was sent" not in str(raised.value)
    assert [(e.op, e.address) for e in store.read().journal] == [("create", "view.orders-emea")]
    assert len(marked(qrvey, "view.orders-emea")) == 1


async def test_a_delete_refused_at_connect_leaves_no_journal_entry_and_keeps_the_record():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    engine = Engine(qrvey, store)
    await converge_once(engine, store, manifest(dataset()))
    qrvey.refuse("delete")
    with pytest.raises(ApplyError, match=r"delete:dataset.orders: failed \(nothing was sent\)"):
        await converge_once(engine, store, manifest())
    assert store.read().journal == () and "dataset.orders" in store.read().resources


async def test_the_journal_is_settled_concurrently_within_the_parallelism_limit():
    """20 interrupted deletes, each settled by one read: the reads overlap, never more than
    the engine's parallelism at once, and the result is in journal order."""
    qrvey, store = FakeQrvey(), MemoryStateStore()
    engine = Engine(qrvey, store, parallelism=4)
    names = [f"orders-{n}" for n in range(20)]
    await converge_once(engine, store, manifest(*(dataset(name, shared=False) for name in names)))
    qrvey.fail("delete", times=20)           # nothing lands: every entry stays, to be settled
    with pytest.raises(ApplyError):
        await converge_once(engine, store, manifest())
    assert len(store.read().journal) == 20
    qrvey.read_delay = 0.01
    gone = sorted(names)[::2]                 # half the deletes landed after all
    for name in gone:
        del qrvey.objects[store.read().resources[f"dataset.{name}"].datasetId]
    settled = await engine.settle_journal(store.read(), manifest())
    assert 1 < qrvey.most_reading <= 4
    assert settled.state.journal == () and settled.undecided == []
    assert sorted(settled.state.resources) == sorted(f"dataset.{n}" for n in names if n not in gone)


class LaterFirst(FakeQrvey):
    """Reads fail, the later a read was asked for the sooner: answers come in reverse order."""

    async def read(self, app, dataset_id):
        self.calls.append(("read", dataset_id))
        await asyncio.sleep(0.02 / len(self.calls))
        raise TransportError("GET", f"dataset/{dataset_id}", "ReadTimeout (fake)")


async def test_a_settle_reports_what_it_cannot_decide_in_journal_order():
    qrvey, store = FakeQrvey(), MemoryStateStore()
    engine = Engine(qrvey, store, parallelism=8)
    names = [f"orders-{n}" for n in range(8)]
    await converge_once(engine, store, manifest(*(dataset(name, shared=False) for name in names)))
    qrvey.fail("delete", times=8)
    with pytest.raises(ApplyError):
        await converge_once(engine, store, manifest())
    journal = store.read().journal
    engine.qrvey = LaterFirst()
    settled = await engine.settle_journal(store.read(), manifest())
    assert [line.split(":", 1)[0] for line in settled.undecided] == [e.address for e in journal]
    assert settled.state.journal == journal
