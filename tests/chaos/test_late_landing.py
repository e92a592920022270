"""Writes that land late (issue 12, point 1): a server finishes a request whose client timed
out, so a create whose answer never came may land after the client gave up. The tool never
concludes "did not land" while it may still: a dataset's chosen id is kept in the state and
sent again (a late landing is a refused duplicate id), a view is looked for again once its
landing window (twice the request timeout) has passed.

In-process, on the emulator with the ``late=DURATION`` fault and a short request timeout.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from test_journal import MANIFEST, only

from qrvey_iac.adapters.qrvey.client import QrveyClient, RetryPolicy
from qrvey_iac.adapters.qrvey.gateway import QrveyGateway
from qrvey_iac.adapters.state.local import LocalStateStore
from qrvey_iac.core.diff import canonical_hash
from qrvey_iac.core.errors import UndecidedError
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.kinds.base import OWNER_ATTRIBUTE
from qrvey_iac.core.manifest import Manifest
from qrvey_iac.core.state import JournalEntry, State
from qrvey_iac.emulator import EmulatorConfig, EmulatorTransport, create_app, parse_faults
from qrvey_iac.engine import Engine
from qrvey_iac.flows import _settled

pytestmark = pytest.mark.anyio

TIMEOUT = 0.5      # the client's request timeout: the landing window is twice that (+1 s for rounding)
VIEW = "view.orders-emea"
CLONE = "POST /qollect/dataset/clone/connection/*"


class LateRig:
    """The in-process emulator (faults on), a state file, and one engine per command."""

    def __init__(self, folder: Path, faults: str = "") -> None:
        self.app = create_app(EmulatorConfig(api_key="local", faults=parse_faults(faults)))
        self.emulator = self.app.state.emulator
        self.store = LocalStateStore(folder / "state.json")
        self.lines: list[str] = []
        self.client = QrveyClient("http://emulator", "local", transport=EmulatorTransport(self.app),
                                  retry=RetryPolicy(base_delay=0.0), timeout=TIMEOUT)
        self.gateway = QrveyGateway(self.client)

    def engine(self) -> Engine:
        """A new command's engine: nothing carried over in memory from the one before."""
        return Engine(self.gateway, self.store, progress=self.lines.append, request_timeout=TIMEOUT)

    async def settle(self, manifest: Manifest) -> State:
        return await _settled(self.engine(), _Workspace(self.store), self.store.read(), manifest)

    async def apply(self, manifest: Manifest) -> list[str]:
        engine = self.engine()
        state = await _settled(engine, _Workspace(self.store), self.store.read(), manifest)
        plan, _ = await engine.plan(manifest, state, "local")
        if plan.has_changes:
            await engine.apply(plan, state)
        return [f"{a.op}:{a.address}" for a in plan.changes]

    def marked(self, address: str) -> list[str]:
        return sorted(d["datasetId"] for d in self.emulator.world.datasets.values()
                      if (d.get("customAttributes") or {}).get(OWNER_ATTRIBUTE) == address)

    def journal_view_create(self, started: str) -> JournalEntry:
        state = self.store.read()
        orders = state.resources["dataset.orders"]
        resource = MANIFEST.resources[VIEW]
        entry = JournalEntry(
            id=str(uuid.uuid4()), op="create", address=VIEW, appId=resource.app.app_id, userId=resource.app.user_id,
            started=started,
            detail={"kind": "DatasetView", "applied_hash": canonical_hash(resource.desired),
                    "connectionId": orders.connectionId, "marker": {OWNER_ATTRIBUTE: VIEW},
                    "source": {"address": "dataset.orders", "datasetId": orders.datasetId,
                               "appId": orders.appId, "userId": orders.userId}},
        )
        self.store.write(state.without_resource(VIEW).with_journal(entry).bumped(), state.serial)
        return entry


class _Workspace:
    def __init__(self, store: LocalStateStore) -> None:
        self.store = store


@pytest.fixture
async def rigs(tmp_path):
    made: list[LateRig] = []

    def make(faults: str = "") -> LateRig:
        made.append(LateRig(tmp_path / f"rig{len(made)}", faults))
        return made[-1]

    yield make
    for rig in made:
        await rig.client.aclose()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


