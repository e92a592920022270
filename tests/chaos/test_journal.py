"""Settling the journal, one journaled operation at a time, on the in-process emulator.

Each test writes the state a crash would leave (a journal entry, and in Qrvey the
write landed or not), settles it, and checks what was adopted, forgotten or refused.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import uuid
from pathlib import Path
from collections.abc import Callable
from types import SimpleNamespace

import httpx
import pytest
from chaos_harness import copy_examples_without_connection

from qrvey_iac.adapters.config import load_environment
from qrvey_iac.adapters.manifest_files import load_manifest
from qrvey_iac.adapters.qrvey.client import QrveyClient, RetryPolicy
from qrvey_iac.adapters.qrvey.gateway import QrveyGateway
from qrvey_iac.adapters.state.local import LocalStateStore
from qrvey_iac.core.diff import canonical_hash
from qrvey_iac.core.kinds.base import OWNER_ATTRIBUTE
from qrvey_iac.core.kinds.dataset import DATASET, create_body
from qrvey_iac.core.errors import ApplyError, BadRequestError, StateError
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.manifest import Manifest
from qrvey_iac.core.state import JournalEntry, State
from qrvey_iac.emulator import EmulatorConfig, EmulatorTransport, create_app, parse_faults
from qrvey_iac.engine import Engine
from qrvey_iac.flows import _settled

REPO = Path(__file__).resolve().parents[2]
ENV = load_environment(REPO / "qrvey-iac.yaml", "local")
EXAMPLES = Path(tempfile.mkdtemp(prefix="qrvey-iac-journal-examples-"))
copy_examples_without_connection(EXAMPLES)
MANIFEST = load_manifest(EXAMPLES, ENV.apps, ENV.variables, {})
shutil.rmtree(EXAMPLES)
SALES = ENV.apps["sales"]

pytestmark = pytest.mark.anyio


class Refusing(httpx.AsyncBaseTransport):
    """A transport to the emulator that fails to connect (or answers ``status``) for the
    requests ``refused`` picks: what a firewall, a DNS failure or a gateway's key check does."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.refused: Callable[[httpx.Request], bool] = lambda request: False
        self.status = 0          # 0: the connection is refused; else this status is answered

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.refused(request):
            return await self.inner.handle_async_request(request)
        if self.status:
            return httpx.Response(self.status, json={"status": "error", "errors": [{"message": "Forbidden"}]})
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


class Rig:
    """The in-process emulator, a state file and an engine over them."""

    def __init__(self, folder: Path, faults: str | None = None) -> None:
        config = EmulatorConfig(api_key="local", faults=parse_faults(faults) if faults else None)
        self.app = create_app(config)
        self.emulator = self.app.state.emulator
        self.store = LocalStateStore(folder / "state.json")
        self.lines: list[str] = []
        self.transport = Refusing(EmulatorTransport(self.app))
        self.client = QrveyClient("http://emulator", "local", transport=self.transport,
                                  retry=RetryPolicy(base_delay=0.0))
        self.gateway = QrveyGateway(self.client)
        self.engine = Engine(self.gateway, self.store, progress=self.lines.append)

    async def settle(self, manifest: Manifest = MANIFEST) -> State:
        return await _settled(self.engine, SimpleNamespace(store=self.store), self.store.read(), manifest)

    async def converge(self, manifest: Manifest = MANIFEST):
        state = await self.settle(manifest)
        plan, _ = await self.engine.plan(manifest, state, "local")
        if plan.has_changes:
            await self.engine.apply(plan, state)
        return plan

    def state(self) -> State:
        return self.store.read()

    def journal(self, op: str, address: str, dataset_id: str | None, app: AppRef = SALES, **detail) -> None:
        state = self.state()
        kind = "DatasetView" if address.startswith("view.") else "Dataset"
        resource = MANIFEST.resources.get(address)
        entry = JournalEntry(
            id=str(uuid.uuid4()), op=op, address=address, datasetId=dataset_id, appId=app.app_id,
            userId=app.user_id, started="2026-01-01T00:00:00+00:00",
            detail={"kind": kind, "applied_hash": canonical_hash(resource.desired) if resource else "",
                    **detail},
        )
        self.store.write(state.with_journal(entry).bumped(), state.serial)

    def with_marker(self, address: str) -> list[str]:
        return sorted(d["datasetId"] for d in self.emulator.world.datasets.values()
                      if d.get("customAttributes", {}).get(OWNER_ATTRIBUTE) == address)


@pytest.fixture
async def rig(tmp_path):
    rig = Rig(tmp_path)
    yield rig
    await rig.client.aclose()


