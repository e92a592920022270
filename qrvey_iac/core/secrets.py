"""Masking of secret values (read through ${env:X}) in plans, by structure, not by text.

Text replacement over a rendered plan can corrupt it (a secret equal to ``false``
or ``dataset`` would rewrite JSON literals and addresses) and misses values that
are no longer current (a plan's "before" is the old secret). So plans are masked
value by value before any rendering: a string equal to a secret is replaced, a
longer string has the secret cut out, and when a field's new value is secret its
old value is hidden too.
"""

from __future__ import annotations

from typing import Any

from qrvey_iac.core.diff import FieldChange
from qrvey_iac.core.kinds.base import WRITE_ONLY
from qrvey_iac.core.plan import ActionBase, Plan
from qrvey_iac.core.sealing import Sealer

MASK = "(sensitive)"
MIN_SUBSTRING = 4     # shorter secrets are masked only where they are a whole value


def mask_text(text: str, secrets: frozenset[str]) -> str:
    """For free text (errors, progress): cut out every secret of 4 characters or more."""
    for secret in sorted((s for s in secrets if len(s) >= MIN_SUBSTRING), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def mask_value(value: Any, secrets: frozenset[str]) -> Any:
    if not secrets:
        return value
    if isinstance(value, dict):
        return {k: mask_value(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_value(v, secrets) for v in value]
    if isinstance(value, str):
        return MASK if value in secrets else mask_text(value, secrets)
    return value


def mask_plan(plan: Plan, secrets: frozenset[str]) -> Plan:
    if not secrets:
        return plan
    actions = tuple(_mask_action(a, secrets) for a in plan.actions)
    notes = tuple(mask_text(n, secrets) for n in plan.notes)
    return plan.model_copy(update={"actions": actions, "notes": notes})


def _mask_action(action: ActionBase, secrets: frozenset[str]) -> ActionBase:
    return action.model_copy(update={
        "reason": mask_text(action.reason, secrets),
        "desired": mask_value(action.desired, secrets),
        "source": mask_value(action.source, secrets),
        "changes": tuple(_mask_change(c, secrets) for c in action.changes),
    })


def _mask_change(change: FieldChange, secrets: frozenset[str]) -> FieldChange:
    after = mask_value(change.after, secrets)
    before = mask_value(change.before, secrets)
    if after != change.after and change.before not in (None, WRITE_ONLY):
        before = MASK            # the field holds a secret: its old value is one too (unless never read)
    return change.model_copy(update={"before": before, "after": after})


def seal_plan(plan: Plan, sealer: Sealer) -> Plan:
    """Record a seal for every action whose document holds a secret (before it is masked).

    A seal is ``sealer.digest``: keyed with the environment's seal key, which no file holds
    (core/sealing.py). A salted hash with its salt in the plan file would let whoever reads
    the file try every short secret offline."""
    seals = {
        a.address: sealer.digest(a.desired)
        for a in plan.actions
        if a.desired is not None and mask_value(a.desired, sealer.secrets) != a.desired
    }
    return plan.model_copy(update={"seals": seals, "seal_nonce": ""})