async def test_a_view_clone_answered_after_the_client_timeout_is_adopted_not_cloned_twice(rigs):
    """Seen in issue 12: the clone answered after the client's timeout; the tool listed at
    once, found nothing, cloned again: two views, one untracked. Now it waits out the landing
    window before looking again, and adopts the late one."""
    rig = rigs(f"{CLONE}: late=800ms@first=1")
    await rig.apply(MANIFEST)
    await asyncio.sleep(0.5)                 # anything still held has landed by now
    state = rig.store.read()
    views = [address for address in MANIFEST.resources if address.startswith("view.")]
    for address in views:
        assert rig.marked(address) == [state.resources[address].datasetId], address
    assert state.journal == () and rig.emulator.fault_counts["late"] == 1
    assert rig.emulator.request_counts["POST /qollect/dataset/clone/connection/{connectionId}"] == len(views)
    assert any("the create's outcome is unknown and it has not landed; waiting" in line for line in rig.lines)
    assert await rig.apply(MANIFEST) == []


async def test_a_dataset_create_answered_after_the_client_timeout_lands_once(rigs):
    """The create is sent again at once with the same id; the late first request is then
    refused by Qrvey as a duplicate id."""
    rig = rigs("POST /qollect/dataset: late=800ms@first=1")
    await rig.apply(only("dataset.orders"))
    await asyncio.sleep(1.0)                           # the first request lands (is refused) by now
    [dataset_id] = rig.marked("dataset.orders")
    assert rig.store.read().resources["dataset.orders"].datasetId == dataset_id
    assert rig.emulator.request_counts["POST /qollect/dataset"] == 2


async def test_a_view_create_within_its_window_survives_plan_and_the_next_apply_adopts_it(rigs):
    """Kill during a view clone, then plan, then apply. The plan finds nothing yet and keeps
    the entry (its request may still land); the apply waits out the window, finds the late
    landing and adopts it."""
    rig = rigs()
    await rig.apply(MANIFEST)
    first = rig.store.read().resources[VIEW]
    await rig.gateway.delete(AppRef(first.userId, first.appId), first.datasetId)
    entry = rig.journal_view_create(started=_now())            # a kill while the clone is in flight
    settled = await rig.settle(MANIFEST)                       # plan
    assert [e.id for e in settled.journal] == [entry.id]
    assert any(f"{VIEW}: an interrupted create has not landed yet but may for" in line for line in rig.lines)
    orders = settled.resources["dataset.orders"]
    landing = asyncio.ensure_future(_land_late(rig, orders, delay=0.5))   # the abandoned clone lands
    changes = await rig.apply(MANIFEST)
    late = await landing
    assert changes == [f"create:{VIEW}"]
    assert rig.marked(VIEW) == [late]
    state = rig.store.read()
    assert state.resources[VIEW].datasetId == late and state.journal == ()


async def test_a_view_create_past_its_window_is_cloned_again(rigs):
    rig = rigs()
    await rig.apply(MANIFEST)
    first = rig.store.read().resources[VIEW]
    await rig.gateway.delete(AppRef(first.userId, first.appId), first.datasetId)
    rig.journal_view_create(started="2026-01-01T00:00:00+00:00")
    assert (await rig.settle(MANIFEST)).journal == ()
    assert f"{VIEW}: an interrupted create did not land; it will be planned again" in rig.lines
    await rig.apply(MANIFEST)
    assert len(rig.marked(VIEW)) == 1


async def _land_late(rig: LateRig, orders, delay: float) -> str:
    await asyncio.sleep(delay)
    resource = MANIFEST.resources[VIEW]
    view = await rig.gateway.clone_view(resource.app, AppRef(orders.userId, orders.appId), orders.connectionId,
                                        "Orders (EMEA)", {OWNER_ATTRIBUTE: VIEW})
    return view["datasetId"]


async def test_a_view_landing_after_its_window_is_reported_by_plan_not_left_untracked(rigs):
    """A landing later than the window allows: the re-clone is recorded and the late view
    carries the same marker. plan (which exited 0 before) names both and stops."""
    rig = rigs()
    await rig.apply(MANIFEST)
    state = rig.store.read()
    recorded, orders = state.resources[VIEW], state.resources["dataset.orders"]
    late = await _land_late(rig, orders, delay=0)
    with pytest.raises(UndecidedError) as raised:
        await rig.engine().plan(MANIFEST, state, "local")
    message = str(raised.value)
    assert message.startswith("1 object(s) in Qrvey claim an address the state records with another id:\n")
    assert (f"- {VIEW}: {late} in app {recorded.appId} carries its marker {OWNER_ATTRIBUTE} but the state "
            f"records {recorded.datasetId}") in message
    await rig.gateway.delete(AppRef(recorded.userId, recorded.appId), late)     # the operator's choice
    plan, _ = await rig.engine().plan(MANIFEST, state, "local")
    assert not plan.has_changes
