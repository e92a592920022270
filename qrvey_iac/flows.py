"""The command flows: lock, settle, refresh, plan, confirm, apply.

They print nothing themselves: a UI object from cli.py shows the plan, asks
for confirmation and reports progress.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from qrvey_iac.core.errors import (
    ApiError, ConfigError, Problem, QrveyIacError, StateError, StateLockedError, TransportError,
    did_you_mean_address,
)
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.manifest import Manifest
from qrvey_iac.core.plan import Plan, drift_part
from qrvey_iac.core.planner import Found, Live, build_plan, fingerprints_of, plan_import, refuse_blocked
from qrvey_iac.core.saved_plan import as_reviewed, check_fresh
from qrvey_iac.core.state import State
from qrvey_iac.core.kinds import KINDS
from qrvey_iac.engine import DEFAULT_LOAD_TIMEOUT, Engine, Stop
from qrvey_iac.ports import QrveyPort, Workspace

T = TypeVar("T")


class UI(Protocol):
    """What the flows show and ask. ``progress`` is a message line; ``started`` /
    ``advanced`` / ``finished`` count a long operation (engine.Meter) for a progress bar."""

    def progress(self, message: str) -> None: ...
    def started(self, total: int, what: str) -> None: ...
    def advanced(self, count: int = 1) -> None: ...
    def finished(self) -> None: ...
    def learn_secrets(self, secrets: frozenset[str]) -> None: ...
    def show_plan(self, plan: Plan) -> None: ...
    def confirm(self, command: str) -> bool: ...


ReadManifest = Callable[[], Awaitable[Manifest]]


@dataclass(frozen=True)
class RunOptions:
    lock_timeout: float = 0.0
    parallelism: int | None = None
    rate_limit: float | None = None          # requests per second, None: unlimited
    targets: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    refresh_only: bool = False
    auto_approve: bool = False
    command: str = "plan"
    stop: Stop = field(default_factory=Stop)   # set on SIGTERM / SIGINT: apply starts nothing new
    load_timeout: float = DEFAULT_LOAD_TIMEOUT  # seconds apply and `load` wait for a dataset's load
    pin: bool = True     # the plan records each object's fingerprint (to be saved, or shown as JSON)


async def make_plan(workspace: Workspace, read_manifest: ReadManifest, ui: UI, options: RunOptions) -> Plan:
    """Plan without the state lock: other plans, drift and a running apply go on meanwhile.

    Only a state holding unsettled operations (a run was interrupted) takes the lock, to settle
    and record them as apply would; while another command holds it they are read as settled
    for this plan and recorded by no one (with --lock-timeout, plan waits for the lock first).
    A plan saved either way pins the state's lineage and serial: a state changed meanwhile is
    refused when it is applied.
    """
    state = workspace.store.read()
    locked = False
    with ExitStack() as held:
        if state.journal:
            read_manifest = await _before_waiting(workspace, read_manifest, ui)
            try:
                held.enter_context(_locked(workspace, ui, options))
                locked = True
            except StateLockedError:
                holder = workspace.locker.holder()
                ui.progress("note: the state lock is held" + (f" by {describe_holder(holder)}" if holder else "")
                            + ": this plan takes no lock and records nothing")
        async with _engine(workspace, ui, options) as engine:
            if locked:              # the state read again under the lock, its journal settled and recorded
                manifest, state, live = await _read(engine, workspace, read_manifest, ui)
            else:
                manifest, state, live, undecided = await _read_unlocked(
                    engine, workspace, state, read_manifest, ui, survey=False)
                for line in undecided:
                    ui.progress(f"note: an unsettled operation is not decided yet: {line}")
            return _narrowed(_build(manifest, state, live, workspace, options.targets, options.excludes), options)


async def read_drift(
    workspace: Workspace, read_manifest: ReadManifest, ui: UI, options: RunOptions
) -> tuple[Plan, tuple[str, ...]]:
    """Read-only: no lock, nothing written; the journal is settled in memory only. Every app of
    the manifests is listed (one call each), so the plan names the objects carrying this
    environment's marker that no state records (``Plan.untracked``)."""
    async with _engine(workspace, ui, options) as engine:
        manifest, state, live, undecided = await _read_unlocked(
            engine, workspace, workspace.store.read(), read_manifest, ui, survey=True)
        plan = build_plan(manifest, state, live, environment=workspace.environment_name)
    return plan, undecided


