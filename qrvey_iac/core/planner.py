"""build_plan: manifest + state + live objects -> Plan. Pure: no I/O, no clock."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from qrvey_iac.core.diff import FieldChange, diff_documents
from qrvey_iac.core.errors import ManifestError, PlanError, Problem, ProtectedResourceError, did_you_mean_address
from qrvey_iac.core.field_drift import manifest_changed, moved_fields
from qrvey_iac.core.graph import topo_levels
from qrvey_iac.core.kinds import KINDS, Kind
from qrvey_iac.core.kinds.base import OWNER_ATTRIBUTE, WRITE_ONLY, resolve_references
from qrvey_iac.core.loads import with_loads
from qrvey_iac.core.manifest import Manifest, Moved, Removed, Resource
from qrvey_iac.core.order import natural_key
from qrvey_iac.core.plan import (
    DRIFT, OPERATIONS, ActionBase, AppTarget, Blocked, Create, Delete, Forget, Import, Move, NoOp, Plan, Replace,
    Update,
    execution_levels, fingerprint, make_action, update_reason,
)
from qrvey_iac.core.sealing import PLAIN, Sealer
from qrvey_iac.core.selection import select
from qrvey_iac.core.state import ResourceState, State


@dataclass(frozen=True)
class Found:
    """A live object the state does not record: one carrying an ownership marker, or the one a
    ``spec.adopt`` names. ``obj`` is its Get Dataset answer when refresh read it (None: listed
    only), ``environment`` the one its marker names (None: no environment, an older release's)."""

    address: str | None
    dataset_id: str
    app_id: str
    user_id: str
    environment: str | None = None
    obj: dict[str, Any] | None = None


@dataclass(frozen=True)
class Live:
    """What refresh read: every state resource by address (None: 404, gone)."""

    objects: Mapping[str, dict[str, Any] | None] = field(default_factory=dict)
    sources: Mapping[str, dict[str, Any] | None] = field(default_factory=dict)  # by datasetId
    # fingerprint() of objects, by address, when the reader already took it (each as its
    # answer arrived, while others were still in flight); the rest are taken when needed
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    # False: read for a plan that is shown or applied at once, not saved: no fingerprints taken,
    # and the plan holds none (Plan.fingerprints is what a saved plan is checked against)
    pinned: bool = True
    # what Qrvey told of the objects using each state resource the manifests no longer have,
    # of a kind that guards its delete (a connection: the datasets of its app built on it)
    users: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)
    # the apps listed (one call each): their objects that carry a marker and that no state
    # resource records, and, by address, what a manifest's spec.adopt names (None: in no listed app)
    untracked: tuple[Found, ...] = ()
    adopted: Mapping[str, Found | None] = field(default_factory=dict)


def build_plan(
    manifest: Manifest, state: State, live: Live, *, environment: str = "",
    targets: Iterable[str] = (), excludes: Iterable[str] = (),
) -> Plan:
    """The plan, narrowed by ``targets`` / ``excludes`` (core/selection.py) before protection
    is checked: a protected resource the selection leaves out blocks nothing."""
    actions: list[ActionBase] = []
    recreated: set[str] = set()
    moves = pending_moves(manifest, state)
    moved, moved_live = _after_moves(state, live, moves)     # planned as if the moves were done
    adoption = _Adoption(moved, moved_live, manifest.environment)
    order = topo_levels({a: r.depends_on for a, r in manifest.resources.items()})
    for level in order:
        for address in level:
            resource = manifest.resources[address]
            planned = _plan_resource(resource, moved, moved_live, recreated, manifest.sealer, adoption)
            actions.extend(_with_lost_source_columns(planned, resource, moved_live, recreated))
    adoption.raise_problems()
    removals = {removal.address: removal for removal in manifest.removals}
    for address in sorted(set(moved.resources) - set(manifest.resources)):
        if address in removals:
            actions.append(_forget_action(address, moved.resources[address], moved_live, removals[address]))
        else:
            actions.append(_delete_action(address, moved.resources[address], moved_live))
    actions = _as_moves(actions, moves)
    actions = with_loads(actions, manifest, moved_live.objects)
    plan = Plan(
        environment=environment,
        lineage=state.lineage,
        serial=state.serial,
        manifest_digest=manifest.digest,
        fingerprints=fingerprints_of(state, live, manifest.sealer) if live.pinned else {},
        untracked=adoption.strays(manifest),
        actions=tuple(actions),
    )
    plan = select(plan, targets, excludes)
    plan = _guard_deletes(plan, manifest, state, live, recreated)
    _refuse_protected(plan.actions)
    return plan.model_copy(update={"actions": _in_execution_order(plan)})


