"""Settling the journal (DESIGN §5): decide what a crashed or failed run's writes did.

Every write apply makes is journaled in the state before it is sent, with what is
needed to recognise its outcome later:

- ``create`` of a dataset: the client-chosen ``datasetId`` (a GET finds it);
- ``create`` of a view (the server mints its id): the target app, the source's
  ``connectionId`` and the marker ``customAttributes.qrveyIacAddress`` (a list of
  the app finds it);
- ``update``: the ``datasetId`` and the hash of the document sent;
- ``share`` / ``unshare``: the ``datasetId`` and the flag sent;
- ``delete``: the ``datasetId``.

Settling adopts what landed, forgets what did not (the next plan does it again), and
leaves in the journal, named in an error, only what cannot be decided.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qrvey_iac.core.errors import QrveyIacError, UndecidedError
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.kinds import KINDS
from qrvey_iac.core.kinds.base import OWNER_ATTRIBUTE
from qrvey_iac.core.manifest import Manifest
from qrvey_iac.core.state import JournalEntry, ResourceState, State
from qrvey_iac.ports import QrveyPort


@dataclass
class Settled:
    state: State
    undecided: list[str] = field(default_factory=list)     # one line per entry kept
    retry_ids: dict[str, JournalEntry] = field(default_factory=dict)  # address -> a dataset create that did not land


@dataclass
class Settler:
    qrvey: QrveyPort
    progress: Callable[[str], None]
    manifest: Manifest | None = None
    write: bool = True      # False: decide in memory only (read-only commands)

    async def settle(self, state: State) -> Settled:
        settled = Settled(state)
        for entry in state.journal:
            try:
                settled.state = await self._one(settled, entry)
            except QrveyIacError as exc:      # UndecidedError among them
                settled.undecided.append(f"{entry.address}: {describe(entry)}: {exc}")
                continue
            settled.state = settled.state.without_journal(entry.id)
        return settled

    async def _one(self, settled: Settled, entry: JournalEntry) -> State:
        handler = {"create": self._create, "update": self._update, "share": self._share,
                   "unshare": self._share, "delete": self._delete}.get(entry.op)
        if handler is None:
            raise UndecidedError(f"unknown journal operation {entry.op!r} (written by a newer qrvey-iac?)")
        return await handler(settled, entry)

    async def _create(self, settled: Settled, entry: JournalEntry) -> State:
        state = settled.state
        kind = KINDS[entry.detail.kind]
        found = await kind.find_landed(self.qrvey, entry, state)
        if found is None:
            self.progress(f"{entry.address}: an interrupted create did not land; it will be planned again")
            if kind.client_minted_id:
                settled.retry_ids[entry.address] = entry
            return state
        recorded = state.resources.get(entry.address)
        if recorded is not None and recorded.datasetId != found["datasetId"]:
            if await self.qrvey.read(_app(recorded), recorded.datasetId) is not None:
                raise UndecidedError(f"both {recorded.datasetId} (in the state) and {found['datasetId']} (from an "
                                f"interrupted create) exist in app {entry.appId}; delete the one you do not "
                                f"want in Qrvey, then run again")
        self.progress(f"{entry.address}: adopted {found['datasetId']} from an interrupted create")
        return state.with_resource(entry.address, recorded_resource(entry, found))

    async def _update(self, settled: Settled, entry: JournalEntry) -> State:
        state = settled.state
        current = _tracked(state, entry)
        if current is None:
            return state
        live = await self.qrvey.read(_app(current), current.datasetId)
        resource = self.manifest.resources.get(entry.address) if self.manifest else None
        if live is None or resource is None:
            return state            # gone (the plan recreates it) or no longer managed
        kind = KINDS[current.kind]
        desired = resource.desired
        sent = entry.detail.applied_hash
        sealer = self.manifest.sealer
        if (kind.applied_hash(desired, sealer) != sent
                or kind.applied_hash(kind.live_document(live, desired), sealer) != sent):
            return state            # not landed, or the manifests moved on: the plan shows what remains
        if live.get("pendingChanges") and self.write:
            await kind.update(self.qrvey, _app(current), current.datasetId, desired)
        self.progress(f"{entry.address}: an interrupted update had landed; recorded it")
        return state.with_resource(entry.address, current.model_copy(
            update={"applied_hash": sent, "managed": current.managed if entry.detail.managed is None
                    else entry.detail.managed, "applied_fields": entry.detail.applied_fields or {}}))

    async def _share(self, settled: Settled, entry: JournalEntry) -> State:
        state = settled.state
        current = _tracked(state, entry)
        if current is None:
            return state
        live = await self.qrvey.read(_app(current), current.datasetId)
        if live is None:
            return state
        return state.with_resource(entry.address, current.model_copy(update={"shared": bool(live.get("isPublic"))}))

    async def _delete(self, settled: Settled, entry: JournalEntry) -> State:
        state = settled.state
        current = _tracked(state, entry)
        if current is None:
            return state
        if await self.qrvey.read(_app(current), current.datasetId) is not None:
            return state            # not deleted: still managed, the plan deletes it again
        self.progress(f"{entry.address}: an interrupted delete had landed; removed it from the state")
        return state.without_resource(entry.address)


def describe(entry: JournalEntry) -> str:
    what = f"id {entry.datasetId}" if entry.datasetId else (
        f"view of connection {entry.detail.connectionId} marked {OWNER_ATTRIBUTE}={entry.address}")
    return f"{entry.op} in app {entry.appId} ({what}, started {entry.started or '?'})"


def _tracked(state: State, entry: JournalEntry) -> ResourceState | None:
    """The state's record of the object a journal entry wrote to, if it still points there."""
    current = state.resources.get(entry.address)
    return current if current is not None and current.datasetId == entry.datasetId else None


def recorded_resource(entry: JournalEntry, found: dict[str, Any]) -> ResourceState:
    return ResourceState(
        kind=entry.detail.kind,
        datasetId=found["datasetId"], appId=entry.appId, userId=entry.userId,
        connectionId=found.get("connectionId"), shared=bool(found.get("isPublic", False)),
        protect=entry.detail.protect,
        applied_hash=entry.detail.applied_hash, source=entry.detail.source,
        managed=entry.detail.managed or {}, applied_fields=entry.detail.applied_fields or {},
    )


def _app(resource: ResourceState) -> AppRef:
    return AppRef(resource.userId, resource.appId)

