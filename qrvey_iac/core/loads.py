"""Which datasets apply loads: a pure function of the planned actions, the specs and the
statuses refresh read (issue 16 point 2).

A kind that holds data says so through ``Kind.load_mode`` (what its spec asks) and
``Kind.structural_changes`` (which changed fields need a reload, as data). For a resource that
asks to be loaded (``load: true`` or ``load: onChange``):

- a create or replace loads it after the create (a new dataset is DRAFT: empty);
- an update loads it after Apply Changes: ``true`` after every update, ``onChange`` only when a
  change is structural (qrvey-api.md D5: metadata changes need no reload) or it is not loaded;
- with no create or update planned, a dataset whose status is not LOADED or ACTIVE (DRAFT,
  FAILED, LOADING: a load running, waited for) gets a ``load`` action of its own.

A load is never journaled: whether one is owed is read from Qrvey's status at every plan, so
an apply stopped between starting a load and its end loses nothing (the next plan sees
LOADING and waits, or DRAFT / FAILED and loads again).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qrvey_iac.core.kinds.base import ALWAYS_LOADED, LOADED_STATUSES, NO_LOAD, ON_CHANGE
from qrvey_iac.core.manifest import Manifest, Resource
from qrvey_iac.core.plan import ActionBase, Load

AFTER_CREATE = "a new dataset is empty (DRAFT) until loaded"
LOAD_SETTING = {ALWAYS_LOADED: "load: true", ON_CHANGE: "load: onChange"}


def with_loads(
    actions: list[ActionBase], manifest: Manifest, objects: Mapping[str, dict[str, Any] | None]
) -> list[ActionBase]:
    """``actions`` with each dataset's status, its create or update marked to load when it must,
    and a ``load`` action for a dataset that needs only a load (after its other actions)."""
    result: list[ActionBase] = []
    for action in actions:
        resource = manifest.resources.get(action.address)
        live = objects.get(action.address) or {}
        status = live.get("status") if resource is not None and resource.definition.loadable else None
        if isinstance(status, str):
            action = action.model_copy(update={"status": status})
        if resource is not None and action.changing:
            action = _marked(action, resource, status)
        result.append(action)
    covered = {a.address for a in result if a.load or a.op in ("create", "replace", "blocked")}
    for action in list(result):          # the plan is put in execution order afterwards
        resource = manifest.resources.get(action.address)
        if resource is None or action.address in covered:
            continue
        covered.add(action.address)
        mode = resource.definition.load_mode(resource.spec)
        status = action.status
        if mode != NO_LOAD and isinstance(status, str) and status.upper() not in LOADED_STATUSES:
            result.append(Load(reason=_status_reason(status, mode), **_base_of(action)))
    return result


def _marked(action: ActionBase, resource: Resource, status: str | None) -> ActionBase:
    mode = resource.definition.load_mode(resource.spec)
    if mode == NO_LOAD:
        return action
    reason = ""
    if action.op in ("create", "replace"):
        reason = AFTER_CREATE
    elif action.op == "update" and not action.state_only:
        structural = [c.path for c in action.changes if resource.definition.is_structural(c.path)]
        if structural:
            shown = ", ".join(structural[:3]) + (", ..." if len(structural) > 3 else "")
            reason = f"a structural change ({shown}) needs a reload"
        elif mode == ALWAYS_LOADED:
            reason = "load: true reloads it after every update"
        elif isinstance(status, str) and status.upper() not in LOADED_STATUSES:
            reason = _status_reason(status, mode)
    if not reason:
        return action
    return action.model_copy(update={"load": True, "load_reason": reason})


def _status_reason(status: str, mode: str) -> str:
    if status.upper() == "LOADING":
        return f"a load is running (status LOADING; {LOAD_SETTING[mode]}): apply waits for it"
    return f"status {status}, not loaded ({LOAD_SETTING[mode]})"


def _base_of(action: ActionBase) -> dict[str, Any]:
    keep = ("address", "kind", "app", "dataset_id", "desired", "source", "depends_on", "protect", "status")
    return {key: getattr(action, key) for key in keep}