def fingerprints_of(state: State, live: Live, sealer: Sealer = PLAIN) -> dict[str, str]:
    """What a saved plan pins: every object it read, managed ones and external view sources.
    The pins are keyed by ``sealer`` when the manifest has secrets: a plan file never holds a
    plain hash of an object (or of a source's id) that may carry a value read through ${env:X}."""
    known = live.fingerprints
    pins = {
        a: sealer.pin(known[a] if a in known else fingerprint(live.objects.get(a))) for a in sorted(state.resources)
    }
    for dataset_id, obj in sorted(live.sources.items()):
        pins[f"source:{sealer.digest(dataset_id)[:20]}"] = sealer.pin(fingerprint(obj))
    found = [f for f in live.untracked if f.obj is not None] + [f for f in live.adopted.values() if f and f.obj]
    for item in found:              # the objects a plan imports
        pins[f"found:{item.dataset_id}"] = sealer.pin(fingerprint(item.obj))
    return pins


def _blocked_by_source(resource: Resource, current: ResourceState | None, live: Live, sealer: Sealer) -> Blocked | None:
    """A view over an unmanaged source that is gone, or no longer shared, in Qrvey: that view
    alone is blocked (reported with what to do; apply refuses it until it is fixed or excluded),
    and every other resource still plans. Drift when the view was applied over that source."""
    external = resource.external_source
    if external is None:
        return None
    found = live.sources.get(external.datasetId)     # refresh reads every source the manifests name
    missing = resource.definition.missing_source_columns(resource.spec, found)
    if found is not None and found.get("isPublic", False) and not missing:
        return None
    recorded = (current.source or {}) if current else {}
    drift = current is not None and sealer.same(recorded.get("datasetId"), external.datasetId)
    where = f"dataset {external.datasetId} in app {external.appId}"
    if found is not None and found.get("isPublic", False):
        them = "it" if len(missing) == 1 else "them"
        problem = (f"{'no longer has' if drift else 'has no'} {_columns(missing)} that spec.columns overrides "
                   f"(a view's columns follow its source): restore {them} in Qrvey or remove the override")
    elif found is None:
        problem = "was deleted in Qrvey: restore it" if drift else "does not exist: check spec.source.datasetId"
    else:
        problem = "is no longer shared in Qrvey: share it again" if drift else "is not shared: share it"
    reason = (f"its source {where} {problem}, or point the view at another shared dataset, "
              f"or leave it out with --exclude {resource.address}")
    base = _base(resource)
    return Blocked(reason=reason, drift=drift, dataset_id=current.datasetId if current else None, **base)


def _with_lost_source_columns(
    actions: list[ActionBase], resource: Resource, live: Live, recreated: set[str]
) -> list[ActionBase]:
    """A managed source that lost, in Qrvey, a column this resource overrides (a view's column
    override of a column removed from its source by hand): the resource's action says so in its
    reason, naming the column and the source. Not blocked: the source's manifest still has the
    column (validation checks every override against it), so this same plan puts the column
    back on the source, which is applied first; the override is then set on it."""
    source = resource.source_address
    if not actions or not source or source in recreated:
        return actions
    missing = resource.definition.missing_source_columns(resource.spec, live.objects.get(source))
    if not missing or not actions[0].changing:
        return actions
    note = (f"spec.columns overrides {_columns(missing)}, which its source {source} no longer has "
            f"in Qrvey: this apply puts {'it' if len(missing) == 1 else 'them'} back on {source} first")
    first = actions[0].model_copy(update={"reason": f"{actions[0].reason}; {note}"})
    return [first, *actions[1:]]


def _columns(names: tuple[str, ...]) -> str:
    quoted = ", ".join(repr(name) for name in names)
    return f"column {quoted}" if len(names) == 1 else f"columns {quoted}"


def refuse_blocked(plan: Plan, command: str, saved: bool = False) -> None:
    """Apply does what the plan shows or nothing: a plan holding blocked resources is refused
    as a whole (as Terraform refuses a plan with errors), naming the --exclude that applies
    the rest."""
    blocked = [a.address for a in plan.refused]
    if not blocked:
        return
    excludes = " ".join(f"--exclude {a}" for a in blocked)
    again = f"plan again with {excludes} --out FILE and apply that" if saved else f"run {command} {excludes}"
    raise PlanError(f"{command} refused: {len(blocked)} resource(s) cannot be planned ({', '.join(blocked)}; "
                    f"the plan above says why); nothing was changed. Fix them, or {again} to apply the rest")


