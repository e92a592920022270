"""Compare two managed documents: the only importer of deepdiff.

Each kind (``core/kinds``) turns a manifest spec and a live answer into documents that
hold only the fields a manifest manages, with lists of named things keyed by name, so a
change reads ``columns.Total.columnType`` and never ``columns[3]``. Server-owned fields
never enter a document, so they can never show as a change.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict


class FieldChange(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    before: Any = None
    after: Any = None
    drift: bool = False         # Qrvey differs here by a hand edit: the manifests did not change it
    state_only: bool = False    # recorded in the state only (protect): no API call

    @property
    def origin(self) -> str:
        """Where the change comes from, in words: "drift", "state only" or "manifests"."""
        return "drift" if self.drift else "state only" if self.state_only else "manifests"


# json.dumps builds an encoder for every call with options; apply hashes each field of each
# document it records (44,000 for 1,000 datasets of 30 columns): one encoder, ~40% less a hash
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def canonical_hash(document: Any) -> str:
    return hashlib.sha256(_CANONICAL.encode(document).encode()).hexdigest()[:32]


def diff_documents(
    before: dict[str, Any], after: dict[str, Any], *, renamable: tuple[str, ...] = ()
) -> tuple[FieldChange, ...]:
    """Per-field changes that turn ``before`` (live) into ``after`` (desired).

    Every change is of one field: a named entry added or removed (a column, a datasource)
    shows as its fields, never as one JSON object. In a map of ``renamable`` (a top-level
    key, e.g. ``datasources``), one entry removed and one added are a rename: shown as
    ``datasources.<new>.name: "<old>" → "<new>"`` and the fields that differ between the two."""
    if before == after:         # as JSON values: 1 and 1.0 are one number (dicts compare in C, no encoding)
        return ()
    changes = _field_changes(before, after)
    for key in renamable:
        changes = _paired_renames(changes, before.get(key), after.get(key), key)
    return tuple(changes[p] for p in sorted(changes))


def _field_changes(before: Any, after: Any, prefix: str = "") -> dict[str, FieldChange]:
    from deepdiff import DeepDiff  # imported on first use: it pulls in numpy, slow to start (docs/performance.md)

    # threshold_to_diff_deeper=0: compare maps key by key even when they share no key
    # (deepdiff's default reports such a map as one changed value: two JSON blobs)
    tree = DeepDiff(before, after, verbose_level=2, view="tree", threshold_to_diff_deeper=0)
    changes: dict[str, FieldChange] = {}
    for report in tree.values():
        for item in report:
            parts = [str(part) for part in item.path(output_format="list")]
            path = ".".join([prefix, *parts] if prefix else parts)
            for change in _per_field(path, _plain(item.t1), _plain(item.t2)):
                changes[change.path] = change
    return changes


def _per_field(path: str, before: Any, after: Any) -> list[FieldChange]:
    """A whole entry added (or removed) as the fields it sets (or had)."""
    whole = after if before is None else before if after is None else None
    if not isinstance(whole, dict) or not whole:
        return [FieldChange(path=path, before=before, after=after)]
    changes = []
    for key, value in whole.items():
        if value is not None:
            inner = (None, value) if before is None else (value, None)
            changes.extend(_per_field(f"{path}.{key}", *inner))
    return changes or [FieldChange(path=path, before=before, after=after)]


def _paired_renames(changes: dict[str, FieldChange], before: Any, after: Any, key: str) -> dict[str, FieldChange]:
    if not isinstance(before, dict) or not isinstance(after, dict):
        return changes
    removed = [name for name in before if name not in after]
    added = [name for name in after if name not in before]
    if len(removed) != 1 or len(added) != 1:
        return changes                      # not one rename: each entry shows on its own
    old, new = removed[0], added[0]
    if not isinstance(before[old], dict) or not isinstance(after[new], dict):
        return changes
    entries = (f"{key}.{old}", f"{key}.{new}")
    kept = {p: c for p, c in changes.items() if not any(p == e or p.startswith(e + ".") for e in entries)}
    renamed = FieldChange(path=f"{key}.{new}.name", before=old, after=new)
    inside = _field_changes(before[old], after[new], prefix=f"{key}.{new}") if before[old] != after[new] else {}
    return {**kept, renamed.path: renamed, **inside}


def _plain(value: Any) -> Any:
    """deepdiff marks a missing side with a sentinel: show it as None."""
    if type(value).__name__ == "NotPresent":
        return None
    return value
