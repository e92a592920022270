"""qrvey-iac export: the live objects of some apps as manifests and state records (pure).

``build_export`` takes every object of the exported apps (as Get Dataset answers them), the
state and the environment's variables, and decides, the same on every run for the same
input:

- each object's kind (``Kind.describes``) and address: the state's when the object is
  tracked already, the one its ownership marker names when it carries one (an object
  qrvey-iac made under a state that was lost), else a slug of its display name,
  deduplicated by datasetId order (``orders``, ``orders_2``);
- its spec (``Kind.exported_spec``): only the fields the format manages, validated as a
  manifest would be, and checked to read back as itself (the live object projected onto
  its managed document is that document, but for the marker), so that the next plan is empty;
- the values that differ per environment (``Kind.environment_values``: connection ids) as
  ``${var.NAME}``, reusing a variable of the environment that holds the value already;
- the state record apply would have made after creating it (``applied_hash``,
  ``applied_fields``, ``managed``, the view's source), and whether it lacks the marker.

Every problem is collected, and reported at once (``ExportError``) before anything is done.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from qrvey_iac.core.errors import QrveyIacError
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.kinds import KINDS, Kind
from qrvey_iac.core.kinds.base import ADDRESS_SYNTAX, API_VERSION, MARKER_ATTRIBUTES, OWNER_ATTRIBUTE, marker_of
from qrvey_iac.core.order import natural_key
from qrvey_iac.core.sealing import PLAIN
from qrvey_iac.core.state import ResourceState, State

NAME_ROOM = 56            # a slug's length at most: room for a "_NNN" suffix within the 64 of a name
REFERENCE_START = re.compile(r"\$\{(var\.|env:)")    # what the manifest loader would interpolate


class ExportError(QrveyIacError):
    """What keeps the apps from being exported; nothing was written anywhere."""


@dataclass(frozen=True)
class AppObjects:
    """One exported app: its alias, its ids, and every object of it, read one by one."""

    alias: str
    app: AppRef
    objects: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class ExportedObject:
    address: str
    kind: str
    alias: str
    app: AppRef
    dataset_id: str
    display_name: str
    spec: dict[str, Any]             # with the environment's values (what the manifests resolve to)
    desired: dict[str, Any]          # the managed document, marker included
    tracked: bool                    # already in the state: not recorded again
    needs_marking: bool              # live lacks the marker: one update call adds it
    live: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)   # as Get Dataset answered


@dataclass(frozen=True)
class Export:
    objects: tuple[ExportedObject, ...]                  # by app alias, then kind, then address
    documents: dict[str, list[dict[str, Any]]]           # app alias -> manifest documents, in file order
    variables: dict[str, str] = field(default_factory=dict)   # new variables: name -> this environment's value
    reused: dict[str, str] = field(default_factory=dict)      # variables of the environment used: name -> value
    state: State = field(default_factory=State)          # the state with the new records

    @property
    def recorded(self) -> list[ExportedObject]:
        return [o for o in self.objects if not o.tracked]

    @property
    def to_mark(self) -> list[ExportedObject]:
        return [o for o in self.objects if o.needs_marking]


def slug(text: str, fallback: str) -> str:
    """A logical name made from a display name: lower-case ASCII letters and digits, other
    runs as one ``-`` (``"Orders (EMEA)"`` -> ``orders-emea``); ``fallback`` when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    cleaned = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    return cleaned[:NAME_ROOM].rstrip("-") or fallback


def marker_keys(address: str) -> frozenset[str]:
    """The customAttributes qrvey-iac writes itself on the object of ``address`` (the marker:
    the address and the environment)."""
    return frozenset(MARKER_ATTRIBUTES)


