"""Use cases: refresh, plan, apply, settle the journal. Talks to ports only."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Protocol

from qrvey_iac.core.errors import (
    ApplyError, BadRequestError, LoadFailedError, LoadTimeoutError, OutcomeUnknownError, QrveyIacError, ServerError, StateError, StateWriteError,
    StoppedError, TransportError, UndecidedError, UnusableAnswerError,
)
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.kinds import KINDS
from qrvey_iac.core.kinds.base import (
    LOADED_STATUSES, OWNER_ATTRIBUTE, claimed_twice, marker_of, resolve_references, unresolved_references,
)
from qrvey_iac.core.manifest import Manifest
from qrvey_iac.core.order import naturally_sorted
from qrvey_iac.core.plan import STEP_PROGRESS, ActionBase, Plan, Step, execution_levels, fingerprint
from qrvey_iac.core.planner import Found, Live, build_plan, known_ids
from qrvey_iac.core.sealing import PLAIN, Sealer
from qrvey_iac.core.state import JournalDetail, JournalEntry, ResourceState, State
from qrvey_iac.journal import Settled, Settler, landing_window, recorded_resource, window_left
from qrvey_iac.ports import QrveyPort, StateStore

Progress = Callable[[str], None]
CREATE_ATTEMPTS = 4         # creates whose outcome stayed unknown, each checked before the next
UNKNOWN_OUTCOME_ERRORS = (OutcomeUnknownError, ServerError, TransportError, UnusableAnswerError)
KEY_CHECK_ID = "qrvey-iac-key-check"     # read by an empty state's refresh: no object has this id
DEFAULT_LOAD_TIMEOUT = 1800.0   # seconds a load may take (--load-timeout); Qrvey's long loads run ~10 min and more
LOAD_POLL_FIRST = 0.1           # seconds before the first status read of a load; doubled each time...
LOAD_POLL_MOST = 10.0           # ...up to this
LOAD_NOTE_EVERY = 30.0          # seconds between "still LOADING" lines while the status does not change
LOAD_DETAIL_KEYS = ("statusMessage", "errorMessage", "error", "message")   # what Qrvey said of a FAILED load


def _quiet(_: str) -> None:
    return None


class Meter(Protocol):
    """Counts of a long operation (a refresh, an apply), for a progress display: ``started``
    once, ``advanced`` as parts end, ``finished`` once, whatever happened. An ``advanced``
    after ``finished`` counts for nothing. flows.UI is one."""

    def started(self, total: int, what: str) -> None: ...
    def advanced(self, count: int = 1) -> None: ...
    def finished(self) -> None: ...


class QuietMeter:
    def started(self, total: int, what: str) -> None:
        return None

    def advanced(self, count: int = 1) -> None:
        return None

    def finished(self) -> None:
        return None


@dataclass
class Stop:
    """A request to stop: set by cli.py on SIGTERM or SIGINT (what CI cancellation sends).

    An apply that sees it starts no new step; the steps in flight end and are recorded, the
    state is saved, and apply raises StoppedError with its report (done, failed, not started)
    and ``exit_code``. ``applying`` says whether an apply is running (outside one there are
    only reads to stop, and the caller may cancel them outright)."""

    signal_name: str = ""
    exit_code: int = 0
    applying: bool = False

    @property
    def requested(self) -> bool:
        return bool(self.signal_name)

    def request(self, signal_name: str, exit_code: int) -> None:
        if not self.requested:
            self.signal_name, self.exit_code = signal_name, exit_code


@dataclass
class Engine:
    qrvey: QrveyPort
    store: StateStore
    progress: Progress = _quiet
    meter: Meter = field(default_factory=QuietMeter)
    parallelism: int = 10
    stop: Stop = field(default_factory=Stop)
    _version: int = field(default=0, init=False)
    _durable: int = field(default=0, init=False)
    _serial: int = field(default=0, init=False)       # the stored serial, as of this engine's last write
    _latest: State | None = field(default=None, init=False)
    _flushing: asyncio.Future | None = field(default=None, init=False)
    request_timeout: float = 30.0     # the client's: how long an unanswered write may still land follows from it
    load_timeout: float = DEFAULT_LOAD_TIMEOUT   # how long apply and `load` wait for a load to end
    # take each object's fingerprint as its answer arrives (Live.fingerprints), for a plan that
    # is saved or printed as JSON; a plan that is only shown, or applied at once, needs none
    pin: bool = True

    async def load(self, state: State, addresses: list[str]) -> list[str]:
        """Load the datasets at ``addresses`` (recorded in ``state``) and wait for each, as apply's
        load step does, ``parallelism`` at a time; an ApplyError lists every one that failed.
        Returns one line per dataset loaded."""
        limit = asyncio.Semaphore(self.parallelism)

        async def one(address: str) -> str:
            async with limit:
                resource = state.resources[address]
                if self.stop.requested:
                    raise ApplyError(f"not started: stopped by {self.stop.signal_name}")
                return await self.load_and_wait(self.qrvey, address, _app(resource), resource.datasetId)

        tasks = [asyncio.ensure_future(one(address)) for address in addresses]
        with _metered(self.meter, tasks, "datasets loaded"):
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        crashed = next((o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, Exception)), None)
        if crashed is not None:
            raise crashed
        failed = [(a, o) for a, o in zip(addresses, outcomes) if isinstance(o, BaseException)]
        unexpected = next((o for _, o in failed if not isinstance(o, QrveyIacError)), None)
        if unexpected is not None:
            raise unexpected
        if failed:
            done = [a for a, o in zip(addresses, outcomes) if not isinstance(o, BaseException)]
            lines = [f"load stopped: {len(failed)} of {len(addresses)} dataset(s) not loaded",
                     *(f"  {address}: {exc}" for address, exc in failed),
                     f"loaded: {len(done)}" + (f" ({', '.join(done)})" if done else "")]
            if self.stop.requested:
                raise StoppedError("\n".join(lines), self.stop.exit_code)
            raise ApplyError("\n".join(lines))
        return [f"{a}{o}" for a, o in zip(addresses, outcomes)]

    async def load_and_wait(self, qrvey: QrveyPort, address: str, app: AppRef, dataset_id: str) -> str:
        """Start a load of ``dataset_id`` (unless one is running: LOADING), then read its status,
        backing off, until LOADED or ACTIVE. FAILED, a dataset gone, ``load_timeout`` or a stop
        request raise a QrveyIacError naming the dataset; the load goes on in Qrvey, and the next
        plan reads its status (nothing is journaled: a load is owed as long as Qrvey says so)."""
        status = _status(await self._loaded_object(qrvey, address, app, dataset_id))
        if status == "LOADING":
            self.progress(f"{address}: a load is already running; waiting for it (up to {self.load_timeout:g}s)")
        else:
            try:
                await qrvey.load(app, dataset_id)
            except UNKNOWN_OUTCOME_ERRORS:
                # the answer was lost: a load that started shows as LOADING (or has already ended)
                after = _status(await self._loaded_object(qrvey, address, app, dataset_id))
                if after not in ("LOADING", "FAILED", *LOADED_STATUSES):
                    raise
            self.progress(f"{address}: load started (status was {status or 'not given'}); waiting up to "
                          f"{self.load_timeout:g}s for LOADED or ACTIVE")
        started = time.monotonic()
        pause, noted, last = LOAD_POLL_FIRST, started, status
        while True:
            waited = time.monotonic() - started
            if self.stop.requested:
                raise ApplyError(f"stopped by {self.stop.signal_name} while waiting for the load of dataset "
                                 f"{dataset_id} (status {last}); the load goes on in Qrvey and the next plan "
                                 "or apply waits for it")
            if waited >= self.load_timeout:
                raise LoadTimeoutError(dataset_id, last or "UNKNOWN", waited, address)
            await asyncio.sleep(min(pause, self.load_timeout - waited))
            pause = min(pause * 2, LOAD_POLL_MOST)
            live = await self._loaded_object(qrvey, address, app, dataset_id)
            status = _status(live)
            if status in LOADED_STATUSES:
                return f" [id={dataset_id}, status {status}]"
            if status == "FAILED":
                raise LoadFailedError(dataset_id, status, _load_detail(live), address)
            now = time.monotonic()
            if status != last or now - noted >= LOAD_NOTE_EVERY:
                self.progress(f"{address}: {status or 'no status'} after {now - started:.0f}s")
                noted, last = now, status

    async def _loaded_object(self, qrvey: QrveyPort, address: str, app: AppRef, dataset_id: str) -> dict:
        live = await qrvey.read(app, dataset_id)
        if live is None:
            raise ApplyError(f"dataset {dataset_id} is gone from Qrvey: nothing to load (run plan: it will "
                             f"create {address} again)")
        return live

    async def refresh(self, manifest: Manifest, state: State, *, survey: bool = False) -> Live:
        """GET every object the state knows (and external view sources), concurrently."""
        return (await self.refresh_while(state, _ready(manifest), survey=survey))[1]

    async def refresh_while(
        self, state: State, loading: Awaitable[Manifest], *, survey: bool = False
    ) -> tuple[Manifest, Live]:
        """Refresh while the manifests are still being read: the state says what to GET, so
        the calls go out first and ``loading`` runs in the gaps between the answers. Then the
        external view sources the manifests name. A manifest error wins over a failed read
        (the reads are cancelled or their error dropped): fix the input first.

        Then the apps are listed, one call each (``_survey``): those holding a view of the state,
        those where the manifests put a resource the state does not record, and with ``survey``
        (drift) every app of the manifests."""
        addresses = sorted(state.resources)
        started = time.monotonic()
        reads = [asyncio.ensure_future(self._pinned_read(state.resources[a])) for a in addresses]
        early = _minted_apps(state)
        claims = asyncio.ensure_future(self._listings(early))     # its listings alongside the GETs
        with _metered(self.meter, reads, "objects refreshed"):    # counted from the first answer
            manifest, live = await self._refreshed(loading, state, [*reads, claims])
        live = await self._survey(manifest, state, live, claims.result(), survey)
        if addresses:
            self.progress(f"Refreshed {len(addresses)} objects ({time.monotonic() - started:.1f}s)")
        return manifest, live

    async def _refreshed(
        self, loading: Awaitable[Manifest], state: State, reads: list[asyncio.Future]
    ) -> tuple[Manifest, Live]:
        """refresh_while once its reads are out (one GET per address, then the check of the
        markers): the manifest, then the sources it names, and what uses each object the
        manifests no longer have whose kind guards its delete (a connection's datasets)."""
        addresses = sorted(state.resources)
        try:
            manifest = await loading
        except BaseException:
            await _cancelled(reads)    # the manifest's error is the one to report
            raise
        if addresses:                  # said once the input is known good: a manifest error comes alone
            self.progress(f"Refreshing {len(addresses)} objects...")
        externals = {
            r.external_source.datasetId: r.external_source
            for r in manifest.resources.values() if r.external_source
        }
        if not addresses and not externals:
            await self._check_key(manifest)
        source_reads = [asyncio.ensure_future(self.qrvey.read(AppRef(s.userId, s.appId), s.datasetId))
                        for s in externals.values()]
        guarded = [a for a in addresses
                   if a not in manifest.resources and KINDS[state.resources[a].kind].guards_delete]
        user_reads = [asyncio.ensure_future(_users(self.qrvey, state.resources[a])) for a in guarded]
        try:
            results = await asyncio.gather(*reads, *source_reads, *user_reads)
        except BaseException:
            await _cancelled([*reads, *source_reads, *user_reads])   # none left running once the client closes
            raise
        pinned = results[: len(addresses)]
        sources = results[len(addresses) + 1: len(addresses) + 1 + len(source_reads)]
        users = results[len(addresses) + 1 + len(source_reads):]
        objects = {a: obj for a, (obj, _) in zip(addresses, pinned)}
        fingerprints = {a: pin for a, (_, pin) in zip(addresses, pinned) if pin is not None}
        return manifest, Live(objects=objects, sources=dict(zip(externals, sources)), fingerprints=fingerprints,
                              users=dict(zip(guarded, users)), pinned=self.pin)

    async def _check_key(self, manifest: Manifest) -> None:
        """With nothing to read (an empty state), one GET in the first app the manifests name, of
        an id no object has (a 404 when the key is right): a wrong API key is refused by plan,
        before anything is shown as planned, not by apply's first write."""
        apps = sorted({(r.app.user_id, r.app.app_id) for r in manifest.resources.values()})
        if apps:
            await self.qrvey.read(AppRef(*apps[0]), KEY_CHECK_ID)

    async def _listings(self, apps: list[tuple[str, str]]) -> dict[tuple[str, str], list[dict]]:
        """One Get All Datasets listing per app."""
        listings = await asyncio.gather(*(self.qrvey.list_app(AppRef(user, app)) for user, app in apps))
        return dict(zip(apps, listings))

    async def _survey(
        self, manifest: Manifest, state: State, live: Live, listings: dict[tuple[str, str], list[dict]], survey: bool
    ) -> Live:
        """What the listings say, each app listed once: the marked objects no state resource
        records (read when this environment's marker names an address the manifests put in that
        app and the state does not record: the plan imports it rather than create a second one),
        the objects ``spec.adopt`` names, and the claims check (``_check_claims``). Every app of
        the manifests is listed for drift (``survey``) and when a spec.adopt is to be looked for
        (an id in another app is then reported as such)."""
        untracked = [r for a, r in manifest.resources.items() if a not in state.resources]
        adopting = {r.address: r.definition.adopt_id(r.spec) for r in untracked if r.definition.adopt_id(r.spec)}
        every_app = survey or bool(adopting)
        looked_at = manifest.resources.values() if every_app else untracked
        wanted = {(r.app.user_id, r.app.app_id) for r in looked_at if not r.definition.listed_apart}
        more = sorted(wanted - set(listings))
        if more:
            listings = {**listings, **await self._listings(more)}
        apart = {(r.definition.name, r.app.user_id, r.app.app_id) for r in looked_at if r.definition.listed_apart}
        apart |= {(r.kind, r.userId, r.appId) for r in state.resources.values()
                  if not KINDS[r.kind].client_minted_id and KINDS[r.kind].listed_apart}
        listings = _joined(listings, await self._listed_apart(sorted(apart)))
        self._check_claims(list(listings.values()), state, manifest.environment)
        found = _marked(listings, state)
        places = {(r.address, r.app.app_id) for r in untracked}
        to_read = {f.dataset_id: f for f in found
                   if f.environment == manifest.environment and (f.address, f.app_id) in places}
        where = {item.get("datasetId"): app for app, items in listings.items() for item in items}
        adopted: dict[str, Found | None] = {}
        for address, dataset_id in adopting.items():
            user_app = where.get(dataset_id)
            adopted[address] = None if user_app is None else Found(address, dataset_id, user_app[1], user_app[0])
            if user_app is not None and user_app[1] == manifest.resources[address].app.app_id:
                to_read[dataset_id] = adopted[address]
        ids = sorted(to_read)
        answers = await asyncio.gather(*(KINDS.of_address(to_read[i].address).read(
            self.qrvey, AppRef(to_read[i].user_id, to_read[i].app_id), i) for i in ids))
        read = dict(zip(ids, answers))

        def with_answer(item: Found) -> Found:
            return replace(item, obj=read[item.dataset_id]) if item.dataset_id in read else item

        return replace(live, untracked=tuple(map(with_answer, found)),
                       adopted={a: with_answer(f) if f else None for a, f in adopted.items()})

    async def _listed_apart(self, wanted: list[tuple[str, str, str]]) -> dict[tuple[str, str], list[dict]]:
        """Each (kind, user, app) of a kind whose objects are not in an app's dataset listing
        (connections: ``Kind.listed_apart``), listed with that kind's own listing."""
        listings = await asyncio.gather(*(KINDS[kind].listing(self.qrvey, AppRef(user, app))
                                          for kind, user, app in wanted))
        joined: dict[tuple[str, str], list[dict]] = {}
        for (_, user, app), items in zip(wanted, listings):
            joined.setdefault((user, app), []).extend(items)
        return joined

    def _check_claims(self, listings: list[list[dict]], state: State, environment: str) -> None:
        """An object in a listed app with the marker of an address the state records with another
        id (a create that landed past its landing window, a copy) is reported, never silently
        left untracked."""
        problems = [line for items in listings for line in claimed_twice(items, state, environment)]
        if problems:
            raise UndecidedError(
                f"{len(problems)} object(s) in Qrvey claim an address the state records with another id:\n"
                + "\n".join(f"- {line}" for line in problems)
                + "\nDelete the one you do not want in Qrvey (or `state rm` the address to take the other "
                  "under management again), then run the command again."
            )

    async def _pinned_read(self, resource: ResourceState) -> tuple[dict | None, str | None]:
        """An object's compared part and its fingerprint, taken as the answer arrives rather
        than all at the end; the rest of the answer is let go at once."""
        kind = KINDS[resource.kind]
        obj = await kind.read(self.qrvey, _app(resource), resource.datasetId)
        return kind.compared_part(obj), fingerprint(obj) if self.pin else None

    async def plan(self, manifest: Manifest, state: State, environment: str) -> tuple[Plan, Live]:
        live = await self.refresh(manifest, state)
        return build_plan(manifest, state, live, environment=environment), live

    async def settle_journal(self, state: State, manifest: Manifest | None = None, *, write: bool = True) -> Settled:
        """Decide the outcome of writes a crashed or failed run left pending (see journal.py),
        ``parallelism`` entries at a time.

        A create that has not landed but may still (a dataset's id, a view within its landing
        window) stays in the journal: the create planned again picks it up (_ApplyRun._create).
        """
        return await Settler(self.qrvey, self.progress, manifest, write, self.landing_window,
                             self.parallelism).settle(state)

    @property
    def landing_window(self) -> float:
        return landing_window(self.request_timeout)

    async def apply(self, plan: Plan, state: State, sealer: Sealer = PLAIN) -> State:
        """Run ``plan``; ``sealer`` (the manifest's) keys the hashes and conceals the secret ids
        recorded in the state and its journal."""
        run = _ApplyRun(self, plan, state, sealer)
        self.stop.applying = True          # until the state is folded: a signal then cancels nothing
        try:
            try:
                await run.execute()
            except BaseException:
                if self._durable == self._version:       # all written: fold it, keep the apply's error
                    with contextlib.suppress(StateError):
                        await asyncio.shield(self._compact())
                raise
            await self._compact()
        finally:
            self.stop.applying = False
        return run.state

    async def adopt(self, action: ActionBase, state: State, sealer: Sealer = PLAIN) -> State:
        """Record the import ``action`` at once, as apply's import step does, without its update
        (``qrvey-iac import``: the next plan shows what the object still needs)."""
        run = _ApplyRun(self, Plan(actions=(action,)), state, sealer)
        await run._import(action, _StepCalls(self.qrvey))
        await self.durable()
        await self._compact()
        return run.state

    async def _compact(self) -> None:
        """The stored state made self-contained after apply's last write (StateStore.compact)."""
        try:
            await asyncio.to_thread(self.store.compact)
        except (StateWriteError, OSError) as exc:
            raise StateError(
                f"{_write_failure(exc)}; the state is complete in the file and its write-ahead sidecar "
                "(.wal) beside it: keep both"
            ) from None

    def save(self, state: State) -> State:
        """Write ``state`` (as read, or as last written) with the next serial."""
        written = state.bumped()
        self.store.write(written, expected_serial=state.serial)
        self._serial = written.serial
        return written

    async def commit(self, state: State, *, wait: bool = True) -> None:
        """Make ``state`` durable; concurrent commits share one write (group commit).

        ``wait=False`` schedules the write and returns: for a result whose journal entry is
        already durable, so a crash before the write loses nothing (the next run settles
        the entry with a read). ``durable()`` waits for every scheduled write.
        """
        self._latest = state
        self._version += 1
        wanted = self._version
        self._kick()
        while wait and self._durable < wanted:
            await asyncio.shield(self._flushing)
            self._kick()

    async def durable(self) -> None:
        """Wait until the latest committed state is on disk; raises what a write raised."""
        self._kick()
        while self._durable < self._version:
            await asyncio.shield(self._flushing)
            self._kick()

    def _kick(self) -> None:
        if self._durable < self._version and (self._flushing is None or self._flushing.done()):
            if self._flushing is not None and not self._flushing.cancelled():
                self._flushing.exception()   # retrieved: its waiters got it; the next write retries
            self._flushing = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        while self._durable < self._version:
            version, state = self._version, self._latest
            expected = max(self._serial, state.serial)    # the state's as read, or ours as last written
            try:
                await asyncio.to_thread(self.store.write, state.model_copy(update={"serial": expected + 1}), expected)
            except (StateWriteError, OSError) as exc:
                raise StateError(
                    f"{_write_failure(exc)}; every call already made has its journal entry on disk, and "
                    "the next plan or apply settles it with Qrvey"
                ) from None
            self._serial = expected + 1
            self._durable = version


def _write_failure(exc: Exception) -> str:
    """What a failed state write says: the store's own message names the file."""
    if isinstance(exc, StateWriteError):
        return str(exc)
    return f"cannot write the state file ({exc.__class__.__name__}: {exc})"


@contextlib.contextmanager
def _metered(meter: Meter, tasks: list[asyncio.Future], what: str) -> Iterator[None]:
    """``meter`` counts ``tasks`` as they end (those already done at once) while the block
    runs; nothing when there are none."""
    if not tasks:
        yield
        return
    meter.started(len(tasks), what)
    meter.advanced(sum(task.done() for task in tasks))
    for task in tasks:
        if not task.done():
            task.add_done_callback(lambda _: meter.advanced())
    try:
        yield
    finally:
        meter.finished()


async def _cancelled(tasks: list[asyncio.Future]) -> None:
    """Cancel ``tasks`` and wait for them to end, their errors retrieved."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled():
            task.exception()


async def _ready(manifest: Manifest) -> Manifest:
    return manifest


def _app(resource: ResourceState) -> AppRef:
    return AppRef(resource.userId, resource.appId)


async def _users(qrvey: QrveyPort, resource: ResourceState) -> list[dict]:
    return await KINDS[resource.kind].users(qrvey, _app(resource), resource.datasetId)


def _status(live: dict) -> str:
    status = live.get("status")
    return status.upper() if isinstance(status, str) else ""


def _load_detail(live: dict) -> str:
    """What Qrvey said of a FAILED load, when its answer says anything."""
    for key in LOAD_DETAIL_KEYS:
        value = live.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _joined(*parts: dict[tuple[str, str], list[dict]]) -> dict[tuple[str, str], list[dict]]:
    """Listings of the same apps put together (an app's datasets and its connections)."""
    joined: dict[tuple[str, str], list[dict]] = {}
    for part in parts:
        for app, items in part.items():
            joined.setdefault(app, []).extend(items)
    return joined


def _marked(listings: dict[tuple[str, str], list[dict]], state: State) -> list[Found]:
    """The listed objects that carry a marker (of any environment) and that no state resource records."""
    tracked = {r.datasetId for r in state.resources.values()}
    found = []
    for (user, app), items in listings.items():
        for item in items:
            address, environment = marker_of(item)
            dataset_id = item.get("datasetId")
            if address is not None and isinstance(dataset_id, str) and dataset_id not in tracked:
                found.append(Found(address, dataset_id, app, user, environment))
    return found


def _minted_apps(state: State) -> list[tuple[str, str]]:
    """The apps holding a server-minted id (views) of the state: listed alongside the GETs."""
    return sorted({(r.userId, r.appId) for r in state.resources.values() if not KINDS[r.kind].client_minted_id})


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _resealed(state: State, plan: Plan, sealer: Sealer) -> State:
    """The state with what an older release recorded in clear sealed: a secret source id, a
    plain hash of a document holding a secret. Written by the apply's first state write."""
    if not sealer.secrets:
        return state
    for action in plan.actions:
        current = state.resources.get(action.address)
        if current is None:
            continue
        kind = KINDS[current.kind]
        update = {}
        if current.source and sealer.conceal_ids(current.source) != current.source:
            update["source"] = sealer.conceal_ids(current.source)
        if (action.desired is not None and sealer.holds_secret(action.desired)
                and current.applied_hash == kind.applied_hash(action.desired)):    # the plain hash
            update["applied_hash"] = kind.applied_hash(action.desired, sealer)
        if update:
            state = state.with_resource(action.address, current.model_copy(update=update))
    return state


class _StepCalls:
    """The Qrvey port as one apply step sees it: ``reached`` turns True once a write of the step
    may have reached Qrvey (answered, or failed without proof that nothing was sent), or when
    the step takes over an earlier request that may still land. A step that fails while
    ``reached`` is False, with an error that proves nothing was sent, left nothing to settle:
    its journal entry is removed at once."""

    def __init__(self, qrvey: QrveyPort) -> None:
        self._qrvey = qrvey
        self.reached = False
        self.entry: JournalEntry | None = None      # the step's journal entry, once written

    async def _write(self, call: Awaitable):
        try:
            answer = await call
        except QrveyIacError as exc:
            self.reached = self.reached or not exc.nothing_sent
            raise
        except BaseException:
            self.reached = True          # cancelled in flight: it may have been sent
            raise
        self.reached = True
        return answer

    async def read(self, app: AppRef, dataset_id: str) -> dict | None:
        return await self._qrvey.read(app, dataset_id)

    async def list_app(self, app: AppRef) -> list[dict]:
        return await self._qrvey.list_app(app)

    async def create_dataset(self, app: AppRef, body: dict) -> dict:
        return await self._write(self._qrvey.create_dataset(app, body))

    async def clone_view(self, app: AppRef, source: AppRef, connection_id: str, name: str,
                         custom_attributes: dict | None) -> dict:
        return await self._write(self._qrvey.clone_view(app, source, connection_id, name, custom_attributes))

    async def update_dataset(self, app: AppRef, dataset_id: str, body: dict) -> None:
        return await self._write(self._qrvey.update_dataset(app, dataset_id, body))

    async def apply_changes(self, app: AppRef, dataset_id: str) -> dict:
        return await self._write(self._qrvey.apply_changes(app, dataset_id))

    async def set_shared(self, app: AppRef, dataset_id: str, shared: bool) -> dict:
        return await self._write(self._qrvey.set_shared(app, dataset_id, shared))

    async def delete(self, app: AppRef, dataset_id: str) -> bool:
        return await self._write(self._qrvey.delete(app, dataset_id))

    async def create_connection(self, app: AppRef, body: dict) -> dict:
        return await self._write(self._qrvey.create_connection(app, body))

    async def read_connection(self, app: AppRef, connection_id: str) -> dict | None:
        return await self._qrvey.read_connection(app, connection_id)

    async def update_connection(self, app: AppRef, connection_id: str, body: dict) -> dict:
        return await self._write(self._qrvey.update_connection(app, connection_id, body))

    async def delete_connection(self, app: AppRef, connection_id: str) -> bool:
        return await self._write(self._qrvey.delete_connection(app, connection_id))

    async def list_connections(self, app: AppRef) -> list[dict]:
        return await self._qrvey.list_connections(app)

    async def load(self, app: AppRef, dataset_id: str) -> dict:
        return await self._write(self._qrvey.load(app, dataset_id))


class _ApplyRun:
    """One apply: walks the levels, journals each write, saves state after each call."""

    def __init__(self, engine: Engine, plan: Plan, state: State, sealer: Sealer = PLAIN) -> None:
        self.engine = engine
        self.plan = plan
        self.state = _resealed(state, plan, sealer)
        self.sealer = sealer
        self.done: list[str] = []
        self.failed: list[tuple[str, Exception]] = []
        self.in_flight: set[str] = set()            # steps started and not ended
        self.unsent: set[str] = set()               # failed steps whose writes surely never reached Qrvey
        self.write_failure: StateError | None = None   # a journal write that failed: stop
        # Twice the HTTP slots: while P calls are in flight, P more steps write their journal
        # entries, so a freed slot is used at once instead of after a durable write.
        self.limit = asyncio.Semaphore(2 * engine.parallelism)

    @property
    def _stopping(self) -> bool:
        """No new step starts: a signal asked to stop, or the state could not be written."""
        return self.engine.stop.requested or self.write_failure is not None

    async def execute(self) -> None:
        levels = execution_levels(self.plan)
        self.engine.meter.started(sum(len(level) for level in levels), "operations")
        try:
            await self._execute(levels)
        finally:
            self.engine.meter.finished()

    async def _execute(self, levels: list[list[Step]]) -> None:
        try:
            for level in levels:
                if not self._stopping:
                    # every step of the level ends (or fails) before anything is raised: none may
                    # still write the state once apply has returned and the lock is released
                    outcomes = await asyncio.gather(*(self._guarded(step) for step in level),
                                                    return_exceptions=True)
                    crashed = next((o for o in outcomes if isinstance(o, BaseException)), None)
                    if crashed is not None:
                        raise crashed
                if self.failed or self._stopping:
                    raise self._stopped(levels)
        except (ApplyError, StateError) as stopped:
            await self._durable(str(stopped))
            raise
        except BaseException:
            await asyncio.shield(self._durable(""))
            if self.engine.stop.requested:           # cancelled by a second signal: say what is where
                raise self._stopped(levels) from None
            raise
        await self._durable("")

    def _stopped(self, levels: list[list[Step]]) -> QrveyIacError:
        stop = self.engine.stop
        if self.write_failure is not None:
            return StateError(self._failure_report(levels, f"apply stopped: {self.write_failure}"))
        if stop.requested:
            how = ("the calls in flight were cancelled (a second signal)" if self.in_flight
                   else "the calls in flight were let finish")
            return StoppedError(self._failure_report(
                levels, f"apply stopped by {stop.signal_name}: {how}; no new call was started"), stop.exit_code)
        return ApplyError(self._failure_report(levels))

    async def _durable(self, report: str) -> None:
        """Wait for the results still being written; a failure there keeps the apply's report."""
        try:
            await self.engine.durable()
        except StateError as exc:     # re-raised as it is (a StateConflictError stays one), report first
            if report:
                said = str(exc) in report            # the write that failed before failed again
                exc.args = (report if said else f"{report}\n{exc}", *exc.args[1:])
            raise

    async def _guarded(self, step: Step) -> None:
        try:
            await self._step(step)
        finally:
            self.engine.meter.advanced()             # done, failed or not started: it is over

    async def _step(self, step: Step) -> None:
        async with self.limit:
            if self._stopping:
                return                               # not started: reported so
            action = self.plan.actions[step.action_index]
            present, past = STEP_PROGRESS[step.op]
            self.engine.progress(f"{action.address}: {present}...")
            started = time.monotonic()
            self.in_flight.add(step.key)
            api = _StepCalls(self.engine.qrvey)
            try:
                action = self._resolved(action)
                detail = await self._run(step, action, api)
            except StateError as exc:
                # its journal entry (or its record) could not be written, so its call was not
                # sent: not started, and nothing more starts
                self.in_flight.discard(step.key)
                if self.write_failure is None:
                    self.write_failure = exc
                self.engine.progress(f"{action.address}: {step.op} not started: the state could not be written")
                return
            except QrveyIacError as exc:
                self.in_flight.discard(step.key)
                if exc.nothing_sent and not api.reached:
                    await self._unsent(step, api.entry)
                self.failed.append((step.key, exc))
                self.engine.progress(f"{action.address}: {step.op} failed: {exc}")
                return
            self.in_flight.discard(step.key)
            self.done.append(step.key)
            elapsed = time.monotonic() - started
            self.engine.progress(f"{action.address}: {past} after {elapsed:.1f}s{detail}")

    def _resolved(self, action: ActionBase) -> ActionBase:
        """``action`` with the references of its document (``(known after apply: connection.x)``)
        resolved from the state as it is now: what it needs was created in an earlier level."""
        if action.desired is None or not action.depends_on:       # no dependency, no reference (reference())
            return action
        desired = resolve_references(action.desired, known_ids(self.state))   # looked up, not copied per step
        missing = unresolved_references(desired)
        if missing:
            raise ApplyError(f"{', '.join(sorted(missing))} has no id in the state yet: nothing was sent for "
                             f"{action.address}; plan again")
        return action.model_copy(update={"desired": desired})

    async def _unsent(self, step: Step, entry: JournalEntry | None) -> None:
        """A step that failed before any of its writes reached Qrvey: its journal entry holds
        nothing to settle and goes at once (not waited for: kept, it would only be settled by
        a read that finds nothing done)."""
        self.unsent.add(step.key)
        if entry is not None:
            self.state = self.state.without_journal(entry.id)
            await self.engine.commit(self.state, wait=False)

    async def _run(self, step: Step, action: ActionBase, api: _StepCalls) -> str:
        if step.op == "delete":
            return await self._delete(action, api)
        if step.op == "create":
            return await self._create(action, api)
        if step.op == "move":
            return await self._move(action, api)
        if step.op == "forget":
            return await self._forget(action, api)
        if step.op == "import":
            return await self._import(action, api)
        current = self.state.resources[action.address]
        if step.op == "load":        # after the create or update of the same action (execution_levels)
            return await self.engine.load_and_wait(api, action.address, _app(current), current.datasetId)
        if step.op == "update":
            return await self._update(action, api)
        shared = step.op == "share"
        entry = api.entry = await self._journal(step.op, action, _app(current), current.datasetId, {"shared": shared})
        await api.set_shared(_app(current), current.datasetId, shared)
        await self._record(action.address, current.model_copy(update={"shared": shared}), entry)
        return f" [id={current.datasetId}]"

    async def _update(self, action: ActionBase, api: _StepCalls) -> str:
        current = self.state.resources[action.address]
        kind = KINDS[action.kind]
        entry = None
        if any(change.path != "protect" for change in action.changes):
            entry = api.entry = await self._journal("update", action, _app(current), current.datasetId,
                                                    {"previous_hash": current.applied_hash})
            await kind.update(api, _app(current), current.datasetId, action.desired or {})
        await self._record(action.address, current.model_copy(
            update={"applied_hash": kind.applied_hash(action.desired, self.sealer), "protect": action.protect,
                    "managed": kind.managed_fields(action.desired),
                    "applied_fields": kind.applied_fields(action.desired, self.sealer)}), entry)
        return f" [id={current.datasetId}]"

    async def _move(self, action: ActionBase, api: _StepCalls) -> str:
        """kind: Moved: rename the state entry (its views' recorded source follows), durably,
        then update the object in place with the move's changes (the marker names the new
        address). A crash between the two leaves the move done in the state and the update
        to the next plan, as a plain update; nothing is deleted or created."""
        source = action.previous_address or ""
        if source in self.state.resources and action.address not in self.state.resources:
            self.state = self.state.with_move(source, action.address)
            await self.engine.commit(self.state)
        detail = await self._update(action, api)
        return f" from {source}{detail}"

    async def _forget(self, action: ActionBase, api: _StepCalls) -> str:
        """kind: Removed: take the ownership marker off the object (so that nothing adopts it
        again as this address), then drop its state entry; it stays in Qrvey. Not journaled:
        taking a marker off is the same done twice, and until the entry is dropped the next
        plan shows the forget again."""
        current = self.state.resources.get(action.address)
        if current is None:
            return " (not in state)"
        kind = KINDS[current.kind]
        live = await kind.read(api, _app(current), current.datasetId)
        kept = ""
        if live is None:
            kept = " (it was already gone from Qrvey)"
        elif kind.carries_marker(live, action.address):
            await kind.update(api, _app(current), current.datasetId, kind.released(live, action.address))
        self.state = self.state.without_resource(action.address)
        await self.engine.commit(self.state)
        return f" [id={current.datasetId}]{kept}"

    async def _create(self, action: ActionBase, api: _StepCalls) -> str:
        """Journal the create with what finds its result again, then send it. An unknown outcome
        is settled by the kind's find_landed (a GET of the client-chosen id, or a list of the app
        for the marker, made once the request can no longer land), and the create is repeated
        only when nothing landed. An earlier create of the address that may still land (kept in
        the journal by a settle) is taken over: a dataset's id is sent again, a view is looked
        for first."""
        kind = KINDS[action.kind]
        qrvey = api
        app = AppRef(action.app.userId, action.app.appId)
        try:
            detail = await kind.prepare_create(qrvey, self.state, app, action.source)
        except ApplyError as exc:
            raise ApplyError(f"{action.address}: {exc}") from None
        earlier = self._earlier_create(action.address, app)
        dataset_id = (earlier.datasetId if earlier else str(uuid.uuid4())) if kind.client_minted_id else None
        marker = {} if kind.client_minted_id else {"marker": {OWNER_ATTRIBUTE: action.address}}
        entry = api.entry = await self._journal("create", action, app, dataset_id, {**detail, **marker},
                                                replacing=earlier)
        api.reached = earlier is not None      # the earlier request may still land
        # the journal (on disk) holds the source with its secret ids concealed; the calls need them
        calls = entry.model_copy(update={"detail": entry.detail.model_copy(update={"source": detail.get("source")})})
        desired = action.desired or {}
        created = found = None     # created: what a create answered; found: what a look saw landed
        if earlier is not None:
            found = await self._landed(kind, calls, window_left(entry, self.engine.landing_window))
            if found is None:
                entry = await self._resent(entry)       # its window starts again with this request
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            if found is not None:
                break
            sent = time.monotonic()
            try:
                created = await kind.create(qrvey, calls, desired)
                break
            except (OutcomeUnknownError, BadRequestError) as exc:
                if isinstance(exc, BadRequestError) and not kind.client_minted_id:
                    raise
                left = self.engine.landing_window - (time.monotonic() - sent)
                found = await self._landed(kind, calls, left)   # landed (or an earlier try did, late)?
                if found is None and (isinstance(exc, BadRequestError) or attempt == CREATE_ATTEMPTS):
                    raise
                if found is None:
                    entry = await self._resent(entry)
        if created is None:        # found landed, by a look after any attempt, the last one included:
            created = await kind.finish_landed(qrvey, calls, found, desired)    # what the create still owes
        await self._finish(entry, recorded_resource(entry, created))
        return f" [id={created['datasetId']}]"

    async def _import(self, action: ActionBase, api: _StepCalls) -> str:
        """Adopt ``action.dataset_id``: read it (still there, still untracked), then record it in
        the state; no write call. Its update, when the plan shows changes, is the next step, and
        until that step records the document applied, none is recorded (an update that fails
        leaves its changes planned from the manifests, not labelled drift)."""
        kind = KINDS[action.kind]
        app = AppRef(action.app.userId, action.app.appId)
        dataset_id = action.dataset_id or ""
        other = next((a for a, r in self.state.resources.items() if r.datasetId == dataset_id), None)
        if other is not None:
            raise ApplyError(f"{dataset_id} is already recorded as {other}; nothing was imported")
        found = await kind.read(api, app, dataset_id)
        if found is None:
            raise ApplyError(f"{dataset_id} is no longer in app {app.app_id}; nothing was imported (plan again)")
        unchanged = not action.changes
        resource = ResourceState(
            kind=action.kind, datasetId=dataset_id, appId=app.app_id, userId=app.user_id,
            connectionId=found.get("connectionId"), shared=bool(found.get("isPublic", False)), protect=action.protect,
            applied_hash=kind.applied_hash(action.desired, self.sealer) if unchanged else "",
            source=self._recorded_source(action), managed=kind.managed_fields(action.desired),
            applied_fields=kind.applied_fields(action.desired, self.sealer) if unchanged else {},
        )
        await self._record(action.address, resource)
        return f" [id={dataset_id}]"

    def _recorded_source(self, action: ActionBase) -> dict[str, str] | None:
        """A view's source as the state records it (as a create records it: journal.py)."""
        source = action.source
        if not source:
            return None
        if "address" in source:
            recorded = self.state.resources.get(source["address"])
            if recorded is None:
                raise ApplyError(f"its source {source['address']} is not in the state; nothing was imported")
            return {"address": source["address"], "datasetId": recorded.datasetId,
                    "appId": recorded.appId, "userId": recorded.userId}
        return self.sealer.conceal_ids(dict(source))

    def _earlier_create(self, address: str, app: AppRef) -> JournalEntry | None:
        """A create of ``address`` in ``app`` that a settle kept in the journal: it may still land."""
        return next((e for e in self.state.journal if e.op == "create" and e.address == address
                     and (e.userId, e.appId) == (app.user_id, app.app_id)), None)

    async def _landed(self, kind, entry: JournalEntry, left: float) -> dict | None:
        """What ``entry``'s create made, if it landed. A server-minted id not found is looked for
        again once the request can no longer land, ``left`` seconds from now (a dataset's id
        needs no wait: sent again, a late landing is refused as a duplicate id)."""
        qrvey = self.engine.qrvey
        found = await kind.find_landed(qrvey, entry, self.state)
        if found is not None or kind.client_minted_id or left <= 0:
            return found
        self.engine.progress(f"{entry.address}: the create's outcome is unknown and it has not landed; "
                             f"waiting {left:.1f}s, as long as it may still land, before looking again")
        await asyncio.sleep(left)
        return await kind.find_landed(qrvey, entry, self.state)

    async def _resent(self, entry: JournalEntry) -> JournalEntry:
        """The entry with ``started`` now, durable before the create is sent again."""
        again = entry.model_copy(update={"started": _now()})
        self.state = self.state.without_journal(entry.id).with_journal(again)
        await self.engine.commit(self.state)
        return again

    async def _delete(self, action: ActionBase, api: _StepCalls) -> str:
        current = self.state.resources.get(action.address)
        if current is None:
            return " (not in state)"
        entry = api.entry = await self._journal("delete", action, _app(current), current.datasetId, {})
        existed = await KINDS[action.kind].delete(api, _app(current), current.datasetId)
        self.state = self.state.without_resource(action.address).without_journal(entry.id)
        await self.engine.commit(self.state, wait=False)
        return "" if existed else " (it was already gone)"

    async def _journal(
        self, op: str, action: ActionBase, app: AppRef, dataset_id: str | None, detail: dict,
        replacing: JournalEntry | None = None,
    ) -> JournalEntry:
        kind = KINDS[action.kind]
        if detail.get("source"):
            detail = {**detail, "source": self.sealer.conceal_ids(detail["source"])}
        entry = JournalEntry(
            id=str(uuid.uuid4()), op=op,
            address=action.address, datasetId=dataset_id, appId=app.app_id, userId=app.user_id,
            detail=JournalDetail(kind=action.kind, protect=action.protect,
                                 applied_hash=kind.applied_hash(action.desired, self.sealer),
                                 managed=kind.managed_fields(action.desired),
                                 applied_fields=kind.applied_fields(action.desired, self.sealer), **detail),
            started=replacing.started if replacing else _now(),   # taken over: its request may still land
        )
        if replacing is not None:
            self.state = self.state.without_journal(replacing.id)
        self.state = self.state.with_journal(entry)
        await self.engine.commit(self.state)
        return entry

    async def _finish(self, entry: JournalEntry, resource: ResourceState) -> None:
        """Record a result. Not waited for: the entry, durable since before the call, covers a
        crash until this write lands (one durable write per step instead of two)."""
        self.state = self.state.with_resource(entry.address, resource).without_journal(entry.id)
        await self.engine.commit(self.state, wait=False)

    async def _record(self, address: str, resource: ResourceState, entry: JournalEntry | None = None) -> None:
        self.state = self.state.with_resource(address, resource)
        if entry is not None:
            self.state = self.state.without_journal(entry.id)
        await self.engine.commit(self.state, wait=entry is None)     # no entry: this write is the record

    def _failure_report(self, levels: list[list[Step]], headline: str = "") -> str:
        """What is done (in the state), what failed (and whether its outcome is known), what
        was cut off in flight, what is not started."""
        failed = dict(self.failed)
        pending = [s.key for level in levels for s in level
                   if s.key not in self.done and s.key not in failed and s.key not in self.in_flight]
        journaled = {entry.address for entry in self.state.journal}
        lines = [headline or f"apply stopped: {len(self.failed)} operation(s) failed"]
        for key, exc in self.failed:
            unknown = key.split(":", 1)[1] in journaled and isinstance(exc, UNKNOWN_OUTCOME_ERRORS)
            if key in self.unsent:
                verdict = "failed (nothing was sent)"
            elif unknown:
                verdict = ("outcome unknown (kept in the state's journal: the next plan or apply checks "
                           "Qrvey and records what landed)")
            else:
                verdict = "failed"
            lines.append(f"  {key}: {verdict}: {exc}")
        shown = f" ({', '.join(self.done)})" if len(self.done) <= 20 else ""
        if self.write_failure is None:
            lines.append(f"done and recorded in state: {len(self.done)}{shown}")
        else:
            lines.append(f"done in Qrvey: {len(self.done)}{shown}; each is recorded in the state, or kept in "
                         "its journal where the state could not be written (the next plan or apply settles it)")
        if self.in_flight:
            cut = naturally_sorted(self.in_flight)
            lines.append(f"cut off in flight: {len(cut)} ({', '.join(cut)}): kept in the state's journal; the "
                         "next plan or apply checks Qrvey and records what landed")
        if pending:
            lines.append(f"not started: {len(pending)} ({', '.join(pending)})")
        lines.append("run plan to see what remains; apply again to finish")
        return "\n".join(lines)
