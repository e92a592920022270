"""Plans as text for a terminal (Terraform-like) and as JSON."""

from __future__ import annotations

import json
import re
from typing import Any

from qrvey_iac.core.kinds import KINDS
from qrvey_iac.core.plan import OPERATIONS, ActionBase, Plan
from qrvey_iac.core.secrets import MASK, mask_plan, mask_text

__all__ = ["MASK", "load_count", "load_line", "mask", "render_json", "render_text", "replacement_note",
           "summary_line"]

CREATE_LABEL_WIDTH = 44     # a create's field paths are padded to this width at most


def summary_line(plan: Plan) -> str:
    if not plan.has_changes:
        return "No changes. Qrvey matches the manifests."
    counts = plan.summary()
    imports = f"{counts['import']} to import, " if counts["import"] else ""    # as Terraform: only when some
    line = (
        f"Plan: {imports}{counts['create']} to create, {counts['update']} to update, "
        f"{counts['replace']} to replace, {counts['delete']} to delete"
    )
    extras = [f"{counts[op]} to {op}" for op in ("share", "unshare", "move", "forget") if counts[op]]
    loads = load_count(plan)
    if loads:
        extras.append(f"{loads} to load")
    if counts["blocked"]:
        extras.append(f"{counts['blocked']} blocked (apply refuses until fixed or excluded)")
    return line + "".join(f", {e}" for e in extras) + "."


def load_count(plan: Plan) -> int:
    """Datasets apply loads: ``load`` actions, and creates and updates followed by a load."""
    return sum(1 for action in plan.changes if action.op == "load" or action.load)


def load_line(action: ActionBase) -> str | None:
    """What a plan says of an action's load: the status read, and why apply loads it."""
    if action.op == "load":
        return None                       # its header says it all
    status = f" (status {action.status})" if action.status else ""
    if action.load:
        return f"then loaded{status}: {action.load_reason}"
    return None


def render_text(plan: Plan, secrets: frozenset[str] = frozenset()) -> str:
    # only changes are shown, so only changes are masked
    plan = mask_plan(plan.model_copy(update={"actions": plan.changes}), secrets)
    notes = [f"  - {note}" for note in plan.notes]
    if notes:
        notes = ["Selection (--target / --exclude):", *notes, ""]
    if not plan.has_changes:
        return "\n".join([*notes, summary_line(plan)]) + "\n"
    heading = "qrvey-iac will perform these actions"
    if plan.refresh_only:
        heading = "Objects changed outside qrvey-iac (refresh-only: apply would put them back)"
    lines = [f"{heading} in environment {plan.environment or '?'}:", ""]
    for action in plan.changes:
        lines.extend(_action_lines(action))
        lines.append("")
    lines.extend(notes)
    lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"


def render_json(plan: Plan, secrets: frozenset[str] = frozenset()) -> str:
    data = mask_plan(plan, secrets).model_dump(mode="json")
    data["summary"] = plan.summary()
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def mask(text: str, secrets: frozenset[str]) -> str:
    """Free-text masking (kept for callers that only have text); plans use mask_plan."""
    return mask_text(text, secrets)


def _action_lines(action: ActionBase) -> list[str]:
    drift = " [drift]" if action.drift else ""
    operation = OPERATIONS[action.op]
    header = f"  # {action.subject} {action.phrase} ({action.reason}){drift}"
    ident = f" [id={action.dataset_id}]" if action.dataset_id else ""
    lines = [header, f"  {operation.symbol} {action.address}{ident}"]
    note = replacement_note(action)
    if note:
        lines.append(f"      ! {note}")
    loading = load_line(action)
    if loading:
        lines.append(f"      {OPERATIONS['load'].symbol} {loading}")
    if action.op in ("create", "replace") and action.desired:
        lines.extend(_create_lines(action))
    elif action.op in ("share", "unshare") and not action.changes:
        lines.append(f"      ~ shared: {_value(action.op == 'unshare')} → {_value(action.op == 'share')}")
    for change in action.changes:
        origin = f"  [{change.origin}]" if action.mixed else ""   # each field says where it comes from
        lines.append("      " + _change_line(change.path, change.before, change.after) + origin)
    return lines


def replacement_note(action: ActionBase) -> str | None:
    """What a replace does to the object's id, for the text and markdown plans."""
    if action.op != "replace" or not action.dataset_id:
        return None
    return (f"a new id replaces {action.dataset_id}: anything that points at the old id "
            "(dashboards, charts, links, other apps' content) will lose it")


def _create_lines(action: ActionBase) -> list[str]:
    """Every field the create sends (secrets already masked), one per line, aligned."""
    rows = [("app", action.app.alias if action.app else "?")]
    if action.source:
        rows.append(("source", action.source.get("address") or action.source.get("datasetId") or "?"))
    rows += [(path, _value(value)) for path, value in KINDS[action.kind].create_fields(action.desired or {})]
    width = min(max(len(label) for label, _ in rows), CREATE_LABEL_WIDTH)
    return [f"      {label:<{width}} = {value}" for label, value in rows]


def _change_line(path: str, before: Any, after: Any) -> str:
    if before is None:
        return f"+ {path} = {_value(after)}"
    if after is None:
        return f"- {path} (was {_value(before)})"
    return f"~ {path}: {_value(before)} → {_value(after)}"


def _value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    return _clip(json.dumps(value, sort_keys=True, default=str), 120)


def _clip(text: str, width: int) -> str:
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= width else text[: width - 1] + "…"