def _plan_resource(
    resource: Resource, state: State, live: Live, recreated: set[str], sealer: Sealer, adoption: _Adoption
) -> list[ActionBase]:
    current = state.resources.get(resource.address)
    blocked = _blocked_by_source(resource, current, live, sealer)
    if blocked is not None:
        return [blocked]
    obj = live.objects.get(resource.address) if current else None
    # references resolve to recorded ids, and to those of objects this plan imports (planned first)
    base = _base(resource, known_ids(state, recreated, adoption.imported))
    if current is None:
        adopted = adoption.plan(resource, base)
        if adopted is not None:
            return adopted
    if current is None or obj is None:
        recreated.add(resource.address)
        reason = "new in the manifests" if current is None else "deleted outside qrvey-iac"
        create = Create(reason=reason, drift=current is not None, **base)
        return [create, *_share_after_create(resource, base)]
    replace_reason = resource.definition.replace_reason(resource, current, obj, recreated, sealer)
    if replace_reason:
        recreated.add(resource.address)
        replace = Replace(reason=replace_reason, dataset_id=current.datasetId, **base)
        return [replace, *_share_after_create(resource, base)]
    return [_update_or_noop(resource, current, obj, base, sealer), *_share_change(resource, current, obj, base)]


def known_ids(
    state: State, recreated: set[str] = frozenset(), imported: Mapping[str, str] | None = None
) -> Mapping[str, str]:
    """The ids references resolve to: every recorded object this plan does not create anew,
    and the objects it imports (``imported``: address -> id)."""
    return _KnownIds(state, recreated, imported or {})


@dataclass(frozen=True)
class _KnownIds(Mapping[str, str]):
    """known_ids, looked up when a reference asks for one: built for every resource planned, a
    copy of the state's ids made planning quadratic (10,000 datasets: 62 s instead of 25 s)."""

    state: State
    recreated: set[str]
    imported: Mapping[str, str]

    def __getitem__(self, address: str) -> str:
        if address in self.imported:
            return self.imported[address]
        if address in self.recreated or address not in self.state.resources:
            raise KeyError(address)
        return self.state.resources[address].datasetId

    def __iter__(self):
        yield from self.imported
        yield from (a for a in self.state.resources if a not in self.recreated and a not in self.imported)

    def __len__(self) -> int:       # counts every id: not for the planner's hot path
        return sum(1 for _ in self)


