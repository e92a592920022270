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
    return _Masker(secrets).text(text)


def mask_value(value: Any, secrets: frozenset[str]) -> Any:
    if not secrets:
        return value
    return _Masker(secrets).value(value)


class _Masker:
    """The masking of one set of secrets, its longest-first order taken once (a plan of 1,500
    creates masks some 50,000 strings)."""

    def __init__(self, secrets: frozenset[str]) -> None:
        self.secrets = secrets
        self.parts = sorted((s for s in secrets if len(s) >= MIN_SUBSTRING), key=len, reverse=True)

    def text(self, text: str) -> str:
        for secret in self.parts:       # a longer one may contain a shorter
            text = text.replace(secret, MASK)
        return text

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return MASK if value in self.secrets else self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value


def mask_plan(plan: Plan, secrets: frozenset[str]) -> Plan:
    if not secrets:
        return plan
    masker = _Masker(secrets)
    actions = tuple(_mask_action(a, masker) for a in plan.actions)
    notes = tuple(masker.text(n) for n in plan.notes)
    return plan.model_copy(update={"actions": actions, "notes": notes})


def _mask_action(action: ActionBase, masker: _Masker) -> ActionBase:
    return action.model_copy(update={
        "reason": masker.text(action.reason),
        "desired": masker.value(action.desired),
        "source": masker.value(action.source),
        "changes": tuple(_mask_change(c, masker) for c in action.changes),
    })


def _mask_change(change: FieldChange, masker: _Masker) -> FieldChange:
    after = masker.value(change.after)
    before = masker.value(change.before)
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