async def _read_unlocked(
    engine: Engine, workspace: Workspace, state: State, read_manifest: ReadManifest, ui: UI, *, survey: bool
) -> tuple[Manifest, State, Live, tuple[str, ...]]:
    """The manifest, ``state`` with its journal settled in memory only (nothing is written),
    what Qrvey holds, and the journal entries that could not be decided."""
    read_manifest = _checking_apps(read_manifest, engine.qrvey, workspace)
    if not state.journal:
        manifest, live = await engine.refresh_while(state, _manifest(read_manifest, ui), survey=survey)
        return manifest, state, live, ()
    manifest = await _manifest(read_manifest, ui)
    ui.progress(f"note: the state has {len(state.journal)} unsettled operation(s); "
                "read as settled here, recorded by the next plan or apply")
    settled = await engine.settle_journal(state, manifest, write=False)
    live = await engine.refresh(manifest, settled.state, survey=survey)
    return manifest, settled.state, live, tuple(settled.undecided)


async def converge(workspace: Workspace, read_manifest: ReadManifest, ui: UI, options: RunOptions) -> Plan | None:
    """Plan, show, confirm, apply. Returns the applied plan, or None when nothing changed."""
    read_manifest = await _before_waiting(workspace, read_manifest, ui)
    with _locked(workspace, ui, options):
        async with _engine(workspace, ui, options) as engine:
            manifest, state, live = await _before_changes(_read(engine, workspace, read_manifest, ui), options)
            plan = _narrowed(_build(manifest, state, live, workspace, options.targets, options.excludes), options)
            ui.show_plan(plan)
            refuse_blocked(plan, options.command)
            if not plan.has_changes:
                return None
            if not options.auto_approve and not ui.confirm(options.command):
                raise QrveyIacError(f"{options.command} cancelled: nothing was changed "
                                    "(pass --auto-approve to skip the question)")
            await engine.apply(plan, state, manifest.sealer)
            return plan


async def apply_saved(
    workspace: Workspace, read_manifest: ReadManifest, saved: Plan, ui: UI, options: RunOptions
) -> Plan:
    """Apply exactly the reviewed plan, or refuse naming what moved since or what differs
    from the plan the pinned manifests, the state and Qrvey give."""
    if options.targets or options.excludes:
        raise QrveyIacError("--target and --exclude do not apply to a saved plan: it is applied exactly as "
                            "reviewed; pass them to `plan --out` instead")
    if saved.refresh_only:
        raise QrveyIacError("a refresh-only plan reports drift and cannot be applied; run plan without --refresh-only")
    if saved.environment != workspace.environment_name:
        raise QrveyIacError(f"the plan was made for environment {saved.environment!r}, "
                            f"not {workspace.environment_name!r}")
    read_manifest = await _before_waiting(workspace, read_manifest, ui)
    with _locked(workspace, ui, options):
        async with _engine(workspace, ui, options) as engine:
            if workspace.store.exists():
                manifest, state, live = await _before_changes(_read(engine, workspace, read_manifest, ui), options)
            else:
                checked = _checking_apps(read_manifest, engine.qrvey, workspace)
                manifest, state = await _manifest(checked, ui), State(lineage=saved.lineage)
                live = await _before_changes(engine.refresh(manifest, state), options)
            check_fresh(saved, state, fingerprints_of(state, live, manifest.sealer), manifest)
            # planned again from what the plan pins (protection enforced as in any plan): the
            # file must say the same, and what runs is this plan, not the file
            again = _build(manifest, state, live, workspace, saved.targets, saved.excludes)
            plan = as_reviewed(saved, again, manifest.secrets,
                               manifest.sealer.digest)
            ui.show_plan(plan)
            refuse_blocked(plan, options.command, saved=True)
            if plan.has_changes:
                await engine.apply(plan, state, manifest.sealer)
            return plan


