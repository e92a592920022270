"""Plans as a GitHub pull-request comment: the summary first, details folded, under a size limit.

Layout, top to bottom (each part matters more than the parts below it, so when the
comment would be too long the cut starts at the bottom):

1. ``<!-- qrvey-iac plan: environment=E -->``: a hidden marker CI uses to update one comment;
2. a heading and the table of counts (never cut);
3. blocked resources (a view whose unmanaged source is gone, unshared or lacks an overridden
   column: apply refuses them), destructive actions (every delete and replace), then drift (changed outside
   qrvey-iac), then the other changes, one line each, by address;
4. one folded ``<details>`` block per address with the per-field changes.

The plan is masked value by value first (``mask_plan``); every value is then clipped and
escaped before it is measured, so a value can neither break the layout nor leak a secret,
and the measured size is the size of the output.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from qrvey_iac.core.kinds.base import OWNER_ATTRIBUTE
from qrvey_iac.core.order import natural_key
from qrvey_iac.core.kinds import KINDS
from qrvey_iac.core.plan import CHANGING_OPS, OPERATIONS, ActionBase, Plan
from qrvey_iac.core.render import load_line, replacement_note, summary_line
from qrvey_iac.core.secrets import mask_plan

COMMENT_MARKER = "<!-- qrvey-iac plan"
GITHUB_COMMENT_LIMIT = 65536
VALUE_WIDTH = 200          # characters of one value shown in a table cell
ROWS_PER_ACTION = 40       # field rows shown per action before "and N more fields"
FULL_PLAN_HINT = "run `qrvey-iac plan` for the full plan"
ABSENT_CELL = "—"
_ESCAPES = str.maketrans({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "&#124;", "`": "&#96;", "*": "&#42;",
    "_": "&#95;", "[": "&#91;", "]": "&#93;", "~": "&#126;", "$": "&#36;", "\\": "&#92;",
    "@": "&#64;", "#": "&#35;",
})


@dataclass(frozen=True)
class _Section:
    key: str               # names the section in the note that says it was cut
    title: str
    items: tuple[str, ...]


class _Budget:
    """Characters left; every block is joined with one newline, which it pays for."""

    def __init__(self, room: int) -> None:
        self.room = room

    def take(self, block: str) -> bool:
        if len(block) + 1 > self.room:
            return False
        self.room -= len(block) + 1
        return True


def comment_marker(environment: str) -> str:
    """The first line of every comment: find it to update the comment in place."""
    name = re.sub(r"[^\w.-]", "_", environment)   # nothing that could close the comment
    return f"{COMMENT_MARKER}: environment={name} -->"


def render_markdown(
    plan: Plan, secrets: frozenset[str] = frozenset(), limit: int = GITHUB_COMMENT_LIMIT
) -> str:
    """The plan as one GitHub comment of at most ``limit`` characters, secrets masked."""
    plan = mask_plan(plan, secrets)        # value by value: the layout's own words stay intact
    writer = _Writer()
    head = _head(plan, writer)
    groups = _by_address(plan)
    sections = _sections(plan, groups, writer)
    fixed = sum(len(b) + 1 for b in head) + _reserve(sections, len(plan.actions) + len(plan.notes))
    room = limit - fixed
    if room < 0:
        raise ValueError(f"limit {limit} leaves no room for the plan summary (needs {fixed})")
    body = _body(sections, groups, writer, _Budget(room))
    return "\n".join([*head, *body]) + "\n"


def _head(plan: Plan, writer: _Writer) -> list[str]:
    refresh = " (refresh only: what changed outside qrvey-iac)" if plan.refresh_only else ""
    heading = f"### qrvey-iac plan for {writer.code(plan.environment or '?')}{refresh}"
    lines = [comment_marker(plan.environment or "?"), heading, ""]
    if not plan.has_changes:
        return [*lines, summary_line(plan)]
    counts = plan.summary()
    # "blocked", "move", "forget", "import", "load" only when there are
    ops = [op for op in CHANGING_OPS if counts[op] or (OPERATIONS[op].counted_when_none and not OPERATIONS[op].refused)]
    return [
        *lines,
        "| " + " | ".join(ops) + " |",
        "|" + " ---: |" * len(ops),
        "| " + " | ".join(str(counts[op]) for op in ops) + " |",
    ]


def _by_address(plan: Plan) -> dict[str, list[ActionBase]]:
    """Changing actions grouped by address: blocked, destructive, drift, then the rest."""
    changes = sorted(plan.changes, key=lambda a: (_rank(a), natural_key(a.address)))   # stable within an address
    groups: dict[str, list[ActionBase]] = {}
    for action in changes:
        groups.setdefault(action.address, []).append(action)
    return groups


def _rank(action: ActionBase) -> int:
    operation = OPERATIONS[action.op]
    return 0 if operation.refused else 1 if operation.destructive else 2 if action.drift else 3


def _sections(plan: Plan, groups: dict[str, list[ActionBase]], writer: _Writer) -> list[_Section]:
    ranked: tuple[list[str], ...] = ([], [], [], [])
    for actions in groups.values():
        for action in actions:
            ranked[_rank(action)].append(writer.summary_item(action))
    blocked, destructive, drift, rest = ranked
    notes = [f"- {writer.text(note)}" for note in plan.notes]
    return [
        _Section("blocked resources", "Blocked: apply refuses these until fixed or excluded", tuple(blocked)),
        _Section("destructive actions", "Destructive actions", tuple(destructive)),
        _Section("drift changes", "Changed outside qrvey-iac (drift)", tuple(drift)),
        _Section("changes", "Changes from the manifests", tuple(rest)),
        _Section("selection notes", "Selection (--target / --exclude)", tuple(notes)),
    ]


def _reserve(sections: list[_Section], total: int) -> int:
    """An upper bound of what the body writes without asking the budget (empty sections write nothing)."""
    sections = [s for s in sections if s.items]
    texts = [_title(s.title, total) for s in sections] + [_list_note(s.key, total) for s in sections]
    texts += [_title("Details", total), _details_note(total)] + [""] * (len(sections) + 2)
    return sum(len(t) + 1 for t in texts)


def _body(
    sections: list[_Section], groups: dict[str, list[ActionBase]], writer: _Writer, budget: _Budget
) -> list[str]:
    blocks: list[str] = []
    cut = False
    for section in sections:
        if not section.items:
            continue
        blocks += ["", _title(section.title, len(section.items))]
        shown = 0
        for item in section.items:
            if cut or not budget.take(item):
                cut = True
                break
            blocks.append(item)
            shown += 1
        if shown < len(section.items):
            blocks.append(_list_note(section.key, len(section.items) - shown))
    if groups:
        blocks.extend(_details(groups, writer, budget, cut))
    return blocks


def _details(groups: dict[str, list[ActionBase]], writer: _Writer, budget: _Budget, cut: bool) -> list[str]:
    blocks = ["", _title("Details", len(groups))]
    shown = 0
    for address, actions in groups.items():
        if cut or not budget.take(block := writer.details(address, actions)):
            cut = True
            break
        blocks.append(block)
        shown += 1
    if shown < len(groups):
        blocks += ["", _details_note(len(groups) - shown)]   # the blank line ends the HTML block
    return blocks


def _title(title: str, count: int) -> str:
    return f"#### {title} ({count})"


def _list_note(key: str, count: int) -> str:
    return (f"- _…and {count} more {key}, not listed to fit GitHub's comment limit; "
            f"{FULL_PLAN_HINT}._")


def _details_note(count: int) -> str:
    what = "resource was" if count == 1 else "resources were"
    return (f"Details of {count} {what} left out to fit GitHub's comment limit; "
            f"{FULL_PLAN_HINT}.")


class _Writer:
    """Turns actions (already masked) into markdown; every piece of data is clipped, then escaped."""

    def text(self, value: str) -> str:
        return re.sub(r"\s+", " ", value).translate(_ESCAPES)

    def code(self, value: str) -> str:
        return f"<code>{self.text(value)}</code>"

    def value(self, value: Any) -> str:
        if value is None:
            return ABSENT_CELL
        shown = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
        if len(shown) > VALUE_WIDTH:
            shown = shown[: VALUE_WIDTH - 1] + "…"
        return self.code(shown)

    def summary_item(self, action: ActionBase) -> str:
        drift = " · drift" if action.drift else ""
        moved = f" from {self.code(action.previous_address)}" if action.previous_address else ""
        loaded = " · then **load**" if action.load else ""
        return f"- {self.code(action.address)} **{action.op}**{moved}: {self.text(action.reason)}{drift}{loaded}"

    def details(self, address: str, actions: list[ActionBase]) -> str:
        ops = ", ".join(a.op for a in actions)
        lines = [f"<details><summary>{self.code(address)}: {ops}</summary>", ""]
        for action in actions:
            lines += [self._action_line(action), "", *self._table(action)]
        lines.append("</details>")
        return "\n".join(lines)

    def _action_line(self, action: ActionBase) -> str:
        moved = f" from {self.code(action.previous_address)}" if action.previous_address else ""
        parts = [f"**{action.op}**{moved}: {self.text(action.reason)}"]
        if action.drift:
            parts.append("**drift**")
        if action.app is not None:
            parts.append(f"app {self.code(action.app.alias or action.app.appId)}")
        if action.dataset_id:
            parts.append(f"id {self.code(action.dataset_id)}")
        if action.source:
            source = action.source.get("address") or action.source.get("datasetId") or "?"
            parts.append(f"source {self.code(source)}")
        if action.status and (action.load or action.op == "load"):     # where it matters
            parts.append(f"status {self.code(action.status)}")
        note = replacement_note(action)
        if note:
            parts.append(self.text(note))
        loading = load_line(action)
        if loading:
            parts.append(self.text(loading))
        return " · ".join(parts)

    def _table(self, action: ActionBase) -> list[str]:
        if action.changes:
            rows = [(c.path, c.before, c.after) for c in action.changes]
            if action.mixed:        # each field says where it comes from
                return self._rows(["Field", "Before", "After", "From"], rows, [c.origin for c in action.changes])
            return self._rows(["Field", "Before", "After"], rows)
        if action.op in ("share", "unshare"):
            shared = ("shared", action.op == "unshare", action.op == "share")
            return self._rows(["Field", "Before", "After"], [shared])
        if action.op in ("create", "replace") and action.desired:
            return self._rows(["Field", "Value"], KINDS[action.kind].create_fields(action.desired))
        return []

    def _rows(self, header: list[str], rows: list[tuple[Any, ...]], origins: list[str] | None = None) -> list[str]:
        lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        for index, (path, *values) in enumerate(rows[:ROWS_PER_ACTION]):
            cells = [self.code(str(path)), *(self.value(v) for v in values)]
            if origins:
                cells.append("**drift**" if origins[index] == "drift" else self.text(origins[index]))
            lines.append("| " + " | ".join(cells) + " |")
        if len(rows) > ROWS_PER_ACTION:
            lines += ["", f"_…and {len(rows) - ROWS_PER_ACTION} more fields; {FULL_PLAN_HINT}._"]
        return [*lines, ""]
