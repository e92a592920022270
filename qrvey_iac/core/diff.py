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


def canonical_hash(document: Any) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def diff_documents(before: dict[str, Any], after: dict[str, Any]) -> tuple[FieldChange, ...]:
    """Per-field changes that turn ``before`` (live) into ``after`` (desired)."""
    if canonical_hash(before) == canonical_hash(after):
        return ()
    from deepdiff import DeepDiff  # imported on first use: it pulls in numpy, slow to start (docs/performance.md)

    tree = DeepDiff(before, after, verbose_level=2, view="tree")
    changes: dict[str, FieldChange] = {}
    for report in tree.values():
        for item in report:
            path = ".".join(str(part) for part in item.path(output_format="list"))
            changes[path] = FieldChange(
                path=path, before=_plain(item.t1), after=_plain(item.t2)
            )
    return tuple(changes[p] for p in sorted(changes))


def _plain(value: Any) -> Any:
    """deepdiff marks a missing side with a sentinel: show it as None."""
    if type(value).__name__ == "NotPresent":
        return None
    return value