def build_export(apps: Iterable[AppObjects], state: State, variables: Mapping[str, Any],
                 environment: str = "") -> Export:
    apps = list(apps)
    problems: list[str] = []
    found = _classified(apps, problems)
    addresses = _addresses(found, state, problems, environment)
    found = [item for item in found if item.key in addresses]     # the others are reported already
    shared = _shared_sources(found, addresses)
    lives = {item.key: item.live for item in found}
    exported: list[ExportedObject] = []
    for item in found:
        built = _exported(item, addresses[item.key], shared, lives, state, problems, environment)
        if built is not None:
            exported.append(built)
    if problems:
        raise _error(problems)
    order = {kind.name: index for index, kind in enumerate(KINDS)}
    aliases = {app.alias: index for index, app in enumerate(apps)}
    exported.sort(key=lambda o: (aliases[o.alias], order[o.kind], natural_key(o.address)))
    names, new, reused = _variables(exported, variables)
    documents: dict[str, list[dict[str, Any]]] = {app.alias: [] for app in apps}
    for obj in exported:
        documents[obj.alias].append(_document(obj, names))
    records = {**state.resources, **{o.address: _record(o) for o in exported if not o.tracked}}
    return Export(tuple(exported), documents, new, reused, state.model_copy(update={"resources": records}))


@dataclass(frozen=True)
class _Found:
    alias: str
    app: AppRef
    kind: Kind
    live: dict[str, Any]

    @property
    def key(self) -> str:
        return self.live["datasetId"]

    def describe(self) -> str:
        return f"{self.kind.name} {self.key} ({self.live.get('name')!r}) in app {self.alias}"


def _classified(apps: list[AppObjects], problems: list[str]) -> list[_Found]:
    found: list[_Found] = []
    seen: dict[str, str] = {}
    for app in apps:
        for live in app.objects:
            dataset_id = live.get("datasetId")
            if not isinstance(dataset_id, str) or not dataset_id:
                problems.append(f"app {app.alias}: an object names no datasetId (it has {dataset_id!r})")
                continue
            if dataset_id in seen:
                problems.append(f"app {app.alias}: datasetId {dataset_id} is listed twice (also in app "
                                f"{seen[dataset_id]}): the listing cannot be trusted")
                continue
            seen[dataset_id] = app.alias
            kinds = [kind for kind in KINDS if kind.describes(live)]
            if len(kinds) != 1:
                problems.append(f"app {app.alias}: object {dataset_id} ({live.get('name')!r}) is of no kind "
                                "qrvey-iac can manage" if not kinds else
                                f"app {app.alias}: object {dataset_id} reads as several kinds")
                continue
            found.append(_Found(app.alias, app.app, kinds[0], live))
    return found


def _marked_address(item: _Found, environment: str = "") -> str | None:
    """The address the object's ownership marker names, if it carries one of this
    environment for an address of its kind. A marker of anything else is an ExportError."""
    attributes = item.live.get("customAttributes")
    value = attributes.get(OWNER_ATTRIBUTE) if isinstance(attributes, dict) else None
    if value is None:
        return None
    if isinstance(value, str) and re.fullmatch(ADDRESS_SYNTAX, value) and KINDS.of_address(value) is item.kind:
        _, marked_for = marker_of(item.live)
        if marked_for is None or marked_for == environment:    # None: marked before markers named it
            return value
    raise ExportError(f"{item.describe()} carries the ownership marker {OWNER_ATTRIBUTE}={value!r}, which is "
                      "not one of this environment for a " + item.kind.name + ": it is managed from elsewhere. "
                      "Leave its app out (--app), or remove the marker in Qrvey if nothing manages it")


