"""Saved plans: refuse a stale one or one that is not what the manifests say."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from qrvey_iac.core.errors import PlanError, StalePlanError
from qrvey_iac.core.manifest import Manifest
from qrvey_iac.core.plan import ActionBase, Plan
from qrvey_iac.core.secrets import mask_plan, mask_value
from qrvey_iac.core.state import State


def check_fresh(plan: Plan, state: State, fingerprints: Mapping[str, str], manifest: Manifest) -> None:
    """Raise StalePlanError naming everything that moved since the plan was made."""
    reasons: list[str] = []
    if plan.lineage != state.lineage:
        reasons.append(f"the state is a different one (lineage {state.lineage}, the plan was made for {plan.lineage})")
    elif plan.serial != state.serial:
        reasons.append(f"the state changed since the plan was made (serial {plan.serial} -> {state.serial}); "
                       "a plan can be applied once")
    if plan.manifest_digest != manifest.digest:
        reasons.append("the manifests changed since the plan was made")
    for address in sorted(set(plan.fingerprints) | set(fingerprints)):
        before, now = plan.fingerprints.get(address), fingerprints.get(address)
        if before != now:
            reasons.append(f"{address} changed in Qrvey since the plan was made ({_what(before, now)})")
    if reasons:
        raise StalePlanError(
            "the saved plan is stale; nothing was changed:\n" + "\n".join(f"- {r}" for r in reasons)
            + "\nRun qrvey-iac plan again and review the new plan."
        )


def _what(before: str | None, now: str | None) -> str:
    if now == "absent":
        return "deleted"
    if before == "absent" or before is None:
        return "appeared"
    return "edited"


def as_reviewed(
    saved: Plan, rebuilt: Plan, secrets: frozenset[str], sealed: Callable[[Any], str]
) -> Plan:
    """The plan to apply: ``rebuilt`` (planned again now from the pinned manifests, the state
    and what Qrvey holds, with the saved selection), once it equals ``saved`` action by action.

    A plan file is not trusted as a program: what apply runs is what the manifests say, and
    the file must agree with it. One edited by hand (a delete added, a protect flag or an app
    or id changed) is refused naming each difference. A plan file holds masked values only,
    so documents are compared masked; a secret read through ${env:X} is checked against the
    plan's seal (``sealed`` of the unmasked document: the digest keyed by the environment's
    seal key, which the plan file does not hold), so a changed value is refused too.
    """
    differences = _differences(saved, mask_plan(rebuilt, secrets))
    if differences:
        shown = differences[:MAX_SHOWN]
        if len(differences) > MAX_SHOWN:
            shown.append(f"... and {len(differences) - MAX_SHOWN} more")
        raise PlanError(
            "the saved plan is not the plan the manifests it pins, the state and Qrvey give (was it "
            "edited?); nothing was changed:\n" + "\n".join(f"- {d}" for d in shown)
            + "\nRun qrvey-iac plan --out again and review the new plan."
        )
    for action in rebuilt.actions:
        if action.desired is None:
            continue
        recorded = saved.seals.get(action.address)
        secret = mask_value(action.desired, secrets) != action.desired
        if (sealed(action.desired) != recorded) if recorded else secret:
            raise StalePlanError(
                f"the saved plan is stale; nothing was changed:\n- {action.address}: a variable or "
                "environment value changed since the plan was made\nRun qrvey-iac plan again."
            )
    return rebuilt


MAX_SHOWN = 20
# What an action says besides its op and address, in the order differences are named.
COMPARED = ("kind", "app", "dataset_id", "protect", "source", "depends_on", "desired", "changes",
            "reason", "drift")
NOW = "planned now"


def _differences(saved: Plan, rebuilt: Plan) -> list[str]:
    found = []
    if saved.notes != rebuilt.notes:
        found.append("the selection notes differ from the ones --target / --exclude give now")
    have, want = _by_address(saved), _by_address(rebuilt)
    for address in sorted(set(have) | set(want)):
        mine, theirs = have.get(address, {}), want.get(address, {})
        if sorted(mine) != sorted(theirs):
            found.append(f"{address}: the saved plan has {_ops(mine)}, {NOW}: {_ops(theirs)}")
            continue
        for op in sorted(mine):
            before = mine[op].model_dump(mode="json")
            after = theirs[op].model_dump(mode="json")
            for name in COMPARED:
                found += [f"{op} {address}: {d}" for d in _field(name, before[name], after[name])]
    return found


def _by_address(plan: Plan) -> dict[str, dict[str, ActionBase]]:
    actions: dict[str, dict[str, ActionBase]] = {}
    for action in plan.actions:
        actions.setdefault(action.address, {})[action.op] = action
    return actions


def _ops(actions: Mapping[str, ActionBase]) -> str:
    return " and ".join(sorted(actions)) or "no action"


def _field(name: str, saved: Any, now: Any) -> list[str]:
    """What differs in one field: by key one level into an object (app.appId), else whole."""
    if saved == now:
        return []
    if isinstance(saved, dict) and isinstance(now, dict):
        return [f"{name}.{key} is {_shown(saved.get(key))} in the saved plan, {_shown(now.get(key))} {NOW}"
                for key in sorted(set(saved) | set(now)) if saved.get(key) != now.get(key)]
    return [f"{name} is {_shown(saved)} in the saved plan, {_shown(now)} {NOW}"]


def _shown(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:79] + "…"


__all__ = ["as_reviewed", "check_fresh"]
