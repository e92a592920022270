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
leaves in the journal, named in an error, only what cannot be decided. The entries are
looked at concurrently, at most ``parallelism`` at a time; what each decided is applied to
the state in journal order, so the result does not depend on which answer came first.
A write whose calls failed with an error proving that none reached Qrvey (``nothing_sent``:
every attempt refused at connect or by a DNS failure, or answered 401/403 before any may have
been acted on) leaves nothing here: apply removes its entry at once (engine ``_StepCalls``).

A create whose outcome is unknown is never concluded "did not land" while it may still be
running on the server (a real server finishes a request whose client timed out or died):

- a dataset create that has not landed keeps its entry, and so its chosen ``datasetId``, in
  the journal until the object is found or a create with that same id is answered: the next
  apply sends the create again with that id, so a late landing of the first request is
  refused as a duplicate id (and then found by GET), never a second dataset; a ``plan`` in
  between cannot lose the id. Once the manifests no longer want the address there and the
  landing window has passed, the entry is forgotten;
- a view create (Qrvey mints the id) is concluded "did not land" only by a listing made
  after its landing window: ``started`` (its last request was sent after it) plus
  ``landing_window`` seconds, twice the client's request timeout. Within it the entry is
  kept; the next apply waits for the window to pass, then lists again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from qrvey_iac.core.errors import QrveyIacError, UndecidedError
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.kinds import KINDS
from qrvey_iac.core.kinds.base import OWNER_ATTRIBUTE, resolve_references
from qrvey_iac.core.manifest import Manifest
from qrvey_iac.core.state import JournalEntry, ResourceState, State
from qrvey_iac.ports import QrveyPort


KEEP = None    # a handler's answer: leave the entry in the journal as it is
Change = Callable[[State], State]     # a handler's other answer: what the entry's outcome does to the state


def unchanged(state: State) -> State:
    return state
DEFAULT_LANDING_WINDOW = 60.0   # seconds: twice the client's default request timeout


def landing_window(request_timeout: float) -> float:
    """How long after its request was sent an unanswered write may still land: the client's
    timeout, and as long again for a server that finishes what its client gave up on."""
    return 2 * request_timeout


def window_left(entry: JournalEntry, window: float, now: datetime | None = None) -> float:
    """Seconds until ``entry``'s last request can no longer land (0: the window has passed).
    An entry without a readable ``started`` is taken as old."""
    try:
        started = datetime.fromisoformat(entry.started)
    except ValueError:
        return 0.0
    if started.tzinfo is None:
        started = started.replace(tzinfo=timezone.utc)
    elapsed = ((now or datetime.now(timezone.utc)) - started).total_seconds()
    return max(0.0, window + 1.0 - elapsed)   # + 1: started is written to the second, rounded down


@dataclass
class Settled:
    state: State
    undecided: list[str] = field(default_factory=list)     # one line per entry kept, with its error
    pending: list[str] = field(default_factory=list)       # creates kept: they may still land