async def load_datasets(workspace: Workspace, addresses: tuple[str, ...], ui: UI, options: RunOptions) -> list[str]:
    """`load ADDR...`: under the state lock, load each dataset the state records and wait for
    it as apply does. An address the state does not record, or of a kind that holds no data,
    is refused before anything is sent."""
    with _locked(workspace, ui, options):
        state = workspace.store.read()
        problems = []
        for address in dict.fromkeys(addresses):
            resource = state.resources.get(address)
            if resource is None:
                problems.append(f"{address} is not in the state{did_you_mean_address(address, set(state.resources))}: "
                                "apply it first (load takes managed datasets)")
            elif not KINDS[resource.kind].loadable:
                problems.append(f"{address} is a {resource.kind}, which holds no data of its own: load its source")
        if problems:
            raise QrveyIacError("load refused, nothing was sent:\n" + "\n".join(f"- {p}" for p in problems))
        async with _engine(workspace, ui, options) as engine:
            return await engine.load(state, list(dict.fromkeys(addresses)))


async def import_one(
    workspace: Workspace, read_manifest: ReadManifest, ui: UI, options: RunOptions, address: str, dataset_id: str
) -> tuple[State, tuple[str, ...]]:
    """``qrvey-iac import ADDR ID``: under the lock, with the journal settled, read the object
    and record it as ``address``; no write call. Returns the state and the fields the next plan
    will update (the object against the manifests)."""
    read_manifest = await _before_waiting(workspace, read_manifest, ui)
    with _locked(workspace, ui, options):
        async with _engine(workspace, ui, options) as engine:
            manifest = await _manifest(read_manifest, ui)
            state = await _settled(engine, workspace, workspace.store.read(), manifest)
            resource = manifest.resources.get(address)
            if resource is None:
                known = ", ".join(sorted(manifest.resources)) or "none"
                raise QrveyIacError(f"{address} is not in the manifests (addresses: {known}): write its document "
                                    "first, then import it")
            if address in state.resources:
                raise QrveyIacError(f"{address} is already in the state as {state.resources[address].datasetId}; "
                                    f"`qrvey-iac state rm {address}` first to adopt another object")
            app = resource.app
            obj = await resource.definition.read(engine.qrvey, app, dataset_id)
            if obj is None:
                raise QrveyIacError(f"no dataset {dataset_id} in app {app.app_id} ({resource.app_alias}), where "
                                    f"{address} is: check the id and the app; nothing was recorded")
            found = Found(address, dataset_id, app.app_id, app.user_id, obj=obj)
            actions = plan_import(manifest, state, address, found)
            state = await engine.adopt(actions[0], state, manifest.sealer)
            later = tuple(c.path for c in actions[0].changes) + tuple(a.op for a in actions[1:])
            return state, later


@asynccontextmanager
async def _engine(workspace: Workspace, ui: UI, options: RunOptions) -> AsyncIterator[Engine]:
    limit = workspace.parallelism(options.parallelism)
    async with workspace.qrvey(limit, options.rate_limit) as qrvey:
        yield Engine(qrvey, workspace.store, progress=ui.progress, meter=ui, parallelism=limit, stop=options.stop,
                     request_timeout=workspace.request_timeout, load_timeout=options.load_timeout, pin=options.pin)


async def _read(
    engine: Engine, workspace: Workspace, read_manifest: ReadManifest, ui: UI
) -> tuple[Manifest, State, Live]:
    """The manifest, the state with its journal settled, and what Qrvey holds.

    Usually the state's objects are read while the manifests are parsed (refresh_while);
    a journal to settle needs the manifest first.
    """
    state = workspace.store.read()
    read_manifest = _checking_apps(read_manifest, engine.qrvey, workspace)
    if not state.journal:
        manifest, live = await engine.refresh_while(state, _manifest(read_manifest, ui))
        return manifest, state, live
    manifest = await _manifest(read_manifest, ui)
    state = await _settled(engine, workspace, state, manifest)
    return manifest, state, await engine.refresh(manifest, state)


@contextmanager
def _locked(workspace: Workspace, ui: UI, options: RunOptions) -> Iterator[str]:
    """The state lock for the command; a wait for it says so, naming the holder, and says
    when it ends (without --lock-timeout the locker refuses at once, naming the holder)."""
    holder = workspace.locker.holder() if options.lock_timeout > 0 else None
    if holder is not None:
        ui.progress(f"Waiting up to {_duration(options.lock_timeout)} for the state lock, held by "
                    f"{describe_holder(holder)}...")
    started = time.monotonic()
    with workspace.locker.lock(options.command, options.lock_timeout) as lock_id:
        if holder is not None:
            ui.progress(f"Got the state lock after {time.monotonic() - started:.1f}s")
        yield lock_id


