"""--target / --exclude: narrow a plan without breaking its dependency order."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from qrvey_iac.core.errors import PlanError, did_you_mean_address
from qrvey_iac.core.plan import ActionBase, Plan
from qrvey_iac.core.order import naturally_sorted


def select(plan: Plan, targets: Iterable[str] = (), excludes: Iterable[str] = ()) -> Plan:
    """Keep targeted changes plus what they need; drop excluded ones plus what needs them.

    Building needs dependencies first (a view needs its source); tearing down
    needs dependents first (a dataset's views go before it). The plan's notes
    say what was pulled in or left out and why; the plan records the selection (a saved
    plan is made again with it at apply time).
    """
    targets, excludes = list(dict.fromkeys(targets)), list(dict.fromkeys(excludes))
    if not targets and not excludes:
        return plan
    moved = {a.previous_address: a.address for a in plan.actions if a.previous_address}   # kind: Moved
    notes: list[str] = [f"{old} is {moved[old]} (kind: Moved)" for old in dict.fromkeys([*targets, *excludes])
                        if old in moved]
    targets = list(dict.fromkeys(moved.get(a, a) for a in targets))
    excludes = list(dict.fromkeys(moved.get(a, a) for a in excludes))
    known = {a.address for a in plan.actions}
    unknown = [a for a in [*targets, *excludes] if a not in known]
    if unknown:
        named = ", ".join(a + did_you_mean_address(a, known) for a in unknown)
        raise PlanError(f"unknown address {named}: nothing in the manifests or the state has it")
    needs, needed_by = _graph(plan.actions)
    changing = {a.address for a in plan.actions if a.changing}
    kept = set(known)
    if targets:
        kept = _closure(targets, needs)
        notes += [f"{a} pulled in: needed by a target" for a in naturally_sorted(kept - set(targets)) if a in changing]
    for excluded in excludes:
        dropped = _closure([excluded], needed_by) & kept
        kept -= dropped
        notes += [f"{a} left out: {_why(plan, a, excluded)}"
                  for a in naturally_sorted(dropped - {excluded}) if a in changing]
    notes += [f"{a} left out: not targeted" for a in naturally_sorted(known - kept) if a in changing and a not in excludes
              and not any(n.startswith(a + " ") for n in notes)]
    actions = tuple(a for a in plan.actions if a.address in kept)
    return plan.model_copy(update={"actions": actions, "notes": (*plan.notes, *notes),
                                   "targets": tuple(targets), "excludes": tuple(excludes)})


def _graph(actions: tuple[ActionBase, ...]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """needs[a]: what must be selected with a; needed_by: the reverse."""
    needs: dict[str, set[str]] = defaultdict(set)
    needed_by: dict[str, set[str]] = defaultdict(set)
    for action in actions:
        for dependency in action.depends_on:
            if action.op in ("delete", "replace"):   # a dataset's teardown needs its views' first
                needs[dependency].add(action.address)
                needed_by[action.address].add(dependency)
            if action.op != "delete":                # a view's (re)creation needs its source
                needs[action.address].add(dependency)
                needed_by[dependency].add(action.address)
    return needs, needed_by


def _closure(start: Iterable[str], edges: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(edges.get(node, ()))
    return seen


def _why(plan: Plan, address: str, excluded: str) -> str:
    deleting = any(a.address == address and a.op == "delete" for a in plan.actions)
    if deleting:
        return f"deleting it needs excluded {excluded} deleted first"
    return f"it depends on excluded {excluded}"