@dataclass
class Settler:
    qrvey: QrveyPort
    progress: Callable[[str], None]
    manifest: Manifest | None = None
    write: bool = True      # False: decide in memory only (read-only commands)
    window: float = DEFAULT_LANDING_WINDOW   # landing_window() of the client's request timeout
    parallelism: int = 10     # entries looked at together (the engine's: each makes a call or two)

    async def settle(self, state: State) -> Settled:
        """Every entry decided from ``state`` as read, concurrently; then folded in journal order."""
        limit = asyncio.Semaphore(max(1, self.parallelism))

        async def decided(entry: JournalEntry) -> Change | None | QrveyIacError:
            async with limit:
                try:
                    return await self._one(state, entry)
                except QrveyIacError as exc:      # UndecidedError among them
                    return exc

        outcomes = await asyncio.gather(*(decided(entry) for entry in state.journal))
        settled = Settled(state)
        for entry, outcome in zip(state.journal, outcomes):
            if isinstance(outcome, QrveyIacError):
                settled.undecided.append(f"{entry.address}: {describe(entry)}: {outcome}")
            elif outcome is KEEP:
                settled.pending.append(entry.address)
            else:
                settled.state = outcome(settled.state).without_journal(entry.id)
        return settled

    async def _one(self, state: State, entry: JournalEntry) -> Change | None:
        """What ``entry``'s outcome does to the state, or KEEP: the entry stays in the journal as it is.
        Decided from ``state`` as read; the change reads the resource it touches when applied."""
        handler = {"create": self._create, "update": self._update, "share": self._share,
                   "unshare": self._share, "delete": self._delete}.get(entry.op)
        if handler is None:
            raise UndecidedError(f"unknown journal operation {entry.op!r} (written by a newer qrvey-iac?)")
        return await handler(state, entry)

    async def _create(self, state: State, entry: JournalEntry) -> Change | None:
        kind = KINDS[entry.detail.kind]
        found = await kind.find_landed(self.qrvey, entry, state)
        if found is None:
            return self._not_landed(state, entry, kind.client_minted_id)
        recorded = state.resources.get(entry.address)
        if recorded is not None and recorded.datasetId != found["datasetId"]:
            if await kind.read(self.qrvey, _app(recorded), recorded.datasetId) is not None:
                raise UndecidedError(f"both {recorded.datasetId} (in the state) and {found['datasetId']} (from an "
                                f"interrupted create) exist in app {entry.appId}; delete the one you do not "
                                f"want in Qrvey, then run again")
        self.progress(f"{entry.address}: adopted {found['datasetId']} from an interrupted create")
        adopted = recorded_resource(entry, found)
        return lambda settled: settled.with_resource(entry.address, adopted)

    def _not_landed(self, state: State, entry: JournalEntry, client_minted_id: bool) -> Change | None:
        """A create not found (yet): kept while it may still land, and a dataset's while its
        address still wants that id; else forgotten (the plan creates it again)."""
        left = window_left(entry, self.window)
        if client_minted_id and self._wanted(entry):
            self.progress(f"{entry.address}: an interrupted create has not landed; its id {entry.datasetId} "
                          "stays in the state's journal, and the create planned again reuses it")
            return KEEP
        if left:
            self.progress(f"{entry.address}: an interrupted create has not landed yet but may for {left:.1f}s "
                          "more; kept in the state's journal and looked for again before it is created again")
            return KEEP
        self.progress(f"{entry.address}: an interrupted create did not land; it will be planned again")
        return unchanged

    def _wanted(self, entry: JournalEntry) -> bool:
        """The manifests still declare ``entry``'s address in its app (no manifest: assume so)."""
        if self.manifest is None:
            return True
        resource = self.manifest.resources.get(entry.address)
        return resource is not None and (resource.app.user_id, resource.app.app_id) == (entry.userId, entry.appId)

    async def _update(self, state: State, entry: JournalEntry) -> Change:
        current = _tracked(state, entry)
        if current is None:
            return unchanged
        kind = KINDS[current.kind]
        live = await kind.read(self.qrvey, _app(current), current.datasetId)
        resource = self.manifest.resources.get(entry.address) if self.manifest else None
        if live is None or resource is None:
            return unchanged        # gone (the plan recreates it) or no longer managed
        desired = resolve_references(resource.desired, {a: r.datasetId for a, r in state.resources.items()})
        sent = entry.detail.applied_hash
        sealer = self.manifest.sealer
        if (kind.applied_hash(desired, sealer) != sent
                or kind.applied_hash(kind.live_document(live, desired), sealer) != sent):
            return unchanged        # not landed, or the manifests moved on: the plan shows what remains
        if live.get("pendingChanges") and self.write:
            await kind.update(self.qrvey, _app(current), current.datasetId, desired)
        self.progress(f"{entry.address}: an interrupted update had landed; recorded it")
        recorded = {"applied_hash": sent, "applied_fields": entry.detail.applied_fields or {}}
        if entry.detail.managed is not None:
            recorded["managed"] = entry.detail.managed
        return _updating(entry, recorded)

    async def _share(self, state: State, entry: JournalEntry) -> Change:
        current = _tracked(state, entry)
        if current is None:
            return unchanged
        live = await KINDS[current.kind].read(self.qrvey, _app(current), current.datasetId)
        if live is None:
            return unchanged
        return _updating(entry, {"shared": bool(live.get("isPublic"))})

    async def _delete(self, state: State, entry: JournalEntry) -> Change:
        current = _tracked(state, entry)
        if current is None:
            return unchanged
        if await KINDS[current.kind].read(self.qrvey, _app(current), current.datasetId) is not None:
            return unchanged        # not deleted: still managed, the plan deletes it again
        self.progress(f"{entry.address}: an interrupted delete had landed; removed it from the state")
        return lambda settled: settled.without_resource(entry.address)


def _updating(entry: JournalEntry, fields: dict[str, Any]) -> Change:
    """The change that sets ``fields`` on the record ``entry`` wrote to, as it is when applied
    (an earlier entry of the same address may have changed it); none if it no longer points there."""
    def change(state: State) -> State:
        current = _tracked(state, entry)
        return state if current is None else state.with_resource(entry.address, current.model_copy(update=fields))
    return change


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

