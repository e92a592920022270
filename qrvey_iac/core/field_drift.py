"""Per-field drift: which of a resource's changed fields the manifests changed since the last apply.

The state keeps, next to a resource's ``applied_hash``, one digest per field of the document
last applied (``applied_fields``). A field is a top-level field of the managed document
(``name``), or one entry of a field that is an object: a column, a datasource, an attribute
by name (``columns.Total``). A change whose field the manifests still give as they were
applied was made in Qrvey by hand: drift, even next to the pull request's own changes.

The digests are taken like ``applied_hash`` (core/sealing.py, docs/architecture.md §6): a
value that holds a ``${env:X}`` secret gets a digest keyed with the environment's seal key,
and a field name that holds one is recorded concealed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from qrvey_iac.core.sealing import Sealer

DIGEST_LENGTH = 16      # hex digits: enough to see a change, short so large states stay small


def field_units(document: Mapping[str, Any]) -> dict[str, Any]:
    """``{"name": "Orders", "columns": {"Total": {...}}}`` -> ``{"name": ..., "columns.Total": ...}``."""
    units: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, dict):
            units.update({f"{key}.{name}": entry for name, entry in value.items()})
        else:
            units[key] = value
    return units


def field_digests(document: Mapping[str, Any], sealer: Sealer) -> dict[str, str]:
    """What the state records of an applied document, field by field."""
    return {sealer.conceal(path): sealer.digest(value)[:DIGEST_LENGTH] for path, value in field_units(document).items()}


def moved_fields(desired: Mapping[str, str], applied: Mapping[str, str]) -> set[str]:
    """The fields (as recorded) whose digest the manifests give differs from the applied one."""
    return {unit for unit in set(desired) | set(applied) if desired.get(unit) != applied.get(unit)}


def manifest_changed(path: str, moved: Iterable[str], sealer: Sealer) -> bool:
    """Whether the manifests changed the field a change at ``path`` is in, or a field inside it
    (``dataSync`` removed: every ``dataSync.*`` recorded moved)."""
    concealed = {sealer.conceal(prefix) for prefix in _prefixes(path)}
    return any(
        unit == path or unit.startswith(path + ".") or path.startswith(unit + ".") or unit in concealed
        for unit in moved
    )


def _prefixes(path: str) -> list[str]:
    parts = path.split(".")
    return [".".join(parts[: n + 1]) for n in range(len(parts))]