def _addresses(found: list[_Found], state: State, problems: list[str], environment: str = "") -> dict[str, str]:
    """datasetId -> address: tracked, then marked, then new names by datasetId order."""
    tracked = {(r.appId, r.datasetId): (address, r) for address, r in state.resources.items()}
    addresses: dict[str, str] = {}
    claimed: dict[str, _Found] = {}
    fresh: list[_Found] = []
    for item in found:
        try:
            marked = _marked_address(item, environment)
        except ExportError as exc:
            problems.append(str(exc))
            continue
        recorded = tracked.get((item.app.app_id, item.key))
        if recorded is not None:
            address, resource = recorded
            if resource.kind != item.kind.name:
                problems.append(f"{item.describe()} is tracked as {address}, a {resource.kind}")
            elif marked is not None and marked != address:
                problems.append(f"{item.describe()} is tracked as {address} but carries the marker of {marked}: "
                                f"fix one of them first (`qrvey-iac state mv {address} {marked}`)")
            addresses[item.key] = address
        elif marked is not None:
            if marked in state.resources:
                problems.append(f"{item.describe()} carries the marker of {marked}, which the state records as "
                                f"{state.resources[marked].datasetId} in app {state.resources[marked].appId}: "
                                "delete the copy you do not want in Qrvey, then export again")
            elif marked in claimed:
                problems.append(f"two objects carry the marker of {marked}: {claimed[marked].describe()} and "
                                f"{item.describe()}: delete the one you do not want in Qrvey, then export again")
            claimed[marked] = item
            addresses[item.key] = marked
        else:
            fresh.append(item)
    taken = set(state.resources) | set(addresses.values())
    for item in sorted(fresh, key=lambda i: i.key):
        base = slug(str(item.live.get("name") or ""), item.kind.prefix)
        address, number = item.kind.address(base), 1
        while address in taken:
            number += 1
            address = item.kind.address(f"{base}_{number}")
        taken.add(address)
        addresses[item.key] = address
    return addresses


def _shared_sources(found: list[_Found], addresses: dict[str, str]) -> dict[str, str]:
    """datasetId -> address of every exported object that may be a view's source: shared
    (by its own spec) and of a kind that has no source itself."""
    shared = {}
    for item in found:
        if not item.kind.shareable:
            continue
        try:
            spec = _validated(item.kind, addresses[item.key], _spec(item, addresses[item.key], {}, {})).spec
        except (ValidationError, ExportError):
            continue          # reported with its paths by _exported
        if item.kind.is_shared(spec):
            shared[item.key] = addresses[item.key]
    return shared


def _spec(item: _Found, address: str, shared: Mapping[str, str], exported: Mapping[str, dict]) -> dict[str, Any]:
    return item.kind.exported_spec(item.live, item.alias, shared, marker_keys(address), exported)


def _validated(kind: Kind, address: str, spec: dict[str, Any]) -> Any:
    document = {"apiVersion": API_VERSION, "kind": kind.name, "metadata": {"name": address.partition(".")[2]},
                "spec": spec}
    return kind.document.model_validate(document)


def _exported(
    item: _Found, address: str, shared: Mapping[str, str], lives: Mapping[str, dict], state: State,
    problems: list[str], environment: str = "",
) -> ExportedObject | None:
    spec = _spec(item, address, shared, lives)
    unsafe = [path for path, value in _strings(spec, ("spec",)) if REFERENCE_START.search(value)]
    if unsafe:
        problems.append(f"{item.describe()}: {', '.join(unsafe)} holds '${{var.' or '${{env:', which a manifest "
                        "would read as a variable: rename it in Qrvey first")
        return None
    try:
        document = _validated(item.kind, address, spec)
    except ValidationError as exc:
        errors = exc.errors()
        locations = [tuple(error["loc"]) for error in errors]
        for error in errors:
            loc = tuple(error["loc"])
            if any(len(other) > len(loc) and other[: len(loc)] == loc for other in locations):
                continue        # a follow-up of an error inside it (a list left empty by its bad item)
            problems.append(f"{item.describe()} cannot be written as a manifest: {_shown(loc)}: {error['msg']}")
        return None
    desired = item.kind.desired(address, document.spec, environment)
    projected = item.kind.live_document(item.live, desired)
    keys = marker_keys(address)
    if _without(projected, keys) != _without(desired, keys):
        differing = sorted(k for k in desired if _without(projected, keys).get(k) != _without(desired, keys).get(k))
        problems.append(f"{item.describe()} does not read back as the manifest written for it "
                        f"(fields {', '.join(differing)}); it is left as it is: nothing was exported")
        return None
    return ExportedObject(
        address=address, kind=item.kind.name, alias=item.alias, app=item.app, dataset_id=item.key,
        display_name=str(item.live.get("name")), spec=spec, desired=desired,
        tracked=address in state.resources, needs_marking=projected != desired, live=item.live,
    )


