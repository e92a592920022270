"""The state's one codec: text or parsed JSON in, a validated State out, and back.

Every store (the local file today, PostgreSQL later) reads and writes through it, so
the format and its history live in one place. ``decode`` runs one upgrader per format
version (``UPGRADERS[n]`` turns version n into n + 1, Terraform's
``statefile/version*_upgrade.go``), then validates against the current model. A state
from a newer qrvey-iac is refused: guessing at fields we do not know could lose them.

Adding format version N + 1: bump ``STATE_VERSION`` in core/state.py, change the model,
add ``UPGRADERS[N]``, and commit a state written by the release before as a fixture
under tests/fixtures/ with a test that it decodes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from qrvey_iac.core.errors import StateError
from qrvey_iac.core.state import STATE_VERSION, JournalDetail, State

Raw = dict[str, Any]


def encode(state: State) -> str:
    """Sorted keys, 2-space indent, a trailing newline: diffs of the state stay small."""
    return dump_json(state.model_dump(mode="json"))


def dump_json(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def decode(data: str | bytes | Raw, source: str) -> State:
    """``data`` (text, or JSON already parsed) as a State of the current format.

    ``source`` names where it came from in every error ("state file state/local.json").
    """
    raw = _parsed(data, source) if isinstance(data, (str, bytes)) else data
    if not isinstance(raw, dict):
        raise StateError(f"{source} is invalid: a state is a JSON object, not {type(raw).__name__}")
    version = raw.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise StateError(f"{source} is invalid at version: not a format version: {version!r}")
    if version > STATE_VERSION:
        raise StateError(f"{source} has format version {version}; this qrvey-iac reads "
                         f"up to {STATE_VERSION}: upgrade qrvey-iac")
    try:
        while version < STATE_VERSION:
            raw = {**UPGRADERS[version](raw), "version": version + 1}
            version += 1
        return State.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise StateError(f"{source} is invalid at {where}: {first['msg']}") from None
    except (TypeError, AttributeError) as exc:     # an upgrader met a shape no release wrote
        raise StateError(f"{source} is invalid (format version {raw.get('version')}): {exc}") from None


def _parsed(text: str | bytes, source: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:   # RecursionError: nested too deeply
        raise StateError(f"{source} is unreadable ({exc.__class__.__name__}: {exc})") from None


def _v1_to_v2(raw: Raw) -> Raw:
    """Version 1 kept a journal entry's ``detail`` as a free dict, read with defaults
    (a missing ``kind`` meant a Dataset). Version 2 types it as a JournalDetail: the
    defaults are written out, and keys no reader ever used are dropped."""
    journal = raw.get("journal", [])
    if not isinstance(journal, list):
        return raw                  # left for validation to name
    return {**raw, "journal": [_entry_v2(entry) for entry in journal]}


_DETAIL_FIELDS = frozenset(JournalDetail.model_fields)


def _entry_v2(entry: object) -> object:
    if not isinstance(entry, dict) or not isinstance(entry.get("detail", {}), dict):
        return entry
    detail = {k: v for k, v in entry.get("detail", {}).items() if k in _DETAIL_FIELDS}
    return {**entry, "detail": {"kind": "Dataset", **detail}}


def _v2_to_v3(raw: Raw) -> Raw:
    """Version 3 has the same fields. Its number says that the local store may keep
    writes in a sidecar next to the file (``<state>.wal``): a release that does not read
    the sidecar refuses the file instead of reading it without its pending journal."""
    return raw


def _v3_to_v4(raw: Raw) -> Raw:
    """Version 4 records the ``owner`` (environment and endpoint) the state was made for.
    A version-3 state names none: it is read as unowned, and the first command that
    writes it records its own environment (saying so), as a new state would."""
    return raw


def _v4_to_v5(raw: Raw) -> Raw:
    """Version 5 may record a resource's ``applied_fields`` (a digest per field of what was
    applied), so a plan marks drift field by field. A version-4 state records none: each
    resource's drift is decided as a whole, as before, until its next create or update."""
    return raw


UPGRADERS: dict[int, Callable[[Raw], Raw]] = {
    1: _v1_to_v2,
    2: _v2_to_v3,
    3: _v3_to_v4,
    4: _v4_to_v5,
}