def _base(resource: Resource, ids: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The fields every action of ``resource`` has; its references resolved with ``ids``."""
    source = None
    if resource.source_address:
        source = {"address": resource.source_address}
    elif resource.external_source:
        source = resource.external_source.model_dump()
    return {
        "address": resource.address,
        "kind": resource.kind,
        "app": AppTarget(alias=resource.app_alias, userId=resource.app.user_id, appId=resource.app.app_id),
        # no len() of ids: a lookup; a resource that depends on nothing holds no reference (reference())
        "desired": (resolve_references(resource.desired, {} if ids is None else ids) if resource.depends_on
                    else resource.desired),
        "source": source,
        "depends_on": resource.depends_on,
        "protect": resource.protect,
    }


def _update_or_noop(
    resource: Resource, current: ResourceState, obj: dict[str, Any], base: dict[str, Any], sealer: Sealer
) -> ActionBase:
    kind = resource.definition
    desired = kind.with_removals(base["desired"], current.managed)
    base = {**base, "desired": desired}
    changes = diff_documents(*kind.compared_documents(kind.live_document(obj, desired), desired),
                             renamable=kind.rules.renamable)
    write_only = () if changes else _write_only_changes(kind, desired)
    if changes or write_only:   # else the applied hash could change nothing: not taken
        manifest_moved = kind.applied_hash(desired, sealer) != current.applied_hash
        if not changes and manifest_moved:
            changes = write_only
        changes = _with_origins(changes, kind, desired, current, sealer, manifest_moved)
    if current.protect != resource.protect:
        changes = (*changes, FieldChange(path="protect", before=current.protect, after=resource.protect,
                                         state_only=True))
    if not changes:
        return NoOp(reason="up to date", dataset_id=current.datasetId, **base)
    return Update(reason=update_reason(changes, resource.protect), drift=any(c.drift for c in changes), changes=changes,
                  dataset_id=current.datasetId, **base)


def _with_origins(
    changes: tuple[FieldChange, ...], kind: Kind, desired: dict[str, Any], current: ResourceState, sealer: Sealer,
    manifest_moved: bool,
) -> tuple[FieldChange, ...]:
    """Each change marked drift when the manifests did not change its field since the last apply
    (core/field_drift.py). A state that recorded no per-field digests (written before format 5)
    decides for the whole resource: drift only when the manifests changed nothing."""
    if not manifest_moved or not current.applied_fields:
        return tuple(c.model_copy(update={"drift": not manifest_moved}) for c in changes)
    moved = moved_fields(kind.applied_fields(desired, sealer), current.applied_fields)
    return tuple(c.model_copy(update={"drift": not manifest_changed(c.path, moved, sealer)}) for c in changes)


def _write_only_changes(kind: Kind, desired: dict[str, Any]) -> tuple[FieldChange, ...]:
    """Qrvey never returns a write-only field, so a manifest change to one shows only in the
    applied hash: every write-only field is then sent again (the live side is unknown)."""
    return tuple(FieldChange(path=key, before=WRITE_ONLY, after=desired[key])
                 for key in kind.rules.write_only if desired.get(key) is not None)


def _share_after_create(resource: Resource, base: dict[str, Any]) -> list[ActionBase]:
    if resource.definition.is_shared(resource.spec):
        return [make_action("share", reason="shared: true", **base)]
    return []


def _share_change(
    resource: Resource, current: ResourceState, obj: dict[str, Any], base: dict[str, Any]
) -> list[ActionBase]:
    if not resource.definition.shareable:
        return []
    wanted = resource.definition.is_shared(resource.spec)
    is_shared = bool(obj.get("isPublic", current.shared))
    if is_shared == wanted:
        return []
    drift = current.shared == wanted
    reason = DRIFT if drift else f"shared: {str(wanted).lower()} in the manifests"
    change = FieldChange(path="shared", before=is_shared, after=wanted, drift=drift)
    return [
        make_action(
            "share" if wanted else "unshare", reason=reason, drift=drift,
            changes=(change,), dataset_id=current.datasetId, **base,
        )
    ]


def _delete_action(address: str, current: ResourceState, live: Live) -> ActionBase:
    gone = live.objects.get(address) is None
    source_address = (current.source or {}).get("address")
    return Delete(
        address=address,
        kind=current.kind,
        reason="removed from the manifests" + (" (already gone from Qrvey)" if gone else ""),
        app=AppTarget(alias="", userId=current.userId, appId=current.appId),
        dataset_id=current.datasetId,
        depends_on=(source_address,) if source_address else (),
        protect=current.protect,
    )


def _guard_deletes(plan: Plan, manifest: Manifest, state: State, live: Live, recreated: set[str]) -> Plan:
    """Each delete of a kind that guards its delete (a connection) turned into a refusal while
    something would still use it once the plan (as selected) is applied."""
    deleted = {a.address for a in plan.actions if a.op == "delete"}
    actions = []
    for action in plan.actions:
        current = state.resources.get(action.address)
        in_use = (_in_use(action.address, manifest, state, live, recreated, deleted)
                  if action.op == "delete" and current is not None and KINDS[current.kind].guards_delete else [])
        actions.append(_blocked_delete(action.address, current, in_use) if in_use else action)
    return plan.model_copy(update={"actions": tuple(actions)})


def _in_use(
    address: str, manifest: Manifest, state: State, live: Live, recreated: set[str], deleted: set[str]
) -> list[str]:
    """What still uses the object at ``address`` once the plan is applied: the managed
    resources it does not delete whose live object (or, in the manifests, desired document)
    uses its id, and what Qrvey told of others (``live.users``). Each as the refusal shows it."""
    object_id = state.resources[address].datasetId
    ids = known_ids(state, recreated)
    found: list[str] = []
    for other in sorted((set(state.resources) | set(manifest.resources)) - deleted - {address}):
        recorded, resource = state.resources.get(other), manifest.resources.get(other)
        kind = KINDS[recorded.kind if recorded else resource.kind]
        used = kind.uses(live.objects.get(other)) if recorded else set()
        if resource is not None:
            used |= kind.uses(resolve_references(resource.desired, ids))
        if object_id in used:
            found.append(other)
    managed = {r.datasetId for r in state.resources.values()}
    for user in live.users.get(address, ()):
        if user.get("datasetId") not in managed:
            found.append(f"{user.get('name')!r} (id {user.get('datasetId')}, not managed by qrvey-iac)")
    return found


def _blocked_delete(address: str, current: ResourceState, in_use: list[str]) -> ActionBase:
    reason = (f"its delete is refused: {len(in_use)} dataset(s) in Qrvey still use it: {', '.join(in_use)} "
              "(deleted, it would leave them unable to reload their data); point them at another connection "
              f"or delete them first (--exclude {address} applies the rest of the plan, and a later plan "
              "deletes it), or keep it in the manifests")
    return Blocked(
        address=address, kind=current.kind, reason=reason,
        app=AppTarget(alias="", userId=current.userId, appId=current.appId),
        dataset_id=current.datasetId, protect=current.protect,
    )


def _refuse_protected(actions: Iterable[ActionBase]) -> None:
    blocked = []
    for action in actions:
        protected = action.protect   # a delete carries the protect flag the state recorded
        if action.changing and OPERATIONS[action.op].destructive and protected:
            blocked.append(f"{action.address} ({action.op}: {action.reason})")
    if blocked:
        raise ProtectedResourceError(
            "the plan would destroy protected resources: " + "; ".join(blocked)
            + ". Set protect: false and apply first if this is intended."
        )


def _in_execution_order(plan: Plan) -> tuple[ActionBase, ...]:
    rank: dict[int, int] = {}
    for level_index, level in enumerate(execution_levels(plan)):
        for step in level:
            rank.setdefault(step.action_index, level_index)
    indexed = list(enumerate(plan.actions))
    indexed.sort(key=lambda pair: (rank.get(pair[0], 10**9), natural_key(pair[1].address), pair[0]))
    return tuple(action for _, action in indexed)


# -- kind: Moved and kind: Removed ------------------------------------------------------------

def pending_moves(manifest: Manifest, state: State) -> dict[str, Moved]:
    """The moves still to do, by their new address: those whose ``from`` the state records.

    A move whose ``to`` the state records and whose ``from`` it does not is done (a no-op: a
    Moved may stay in the manifests). On an empty state (a new environment) there is nothing
    to move: ``to`` is planned like any new resource. Every other case is an error naming the
    Moved document: both addresses recorded (which object is ``to``?), or neither on a state
    that records other things (most likely a misspelt ``from``, which would leave the old
    object to be deleted)."""
    pending: dict[str, Moved] = {}
    problems: list[Problem] = []
    recorded = state.resources
    for move in manifest.moves:
        source, target = move.from_address, move.to_address
        if source in recorded and target in recorded:
            problems.append(Problem(move.file, move.line or None, "spec.from", (
                f"{source} and {target} are both in the state (ids {recorded[source].datasetId} and "
                f"{recorded[target].datasetId}): a move cannot tell which object {target} is. Keep one: "
                f"`qrvey-iac state rm` the other (it stays in Qrvey), then plan again")))
        elif source in recorded:
            pending[target] = move
        elif target not in recorded and recorded:
            problems.append(Problem(move.file, move.line or None, "spec.from", (
                f"{source} is not in the state{did_you_mean_address(source, recorded)}, and {target} is not "
                "either: nothing to move. Name the address the state records (`qrvey-iac state list`), "
                "or remove this Moved if the object never existed here")))
    if problems:
        raise ManifestError(problems, summary=f"{len(problems)} Moved document(s) do not match the state.")
    return pending


def _after_moves(state: State, live: Live, moves: Mapping[str, Moved]) -> tuple[State, Live]:
    """The state and what refresh read, with every pending move done: each object (and the
    views recorded over it) under its new address, so a moved object plans as an update of
    itself, never a delete and a create, and its views keep their source."""
    if not moves:
        return state, live
    objects, fingerprints = dict(live.objects), dict(live.fingerprints)
    for target, move in moves.items():
        state = state.with_move(move.from_address, target)
        if move.from_address in objects:
            objects[target] = objects.pop(move.from_address)
        if move.from_address in fingerprints:
            fingerprints[target] = fingerprints.pop(move.from_address)
    return state, dataclasses.replace(live, objects=objects, fingerprints=fingerprints)


def _as_moves(actions: list[ActionBase], moves: Mapping[str, Moved]) -> list[ActionBase]:
    """Each moved resource's update (or no-op) as one move action carrying its changes. A moved
    object that would be created (it was deleted outside qrvey-iac) or replaced is refused:
    a move keeps the object, and the plan would not."""
    result: list[ActionBase] = []
    problems: list[str] = []
    for action in actions:
        move = moves.get(action.address)
        if move is None or action.op in ("share", "unshare", "blocked"):
            result.append(action)
        elif action.op in ("update", "no-op"):
            fields = {name: getattr(action, name) for name in ActionBase.model_fields}
            reason = f"kind: Moved at {move.where}"
            if action.op == "update":
                reason += f"; {action.reason}"
            result.append(Move(**{**fields, "reason": reason}, moved_from=move.from_address))
        elif action.op == "create":
            problems.append(
                f"{move.where}: {move.from_address} cannot move to {action.address}: it was deleted outside "
                f"qrvey-iac. Remove this Moved and run `qrvey-iac state rm {move.from_address}`: the next plan "
                f"creates {action.address}")
        else:
            problems.append(
                f"{move.where}: {move.from_address} cannot move to {action.address} and be replaced in the same "
                f"plan ({action.reason}): apply the move with that change left out first, then make the change")
    if problems:
        raise PlanError("; ".join(problems))
    return result


def _forget_action(address: str, current: ResourceState, live: Live, removal: Removed) -> ActionBase:
    gone = live.objects.get(address) is None
    return Forget(
        address=address,
        kind=current.kind,
        reason=f"kind: Removed at {removal.where}" + ("; already gone from Qrvey" if gone else ""),
        app=AppTarget(alias="", userId=current.userId, appId=current.appId),
        dataset_id=current.datasetId,
        protect=current.protect,     # shown; nothing is deleted, so protection does not refuse it
    )


# -- adoption: an object that exists in Qrvey but not in the state (issue 14) -----------------


def plan_import(manifest: Manifest, state: State, address: str, found: Found) -> list[ActionBase]:
    """The import of ``found`` (read) as ``address`` (``qrvey-iac import``), with the share or
    unshare it then needs; a PlanError when it cannot be adopted so."""
    resource = manifest.resources[address]
    live = Live(adopted={address: found})
    adoption = _Adoption(state, live, manifest.environment)
    actions = adoption.adopt(resource, _base(resource, known_ids(state)), found.dataset_id)
    adoption.raise_problems()
    return actions


IMPORTED_BY_MARKER = "not in the state; found in Qrvey by its marker"
IMPORTED_BY_ADOPT = "spec.adopt"


class _Adoption:
    """Decides, for a manifest resource the state does not record, whether it is imported (the
    object ``spec.adopt`` names, or the one live object carrying this environment's marker for
    its address) rather than created. Every problem is collected, then raised at once."""

    def __init__(self, state: State, live: Live, environment: str) -> None:
        self.state = state
        self.live = live
        self.environment = environment
        self.tracked = {r.datasetId: a for a, r in state.resources.items()}
        self.pending = {e.address for e in state.journal if e.op == "create"}   # settled by the create
        self.imported: dict[str, str] = {}       # address -> dataset id, of this plan's imports
        self.problems: list[str] = []

    def plan(self, resource: Resource, base: dict[str, Any]) -> list[ActionBase] | None:
        kind = resource.definition
        wanted = kind.adopt_id(resource.spec)
        if wanted is not None:
            return self.adopt(resource, base, wanted)
        if resource.address in self.pending:
            return None
        app = resource.app.app_id
        found = [f for f in self.live.untracked if f.address == resource.address and f.app_id == app]
        ours = [f for f in found if f.environment == self.environment]
        if len(ours) > 1:
            ids = ", ".join(sorted(f.dataset_id for f in ours))
            self.problems.append(
                f"{resource.address}: {len(ours)} objects in app {app} carry its marker ({ids}); nothing is "
                "created or imported. Delete the ones you do not want in Qrvey, then plan again")
            return []
        if ours and ours[0].obj is not None:
            return self._import(resource, base, ours[0], IMPORTED_BY_MARKER)
        older = [f for f in found if f.environment is None]
        if older:
            ids = ", ".join(sorted(f.dataset_id for f in older))
            reason = (f"Qrvey holds {ids} in app {app} marked {resource.address} by a qrvey-iac release that did not "
                      f"name the environment: if it is this environment's, run `qrvey-iac import {resource.address} "
                      f"{sorted(f.dataset_id for f in older)[0]}`; if not, remove its {OWNER_ATTRIBUTE} attribute "
                      f"in Qrvey, or leave it out with --exclude {resource.address}")
            return [Blocked(reason=reason, **base)]
        return None

    def adopt(self, resource: Resource, base: dict[str, Any], wanted: str) -> list[ActionBase]:
        """The import of ``wanted`` as ``resource`` (spec.adopt, or `qrvey-iac import`), or [] and a problem."""
        where = f"{resource.file}:{resource.line}: " if resource.file else ""
        what = f"{where}{resource.address} spec.adopt.datasetId {wanted}"
        app = resource.app.app_id
        found = self.live.adopted.get(resource.address)
        if wanted in self.tracked:
            self.problems.append(f"{what} is already managed as {self.tracked[wanted]}: adopt it once "
                                 f"(`qrvey-iac state rm {self.tracked[wanted]}` first to move it)")
        elif wanted in self.imported.values():
            other = next(a for a, i in self.imported.items() if i == wanted)
            self.problems.append(f"{what} is adopted by {other} too: an object is adopted by one address")
        elif found is None:
            self.problems.append(f"{what} does not exist in app {app} (nor in another app the manifests name): "
                                 "check the id (the dataset's page in Qrvey shows it)")
        elif found.app_id != app:
            self.problems.append(f"{what} is in app {found.app_id}, not in app {app} ({resource.app_alias}) where "
                                 "the manifest puts it: a dataset cannot move between apps")
        elif found.obj is None:
            self.problems.append(f"{what} could not be read in app {app}")
        else:
            return self._import(resource, base, found, IMPORTED_BY_ADOPT)
        return []

    def _import(self, resource: Resource, base: dict[str, Any], found: Found, reason: str) -> list[ActionBase]:
        obj = found.obj or {}
        kind = resource.definition
        problem = None if kind.is_kind_of(obj) else f"is not a {kind.name} (datasetType {obj.get('datasetType')})"
        problem = problem or self._source_problem(resource, obj)
        if problem:
            self.problems.append(f"{resource.address}: {found.dataset_id} {problem}")
            return []
        self.imported[resource.address] = found.dataset_id
        desired = base["desired"]
        changes = diff_documents(*kind.compared_documents(kind.live_document(obj, desired, adopting=True), desired),
                                 renamable=kind.rules.renamable)
        actions: list[ActionBase] = [Import(reason=reason, changes=changes, dataset_id=found.dataset_id, **base)]
        if kind.shareable and kind.is_shared(resource.spec) != bool(obj.get("isPublic", False)):
            wanted = kind.is_shared(resource.spec)
            change = FieldChange(path="shared", before=not wanted, after=wanted)
            actions.append(make_action("share" if wanted else "unshare", reason=f"shared: {str(wanted).lower()} in "
                                       "the manifests", changes=(change,), dataset_id=found.dataset_id, **base))
        return actions

    def _source_problem(self, resource: Resource, obj: dict[str, Any]) -> str | None:
        """A view adopted must be a view of the source its manifest names."""
        source = resource.source
        if source is None:
            return None
        live_source = (obj.get("sourceDataset") or {}).get("datasetId")
        if source.external is not None:
            expected = source.external.datasetId
        else:
            recorded = self.state.resources.get(source.address or "")
            expected = recorded.datasetId if recorded else self.imported.get(source.address or "")
        if expected is None or live_source == expected:
            return None
        return f"is a view of {live_source or 'no dataset'}, not of {expected} ({source.address or 'spec.source'})"

    def raise_problems(self) -> None:
        if self.problems:
            raise PlanError(f"{len(self.problems)} object(s) cannot be adopted; nothing is planned:\n"
                            + "\n".join(f"- {line}" for line in self.problems))

    def strays(self, manifest: Manifest) -> tuple[str, ...]:
        """This environment's marked objects that no state resource records and this plan does not
        import (drift reports them)."""
        lines = []
        for found in self.live.untracked:
            if found.environment != self.environment or found.dataset_id in self.imported.values():
                continue
            managed = "in the manifests" if found.address in manifest.resources else "not in the manifests"
            lines.append(f"{found.dataset_id} in app {found.app_id} carries the marker of {found.address} "
                         f"({managed}) but no state resource records it")
        return tuple(sorted(lines))