def only(*addresses: str, renamed: dict[str, str] | None = None) -> Manifest:
    resources = {}
    for address in addresses:
        resource = MANIFEST.resources[address]
        if renamed and address in renamed:
            resource = dataclasses.replace(resource, spec=resource.spec.model_copy(update={"name": renamed[address]}))
        resources[address] = resource
    return Manifest(resources=resources, digest="test")


async def test_a_create_that_lands_after_it_was_settled_is_adopted_not_duplicated(rig):
    """The settle (a plan's, say) keeps the create's id in the state; the next apply, in
    another process (a fresh engine), sends it again with that id, and the first request
    landing late in between is found, not duplicated."""
    manifest = only("dataset.products")
    dataset_id = str(uuid.uuid4())
    rig.journal("create", "dataset.products", dataset_id)
    await rig.settle(manifest)
    assert (f"dataset.products: an interrupted create has not landed; its id {dataset_id} stays in the "
            "state's journal, and the create planned again reuses it") in rig.lines
    assert [e.datasetId for e in rig.state().journal] == [dataset_id]
    desired = manifest.resources["dataset.products"].desired
    await rig.gateway.create_dataset(SALES, create_body(desired, SALES, dataset_id))      # the first request lands, late
    rig.engine = Engine(rig.gateway, rig.store, progress=rig.lines.append)                  # the next command
    plan = await rig.converge(manifest)
    assert [a.op for a in plan.changes] == []     # the settle of the next command found it: adopted
    assert rig.with_marker("dataset.products") == [dataset_id]
    assert rig.state().resources["dataset.products"].datasetId == dataset_id and rig.state().journal == ()


async def test_a_kept_create_id_is_sent_again_by_the_next_apply_and_a_late_landing_is_refused(rig):
    """Kill, plan, apply: the plan finds nothing landed and keeps the id; the apply (a fresh
    engine) creates with that same id; the first request landing after that is refused by
    Qrvey as a duplicate id: one dataset."""
    manifest = only("dataset.products")
    dataset_id = str(uuid.uuid4())
    rig.journal("create", "dataset.products", dataset_id)
    await rig.settle(manifest)                                                    # plan
    rig.engine = Engine(rig.gateway, rig.store, progress=rig.lines.append)        # apply, another process
    plan = await rig.converge(manifest)
    assert [a.op for a in plan.changes] == ["create"]
    assert rig.state().resources["dataset.products"].datasetId == dataset_id and rig.state().journal == ()
    desired = manifest.resources["dataset.products"].desired
    with pytest.raises(BadRequestError):                                          # the late landing
        await rig.gateway.create_dataset(SALES, create_body(desired, SALES, dataset_id))
    assert rig.with_marker("dataset.products") == [dataset_id]


async def test_a_kept_create_id_is_forgotten_once_the_manifests_drop_it_and_it_can_no_longer_land(rig):
    dataset_id = str(uuid.uuid4())
    rig.journal("create", "dataset.products", dataset_id)       # started long ago: past its window
    state = await rig.settle(only("dataset.orders"))
    assert state.journal == ()
    assert "dataset.products: an interrupted create did not land; it will be planned again" in rig.lines


async def test_a_create_that_landed_is_adopted_and_one_that_did_not_is_made_again_with_its_id(rig):
    landed, lost = str(uuid.uuid4()), str(uuid.uuid4())
    await rig.gateway.create_dataset(SALES, create_body(MANIFEST.resources["dataset.orders"].desired, SALES, landed))
    rig.journal("create", "dataset.orders", landed)
    rig.journal("create", "dataset.products", lost)
    plan = await rig.converge()
    assert f"dataset.orders: adopted {landed} from an interrupted create" in rig.lines
    assert "dataset.orders" not in {a.address for a in plan.changes if a.op == "create"}
    state = rig.state()
    assert (state.resources["dataset.orders"].datasetId, state.resources["dataset.products"].datasetId) == (landed, lost)
    assert state.journal == ()
    assert (await rig.converge()).has_changes is False


async def test_an_update_that_landed_without_apply_changes_is_committed_and_recorded(rig):
    await rig.converge()
    renamed = only(*MANIFEST.resources, renamed={"dataset.products": "Catalogue"})
    current = rig.state().resources["dataset.products"]
    desired = renamed.resources["dataset.products"].desired
    rig.journal("update", "dataset.products", current.datasetId, applied_hash=canonical_hash(desired))
    live = await rig.client.get_dataset(SALES, current.datasetId)
    await rig.client.update_dataset(SALES, current.datasetId, DATASET.update_body(live, desired))
    assert rig.emulator.world.datasets[current.datasetId]["pendingChanges"] is True
    await rig.settle(renamed)
    assert rig.emulator.world.datasets[current.datasetId]["pendingChanges"] is False
    assert rig.state().resources["dataset.products"].applied_hash == canonical_hash(desired)
    assert (await rig.converge(renamed)).has_changes is False