def _shown(loc: tuple) -> str:
    """``("spec", "columns", 0, "columnType")`` as ``spec.columns[0].columnType``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _without(document: dict[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    attributes = document.get("customAttributes")
    if not isinstance(attributes, dict):
        return document
    return {**document, "customAttributes": {k: v for k, v in attributes.items() if k not in keys}}


def _strings(value: Any, path: tuple) -> Iterable[tuple[str, str]]:
    if isinstance(value, str):
        yield ".".join(str(p) for p in path), value
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield from _strings(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _strings(inner, (*path, index))


def _variables(
    exported: list[ExportedObject], declared: Mapping[str, Any]
) -> tuple[dict[tuple[str, tuple], str], dict[str, str], dict[str, str]]:
    """(address, spec path) -> variable name, the new variables and the reused ones. A value
    some variable of the environment holds already is that variable (the first by name);
    a new one is named after its hint, ``<hint>_connection``, numbered when taken."""
    holders: dict[str, str] = {}
    for name in sorted(declared):
        if isinstance(declared[name], str):
            holders.setdefault(declared[name], name)
    hints: dict[str, str] = {}
    places: list[tuple[str, tuple, str]] = []
    for obj in exported:
        for path, hint in KINDS[obj.kind].environment_values(obj.spec):
            value = _at(obj.spec, path)
            places.append((obj.address, path, value))
            hints.setdefault(value, hint)
    taken = set(declared)
    new: dict[str, str] = {}
    reused: dict[str, str] = {}
    chosen: dict[str, str] = {}
    for value in sorted(hints):
        if value in holders:
            chosen[value] = holders[value]
            reused[holders[value]] = value
            continue
        base = f"{slug(hints[value], 'connection').replace('-', '_')}_connection"
        name, number = base, 1
        while name in taken:
            number += 1
            name = f"{base}_{number}"
        taken.add(name)
        chosen[value] = name
        new[name] = value
    return {(address, path): chosen[value] for address, path, value in places}, new, reused


def _at(spec: Any, path: tuple) -> Any:
    for part in path:
        spec = spec[part]
    return spec


def _document(obj: ExportedObject, names: Mapping[tuple[str, tuple], str]) -> dict[str, Any]:
    spec = _copy(obj.spec)
    for path, _ in KINDS[obj.kind].environment_values(obj.spec):
        holder = _at(spec, path[:-1])
        holder[path[-1]] = f"${{var.{names[(obj.address, path)]}}}"
    return {"apiVersion": API_VERSION, "kind": obj.kind, "metadata": {"name": obj.address.partition(".")[2]},
            "spec": spec}


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _record(obj: ExportedObject) -> ResourceState:
    """What apply records after creating the object (engine._create, journal.recorded_resource)."""
    kind = KINDS[obj.kind]
    live = obj.live
    source = None
    spec = _validated(kind, obj.address, obj.spec).spec
    ref = kind.source(spec)
    if ref is not None and ref.address is not None:
        origin = live.get("sourceDataset") or {}
        source = {"address": ref.address, "datasetId": origin.get("datasetId"),
                  "appId": origin.get("appId"), "userId": origin.get("userId")}
    elif ref is not None and ref.external is not None:
        source = ref.external.model_dump()
    return ResourceState(
        kind=obj.kind, datasetId=obj.dataset_id, appId=obj.app.app_id, userId=obj.app.user_id,
        connectionId=live.get("connectionId"), shared=bool(live.get("isPublic", False)), protect=False,
        applied_hash=kind.applied_hash(obj.desired, PLAIN), source=source,
        managed=kind.managed_fields(obj.desired), applied_fields=kind.applied_fields(obj.desired, PLAIN),
    )


def _error(problems: list[str]) -> ExportError:
    count = len(problems)
    lines = "\n".join(f"- {line}" for line in problems)
    return ExportError(f"cannot export: {count} problem{'s' if count != 1 else ''}; nothing was written "
                       f"or changed:\n{lines}")