def describe_holder(holder: dict) -> str:
    """Who holds a lock, from what the locker records (see ports.StateLocker.holder)."""
    text = (f"{holder.get('command', '?')} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"since {holder.get('started', '?')}, lock id {holder.get('id', '?')})")
    if holder.get("ci_run"):
        text += f" in CI run {holder['ci_run']}"
    return text


def _duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


async def _before_waiting(workspace: Workspace, read_manifest: ReadManifest, ui: UI) -> ReadManifest:
    """When another command holds the state lock, read the manifests before waiting for it:
    a mistake in them is reported at once, not after --lock-timeout (or instead of 'locked')."""
    if not workspace.locker.is_locked():
        return read_manifest
    manifest = await _manifest(read_manifest, ui)

    async def already_read() -> Manifest:
        return manifest

    return already_read


async def _manifest(read_manifest: ReadManifest, ui: UI) -> Manifest:
    manifest = await read_manifest()
    ui.learn_secrets(manifest.secrets)
    return manifest


def _checking_apps(read_manifest: ReadManifest, qrvey: QrveyPort, workspace: Workspace) -> ReadManifest:
    """``read_manifest``, then the check that every app the manifests use exists in Qrvey:
    done as part of reading the input, so it runs before anything is planned (and its error
    wins over the refresh's reads in flight, which a missing app would fail less clearly)."""

    async def checked() -> Manifest:
        manifest = await read_manifest()
        await check_apps(qrvey, manifest, workspace.config_file, workspace.environment_name)
        return manifest

    return checked


async def check_apps(qrvey: QrveyPort, manifest: Manifest, config_file: str, environment: str) -> None:
    """One GET per app alias the manifests use (qrvey-api.md §1.4 ``GET /user/{u}/app/{a}``;
    the port keeps the answers for the run), all at once; every app that does not exist is
    one problem naming its alias, ids and where they are configured."""
    apps = {resource.app_alias: resource.app for resource in manifest.resources.values()}
    aliases = sorted(apps)
    found = await asyncio.gather(*(qrvey.get_app(apps[alias]) for alias in aliases))
    problems = [_missing_app(alias, apps[alias], config_file, environment)
                for alias, answer in zip(aliases, found) if answer is None]
    if problems:
        raise ConfigError(problems, "Nothing was planned or changed.")


def _missing_app(alias: str, app: AppRef, config_file: str, environment: str) -> Problem:
    ids = f"userId {app.user_id}, appId {app.app_id}"
    return Problem(config_file, None, f"environments.{environment}.apps.{alias}",
                   f"app {alias!r} ({ids}) does not exist in Qrvey (GET /user/{app.user_id}/app/{app.app_id} "
                   "answered 404): check its userId and appId, or create the app in Qrvey")


async def _settled(engine: Engine, workspace: Workspace, state: State, manifest: Manifest) -> State:
    """The state with the journal settled and saved; an error names what cannot be decided."""
    if not state.journal:
        return state
    settled = await engine.settle_journal(state, manifest)
    state = engine.save(settled.state)
    if settled.undecided:
        raise StateError(
            f"{len(settled.undecided)} interrupted operation(s) of an earlier run could not be settled; "
            "they stay in the state's journal and nothing else was changed:\n"
            + "\n".join(f"- {line}" for line in settled.undecided)
            + "\nFix what is named above, then run the command again."
        )
    return state


async def _before_changes(reading: Awaitable[T], options: RunOptions) -> T:
    """Reading Qrvey before apply's first write: a failure there changed nothing; say so."""
    try:
        return await reading
    except (ApiError, TransportError) as exc:
        raise QrveyIacError(f"{exc}\n{options.command} stopped while reading Qrvey, before making any change; "
                            "run it again") from None


def _build(
    manifest: Manifest, state: State, live: Live, workspace: Workspace, targets: tuple[str, ...],
    excludes: tuple[str, ...],
) -> Plan:
    """The plan narrowed by the selection, whose protection check sees only what is selected."""
    return build_plan(manifest, state, live, environment=workspace.environment_name,
                      targets=targets, excludes=excludes)


def _narrowed(plan: Plan, options: RunOptions) -> Plan:
    if options.refresh_only:
        drift = tuple(part for part in (drift_part(a) if a.changing else a for a in plan.actions) if part)
        plan = plan.model_copy(update={"actions": drift, "refresh_only": True})
    return plan
