"""build_plan: manifest + state + live objects -> Plan. Pure: no I/O, no clock."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qrvey_iac.core.diff import FieldChange, diff_documents
from qrvey_iac.core.errors import PlanError, ProtectedResourceError
from qrvey_iac.core.field_drift import manifest_changed, moved_fields
from qrvey_iac.core.graph import topo_levels
from qrvey_iac.core.kinds import Kind
from qrvey_iac.core.kinds.base import OWNER_ATTRIBUTE
from qrvey_iac.core.manifest import Manifest, Resource
from qrvey_iac.core.order import natural_key
from qrvey_iac.core.plan import (
    DRIFT, OPERATIONS, ActionBase, AppTarget, Blocked, Create, Delete, Import, NoOp, Plan, Replace, Update,
    execution_levels, fingerprint, make_action, update_reason,
)
from qrvey_iac.core.sealing import PLAIN, Sealer
from qrvey_iac.core.selection import select
from qrvey_iac.core.state import ResourceState, State

WRITE_ONLY = "(write-only: not returned by Qrvey)"


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
    adoption = _Adoption(state, live, manifest.environment)
    order = topo_levels({a: r.depends_on for a, r in manifest.resources.items()})
    for level in order:
        for address in level:
            resource = manifest.resources[address]
            actions.extend(_plan_resource(resource, state, live, recreated, manifest.sealer, adoption))
    adoption.raise_problems()
    for address in sorted(set(state.resources) - set(manifest.resources)):
        actions.append(_delete_action(address, state.resources[address], live))
    plan = Plan(
        environment=environment,
        lineage=state.lineage,
        serial=state.serial,
        manifest_digest=manifest.digest,
        fingerprints=fingerprints_of(state, live, manifest.sealer),
        untracked=adoption.strays(manifest),
        actions=tuple(actions),
    )
    plan = select(plan, targets, excludes)
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
    if found is not None and found.get("isPublic", False):
        return None
    recorded = (current.source or {}) if current else {}
    drift = current is not None and sealer.same(recorded.get("datasetId"), external.datasetId)
    where = f"dataset {external.datasetId} in app {external.appId}"
    if found is None:
        problem = "was deleted in Qrvey: restore it" if drift else "does not exist: check spec.source.datasetId"
    else:
        problem = "is no longer shared in Qrvey: share it again" if drift else "is not shared: share it"
    reason = (f"its source {where} {problem}, or point the view at another shared dataset, "
              f"or leave it out with --exclude {resource.address}")
    base = _base(resource)
    return Blocked(reason=reason, drift=drift, dataset_id=current.datasetId if current else None, **base)


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
    base = _base(resource)
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


def _base(resource: Resource) -> dict[str, Any]:
    source = None
    if resource.source_address:
        source = {"address": resource.source_address}
    elif resource.external_source:
        source = resource.external_source.model_dump()
    return {
        "address": resource.address,
        "kind": resource.kind,
        "app": AppTarget(alias=resource.app_alias, userId=resource.app.user_id, appId=resource.app.app_id),
        "desired": resource.desired,
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
    manifest_moved = kind.applied_hash(desired, sealer) != current.applied_hash
    if not changes and manifest_moved:
        changes = _write_only_changes(kind, desired)
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


# -- adoption: an object that exists in Qrvey but not in the state (issue 14) -----------------


def plan_import(manifest: Manifest, state: State, address: str, found: Found) -> list[ActionBase]:
    """The import of ``found`` (read) as ``address`` (``qrvey-iac import``), with the share or
    unshare it then needs; a PlanError when it cannot be adopted so."""
    resource = manifest.resources[address]
    live = Live(adopted={address: found})
    adoption = _Adoption(state, live, manifest.environment)
    actions = adoption.adopt(resource, _base(resource), found.dataset_id)
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