async def test_an_update_that_did_not_land_is_planned_again_as_a_manifest_change(rig):
    await rig.converge()
    renamed = only(*MANIFEST.resources, renamed={"dataset.products": "Catalogue"})
    before = rig.state().resources["dataset.products"]
    rig.journal("update", "dataset.products", before.datasetId,
                applied_hash=canonical_hash(renamed.resources["dataset.products"].desired))
    state = await rig.settle(renamed)
    assert state.resources["dataset.products"] == before and state.journal == ()
    plan, _ = await rig.engine.plan(renamed, state, "local")
    [update] = plan.changes
    assert (update.op, update.reason, update.drift) == ("update", "changed in the manifests", False)


async def test_a_share_is_recorded_as_qrvey_has_it(rig):
    await rig.converge()
    products = rig.state().resources["dataset.products"]
    rig.journal("share", "dataset.products", products.datasetId, shared=True)
    await rig.client.set_shared(SALES, products.datasetId, True)
    assert (await rig.settle()).resources["dataset.products"].shared is True


@pytest.mark.parametrize("landed", [True, False])
async def test_a_delete_is_recorded_only_when_it_landed(rig, landed):
    await rig.converge()
    products = rig.state().resources["dataset.products"]
    rig.journal("delete", "dataset.products", products.datasetId)
    if landed:
        await rig.client.delete_dataset(SALES, products.datasetId)
    state = await rig.settle()
    assert ("dataset.products" in state.resources) is not landed
    assert state.journal == ()


async def test_two_candidate_views_are_refused_naming_both_and_the_entry_is_kept(rig):
    await rig.converge()
    state = rig.state()
    view = state.resources["view.orders-emea"]
    orders = state.resources["dataset.orders"]
    emea = AppRef(view.userId, view.appId)
    extra = await rig.client.create_view(emea, AppRef(orders.userId, orders.appId), orders.connectionId,
                                         name="Orders (EMEA)", custom_attributes={OWNER_ATTRIBUTE: "view.orders-emea"})
    rig.store.write(state.without_resource("view.orders-emea").bumped(), state.serial)
    rig.journal("create", "view.orders-emea", None, app=emea, connectionId=orders.connectionId)
    with pytest.raises(StateError) as raised:
        await rig.settle()
    message = str(raised.value)
    assert "1 interrupted operation(s) of an earlier run could not be settled" in message
    assert f"view.orders-emea: create in app {view.appId}" in message
    assert f"2 candidate views ({', '.join(sorted([view.datasetId, extra['datasetId']]))})" in message
    assert len(rig.state().journal) == 1


async def test_a_run_that_gives_up_says_what_is_done_and_what_is_not(tmp_path):
    rig = Rig(tmp_path, faults="POST /qollect/dataset: 503")
    try:
        state = State()
        plan, _ = await rig.engine.plan(MANIFEST, state, "local")
        with pytest.raises(ApplyError) as raised:
            await rig.engine.apply(plan, state)
        report = str(raised.value)
        assert report.startswith("apply stopped: 6 operation(s) failed\n")
        assert ("  create:dataset.orders: outcome unknown (kept in the state's journal: the next plan or "
                "apply checks Qrvey and records what landed): Qrvey API POST") in report
        assert "done and recorded in state: 0 ()" in report
        assert ("not started: 7 (load:dataset.monthly-revenue, share:dataset.customers, share:dataset.orders, "
                "create:view.") in report                               # the example loads monthly-revenue
        journaled = {e.address: e.datasetId for e in rig.state().journal}
        assert len(journaled) == 6 and rig.emulator.world.datasets == {}
        rig.emulator.injector.rules = ()                     # the outage ends
        await rig.converge()
        state = rig.state()
        assert {a: state.resources[a].datasetId for a in journaled} == journaled
        assert state.journal == () and len(rig.emulator.world.datasets) == 10
    finally:
        await rig.client.aclose()


class RecordingStore(LocalStateStore):
    """Keeps every state saved; fails the saves of states that ``fails`` picks."""

    def __init__(self, path: Path, fails=lambda state: False) -> None:
        super().__init__(path)
        self.saved: list[State] = []
        self.fails = fails

    def write(self, state: State, expected_serial: int) -> None:
        if self.fails(state):
            raise OSError(28, "No space left on device")
        super().write(state, expected_serial)
        self.saved.append(state)


