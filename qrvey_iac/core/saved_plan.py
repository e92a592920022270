"""Saved plans: refuse a stale one, and put back the secrets a plan file never holds."""

from __future__ import annotations

from collections.abc import Mapping

from qrvey_iac.core.errors import StalePlanError
from qrvey_iac.core.manifest import Manifest
from qrvey_iac.core.plan import Plan
from qrvey_iac.core.secrets import mask_value
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


def rehydrate(plan: Plan, manifest: Manifest) -> Plan:
    """Recompute each action's desired document from the manifests (with secrets).

    A plan file holds masked values only; the manifests are pinned by digest, so
    recomputing gives the reviewed document. A secret read through ${env:X} is
    checked against the plan's seal (keyed by the environment's seal key, which the plan
    file does not hold), so a changed value is refused too.
    """
    actions = []
    for action in plan.actions:
        resource = manifest.resources.get(action.address)
        if action.desired is None or resource is None:
            actions.append(action)
            continue
        fresh = resource.desired
        masked = mask_value(fresh, manifest.secrets)
        sealed = plan.seals.get(action.address)
        moved = masked != action.desired or (
            manifest.sealer.digest(fresh) != sealed if sealed else masked != fresh
        )
        if moved:
            raise StalePlanError(
                f"the saved plan is stale; nothing was changed:\n- {action.address}: a variable or "
                "environment value changed since the plan was made\nRun qrvey-iac plan again."
            )
        source = action.source
        if resource.external_source is not None:
            source = resource.external_source.model_dump()
            if mask_value(source, manifest.secrets) != action.source:
                raise StalePlanError(f"the saved plan is stale; nothing was changed:\n- {action.address}: "
                                     "its source changed since the plan was made\nRun qrvey-iac plan again.")
        actions.append(action.model_copy(update={"desired": fresh, "source": source}))
    return plan.model_copy(update={"actions": tuple(actions)})


__all__ = ["check_fresh", "rehydrate"]