async def test_each_call_goes_out_after_its_entry_is_durable_and_apply_returns_with_every_result_durable(tmp_path):
    rig = Rig(tmp_path)
    rig.store = rig.engine.store = RecordingStore(tmp_path / "state.json")
    sent: list[tuple[str, int]] = []      # (address, how many states were durable when its create went out)
    create = rig.gateway.create_dataset

    async def watched(app, body):
        durable = rig.store.saved
        assert any(e.datasetId == body["datasetId"] for e in durable[-1].journal), "sent before its entry was saved"
        sent.append((body["customAttributes"][OWNER_ATTRIBUTE], len(durable)))
        return await create(app, body)

    rig.gateway.create_dataset = watched
    try:
        plan, _ = await rig.engine.plan(MANIFEST, State(), "local")
        await rig.engine.apply(plan, State())
        on_disk = rig.store.read()
        assert on_disk.journal == () and len(on_disk.resources) == 10
        assert len(sent) == 6
    finally:
        await rig.client.aclose()


async def test_a_result_write_that_fails_stops_the_apply_instead_of_passing_in_silence(tmp_path):
    rig = Rig(tmp_path)
    # only the last results fail to save: nobody waits on them, so apply itself must
    last_results = lambda state: len(state.resources) == 10     # noqa: E731
    rig.store = rig.engine.store = RecordingStore(tmp_path / "state.json", fails=last_results)
    try:
        plan, _ = await rig.engine.plan(MANIFEST, State(), "local")
        with pytest.raises(StateError, match=r"cannot write the state file \(OSError: \[Errno 28\] No space left"):
            await rig.engine.apply(plan, State())
        assert len(rig.store.read().journal) > 0      # what did land is still on disk as journal entries
    finally:
        await rig.client.aclose()


# -- failures that leave nothing to settle (issue 13, point 8) --------------------------------

def creating_datasets(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/qollect/dataset")


@pytest.mark.parametrize("status", [0, 401, 403], ids=["connection-refused", "401", "403"])
async def test_a_create_that_never_reached_qrvey_is_cleared_from_the_journal(rig, status):
    manifest = only("dataset.products")
    rig.transport.refused, rig.transport.status = creating_datasets, status
    state = await rig.settle(manifest)
    plan, _ = await rig.engine.plan(manifest, state, "local")
    with pytest.raises(ApplyError) as raised:
        await rig.engine.apply(plan, state)
    assert "create:dataset.products: failed (nothing was sent): " in str(raised.value)
    assert "outcome unknown" not in str(raised.value)
    assert rig.state().journal == ()                   # nothing left for the next command to settle
    assert rig.with_marker("dataset.products") == []
    rig.transport.refused = lambda request: False
    rig.lines.clear()
    plan = await rig.converge(manifest)                 # the next apply: no settle, one create
    assert not any("interrupted" in line for line in rig.lines)
    assert [a.op for a in plan.changes] == ["create"] and len(rig.with_marker("dataset.products")) == 1


async def test_an_update_whose_put_never_connected_is_cleared_from_the_journal(rig):
    await rig.converge(only("dataset.products"))
    renamed = only("dataset.products", renamed={"dataset.products": "Products, renamed"})
    rig.transport.refused = lambda request: request.method == "PUT"
    state = await rig.settle(renamed)
    plan, _ = await rig.engine.plan(renamed, state, "local")
    with pytest.raises(ApplyError, match="update:dataset.products: failed \\(nothing was sent\\)"):
        await rig.engine.apply(plan, state)
    assert rig.state().journal == ()


async def test_an_update_an_earlier_attempt_may_have_reached_stays_journaled(rig):
    """A PUT whose first attempt timed out (it may have been acted on), then refused: not
    "certainly never reached", so its entry stays for the next command to settle."""
    await rig.converge(only("dataset.products"))
    renamed = only("dataset.products", renamed={"dataset.products": "Products, renamed"})
    attempts = []

    def first_times_out_then_refused(request: httpx.Request) -> bool:
        if request.method != "PUT":
            return False
        attempts.append(request)
        if len(attempts) == 1:
            raise httpx.ReadTimeout("read timed out", request=request)
        return True

    rig.transport.refused = first_times_out_then_refused
    state = await rig.settle(renamed)
    plan, _ = await rig.engine.plan(renamed, state, "local")
    with pytest.raises(ApplyError) as raised:
        await rig.engine.apply(plan, state)
    assert "nothing was sent" not in str(raised.value) and "outcome unknown" in str(raised.value)
    assert [e.op for e in rig.state().journal] == ["update"]
