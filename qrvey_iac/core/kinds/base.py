"""What every resource kind declares, and the Qrvey calls a kind is written against.

A kind is one object (a ``Kind`` subclass instance, registered in ``core/kinds/__init__.py``)
holding everything that differs between resource kinds: the manifest document model, how a
spec becomes the managed document and how a live Get Dataset answer is read back onto it,
the field rules as data, what a spec depends on, its apply phase, and the API calls that
create, read, update and delete it. The planner, diff, engine, journal, renderers and state
ask the registry; they never ask "which kind is this?".
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from qrvey_iac.core.errors import NotFoundError
from qrvey_iac.core.field_drift import field_digests
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.sealing import PLAIN, Sealer

if TYPE_CHECKING:   # names for annotations only: manifest and state import the registry
    from qrvey_iac.core.manifest import Resource, Salvaged
    from qrvey_iac.core.state import JournalEntry, ResourceState, State

API_VERSION = "qrvey-iac/v1"
NAME_PATTERN = r"^[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?$"
# The syntax of an address. Which prefixes exist is the registry's business: an unknown
# prefix is reported as an unknown reference, with the known addresses suggested.
ADDRESS_SYNTAX = r"^[a-z]+\.[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?$"
# The ownership marker every object qrvey-iac makes carries in its customAttributes: the
# address that manages it and the environment whose state records it (owner_marker below).
OWNER_ATTRIBUTE = "qrveyIacAddress"          # customAttributes key naming the managing address
ENVIRONMENT_ATTRIBUTE = "qrveyIacEnvironment"   # ... and the environment (since issue 14)
MARKER_ATTRIBUTES = (OWNER_ATTRIBUTE, ENVIRONMENT_ATTRIBUTE)
_MARKER_PATHS = frozenset(f"customAttributes.{name}" for name in MARKER_ATTRIBUTES)   # never shown in a create
WRITE_ONLY = "(write-only: not returned by Qrvey)"   # the "before" of a write-only field in a plan

LoadMode = str
NO_LOAD: LoadMode = "no"              # apply never loads it
ALWAYS_LOADED: LoadMode = "true"      # load: true
ON_CHANGE: LoadMode = "onChange"      # load: onChange
LOADED_STATUSES = ("LOADED", "ACTIVE")    # both accepted as loaded (qrvey-api.md: 2021 API, newer UI)


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Metadata(Frozen):
    name: str = Field(pattern=NAME_PATTERN, description="Logical name, unique per kind.")
    dependsOn: tuple[Annotated[str, Field(pattern=ADDRESS_SYNTAX)], ...] = Field(
        default=(), description="Extra ordering: addresses that must exist first."
    )


class ExternalSource(Frozen):
    """A shared dataset that qrvey-iac does not manage."""

    appId: str = Field(min_length=1)
    userId: str = Field(min_length=1)
    datasetId: str = Field(min_length=1)


class QrveyApi(Protocol):
    """The Qrvey calls kinds are written against (one HTTP choke point behind it)."""

    async def read(self, app: AppRef, dataset_id: str) -> dict[str, Any] | None: ...   # None: 404
    async def create_dataset(self, app: AppRef, body: dict[str, Any]) -> dict[str, Any]: ...
    async def clone_view(
        self, app: AppRef, source: AppRef, connection_id: str, name: str, custom_attributes: dict[str, Any] | None
    ) -> dict[str, Any]: ...
    async def update_dataset(self, app: AppRef, dataset_id: str, body: dict[str, Any]) -> None: ...
    async def apply_changes(self, app: AppRef, dataset_id: str) -> dict[str, Any]: ...
    async def set_shared(self, app: AppRef, dataset_id: str, shared: bool) -> dict[str, Any]: ...
    async def delete(self, app: AppRef, dataset_id: str) -> bool: ...                  # False: 404
    async def list_app(self, app: AppRef) -> list[dict[str, Any]]: ...
    async def get_app(self, app: AppRef) -> dict[str, Any] | None: ...                 # None: 404
    # connections (qrvey-api.md C1-C5): Qrvey's own lower-case keys (connectorid, appid, userid)
    async def create_connection(self, app: AppRef, body: dict[str, Any]) -> dict[str, Any]: ...
    async def read_connection(self, app: AppRef, connection_id: str) -> dict[str, Any] | None: ...  # None: 404
    async def update_connection(self, app: AppRef, connection_id: str, body: dict[str, Any]) -> dict[str, Any]: ...
    async def delete_connection(self, app: AppRef, connection_id: str) -> bool: ...     # False: 404
    async def list_connections(self, app: AppRef) -> list[dict[str, Any]]: ...
    async def load(self, app: AppRef, dataset_id: str) -> dict[str, Any]: ...           # start a load (D8)


@dataclass(frozen=True)
class FieldRules:
    """Per-field rules as data (Titan's per-resource rules).

    - ``managed``: top-level fields of the managed document; nothing else is compared.
    - ``read_back``: the fields of a live answer the kind reads (a refresh keeps only these).
    - ``server_owned``: fields only Qrvey sets (ids, status, dates); they never enter a
      managed document, so they never show as a change.
    - ``forces_replacement``: spec settings that cannot change in place; each has a check
      in ``Kind.replacement_checks``.
    - ``write_only``: fields Qrvey never returns (a secret): compared by the applied hash
      of what was sent, never against the live answer.
    - ``renamable``: maps of named things (keyed by name) where one entry removed and one
      added read as a rename, field by field (``datasources``), not as two unrelated entries.
    """

    managed: tuple[str, ...]
    read_back: tuple[str, ...]
    server_owned: tuple[str, ...]
    forces_replacement: tuple[str, ...]
    write_only: tuple[str, ...] = ()
    renamable: tuple[str, ...] = ()


# A check for one field that forces replacement: a reason, or None when unchanged. The
# sealer compares a recorded value that was concealed (a secret id) with the manifest's.
ReplacementCheck = Callable[["Resource", "ResourceState", Mapping[str, Any], set[str], Sealer], "str | None"]


@dataclass(frozen=True)
class SourceRef:
    """The dataset a resource is built from (a view's source), by address or by ids."""

    address: str | None = None
    external: ExternalSource | None = None


class Kind:
    """One resource kind. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]                    # the manifest's ``kind:``
    prefix: ClassVar[str]                  # the address prefix: ``<prefix>.<metadata.name>``
    plural: ClassVar[str]                  # in messages: "3 datasets"
    document: ClassVar[type[BaseModel]]    # the manifest document model (apiVersion, kind, metadata, spec)
    rules: ClassVar[FieldRules]
    teardown_phase: ClassVar[int]          # deletes run by phase, lowest first (dependents before sources)
    shareable: ClassVar[bool] = False      # has a share flag (publishVersion isPublic)
    client_minted_id: ClassVar[bool] = True    # the create sends the id; False: Qrvey mints it
    checked_spec_paths: ClassVar[tuple[tuple[str, ...], ...]] = ()   # spec lines kept for later checks
    reference_fields: ClassVar[tuple[str, ...]] = ()   # spec fields source() and dependencies() read
    # document paths whose value must be exactly ``${env:NAME}`` (a password): a literal is refused
    env_only: ClassVar[tuple[tuple[str, ...], ...]] = ()
    # a delete is refused in the plan while other objects use it (``users``, ``uses``)
    guards_delete: ClassVar[bool] = False
    # Loads (a kind holding data, as a Dataset): the change paths that need a reload after
    # Apply Changes (fnmatch patterns over FieldChange.path); see load_wanted.
    structural_changes: ClassVar[tuple[str, ...]] = ()

    # -- addresses and dependencies ---------------------------------------------------------

    def address(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def source(self, spec: Any) -> SourceRef | None:
        """The dataset this resource is built from, if any."""
        return None

    def dependencies(self, spec: Any) -> tuple[str, ...]:
        """Managed addresses the spec itself references (its source first)."""
        source = self.source(spec)
        return (source.address,) if source and source.address else ()

    def reference_path(self, spec: Any, address: str) -> tuple | None:
        """The document path (``("spec", "source")``) where ``spec`` references ``address``, or
        None when it does not (a ``metadata.dependsOn`` entry). ``spec`` may be salvaged."""
        source = self.source(spec) if getattr(spec, "source", None) is not None else None
        return ("spec", "source") if source is not None and source.address == address else None

    def uses(self, document: Mapping[str, Any] | None) -> set[str]:
        """The ids of other Qrvey objects a document (live or desired) is built on (a dataset:
        the connections of its datasources)."""
        return set()

    async def users(self, api: QrveyApi, app: AppRef, object_id: str) -> list[dict[str, Any]]:
        """What Qrvey tells of the objects that use this one (``guards_delete`` kinds), each
        with its ``datasetId`` and ``name``; [] when it cannot tell."""
        return []

    listed_apart: ClassVar[bool] = False    # its objects are not in an app's dataset listing (listing below)

    async def listing(self, api: QrveyApi, app: AppRef) -> list[dict[str, Any]]:
        """Every object of this kind in ``app`` (a kind whose ids Qrvey mints is listed to find
        a create that landed late), each with its id as ``datasetId``."""
        return await api.list_app(app)

    def is_shared(self, spec: Any) -> bool:
        return self.shareable and bool(getattr(spec, "shared", False))

    def load_mode(self, spec: Any) -> LoadMode:
        """What the spec asks of loads: NO_LOAD (the default, and kinds that hold no data),
        ALWAYS_LOADED (``load: true``) or ON_CHANGE (``load: onChange``)."""
        return NO_LOAD

    @property
    def loadable(self) -> bool:
        """It holds data Qrvey loads (a Dataset; a view shows its source's)."""
        return bool(self.structural_changes)

    def is_structural(self, path: str) -> bool:
        """Whether a change at ``path`` needs a reload after Apply Changes (qrvey-api.md D5)."""
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.structural_changes)

    def check_source(self, resource: Resource | Salvaged, source: Resource | Salvaged) -> list[tuple[tuple, str]]:
        """Problems of using managed ``source`` as this resource's source: (spec path, message).
        Either may be a document that failed validation (``Salvaged``): a check reads only
        fields outside its ``broken`` paths, which are reported already."""
        return []

    def missing_source_columns(self, spec: Any, source_live: Mapping[str, Any] | None) -> tuple[str, ...]:
        """Columns the spec overrides that its source, as Qrvey holds it now (``source_live``),
        does not have (a view's column overrides); () when nothing is overridden or unknown."""
        return ()

    # -- documents ----------------------------------------------------------------------------

    def desired(self, address: str, spec: Any, environment: str = "") -> dict[str, Any]:
        """The managed document of a spec (the share flag is planned apart), marked as
        ``address`` of ``environment`` (``owner_attributes``)."""
        raise NotImplementedError

    def is_kind_of(self, live: Mapping[str, Any]) -> bool:
        """Whether a live object is of this kind (an import refuses to adopt one that is not)."""
        return True

    def adopt_id(self, spec: Any) -> str | None:
        """The dataset id ``spec.adopt`` names (an existing object to take under management
        instead of creating one), or None. Inert once the state records the address."""
        adopt = getattr(spec, "adopt", None)
        return adopt.datasetId if adopt is not None else None

    def managed_fields(self, document: dict[str, Any] | None) -> dict[str, list[str]]:
        """What a document manages beyond its fixed fields: recorded in state so removals show."""
        return {}

    def with_removals(self, desired: dict[str, Any], managed: Mapping[str, list[str]]) -> dict[str, Any]:
        """Mark what the manifest managed before and no longer does (None = remove / reset)."""
        return desired

    def without_removals(self, document: dict[str, Any]) -> dict[str, Any]:
        return document

    def applied_hash(self, document: dict[str, Any] | None, sealer: Sealer = PLAIN) -> str:
        """The hash recorded after an apply: the document without its removal marks. One that
        holds a secret is keyed by ``sealer`` (core/sealing.py), so the state cannot be used
        to guess the secret."""
        return sealer.digest(_without_environment(self.without_removals(document or {})))

    def applied_fields(self, document: dict[str, Any] | None, sealer: Sealer = PLAIN) -> dict[str, str]:
        """The per-field digests recorded with ``applied_hash`` (keyed the same way), so a plan
        tells a hand edit from a manifest change field by field (core/field_drift.py)."""
        return field_digests(_without_environment(self.without_removals(document or {})), sealer)

    def compared_part(self, live: dict[str, Any] | None) -> dict[str, Any] | None:
        """The part of a live answer planning reads (``rules.read_back``)."""
        if live is None:
            return None
        return {key: live[key] for key in self.rules.read_back if key in live}

    def live_document(
        self, live: Mapping[str, Any], desired: dict[str, Any], *, adopting: bool = False
    ) -> dict[str, Any]:
        """A live answer projected onto the fields ``desired`` manages. Write-only fields are
        never read back: they stand as desired, and a change shows through the applied hash.

        An object a release before issue 14 made carries the address marker without the
        environment one: for a tracked object (the state already says whose it is) that is no
        change (it is written with the object's next update), so an upgrade brings no update
        storm. ``adopting`` (an import) compares the whole marker: adopting writes it."""
        projected = self.project_live(live, desired)
        for key in self.rules.write_only:
            if key in desired:
                projected[key] = desired[key]
        if not adopting:
            _tolerate_missing_environment(projected, live, desired)
        return projected

    def project_live(self, live: Mapping[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def compared_documents(
        self, live: dict[str, Any], desired: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The two documents a plan diffs (the projected live one, the desired one). A kind
        may show a removal mark (None) as what the removal makes of the object in Qrvey."""
        return live, desired

    def create_fields(self, desired: dict[str, Any]) -> list[tuple[str, Any]]:
        """Every field a create sends, one (path, value) each, for plans: the managed fields in
        the order of ``rules.managed``, named entries in manifest order
        (``datasources.Orders.tableName``, ``columns.Total.columnType``). The owner marker
        qrvey-iac adds to every object is left out."""
        order = [*self.rules.managed, *(k for k in desired if k not in self.rules.managed)]
        return [row for key in order if key in desired for row in _flattened(desired[key], key)]

    # -- planning -----------------------------------------------------------------------------

    replacement_checks: ClassVar[Mapping[str, ReplacementCheck]] = {}

    def replace_reason(
        self, resource: Resource, current: ResourceState, live: Mapping[str, Any], recreated: set[str],
        sealer: Sealer = PLAIN,
    ) -> str | None:
        """Why the resource must be replaced (the first field of ``rules.forces_replacement``
        whose check fires), or None."""
        for name in self.rules.forces_replacement:
            reason = self.replacement_checks[name](resource, current, live, recreated, sealer)
            if reason:
                return reason
        return None

    # -- the API calls ------------------------------------------------------------------------

    async def read(self, api: QrveyApi, app: AppRef, dataset_id: str) -> dict[str, Any] | None:
        return await api.read(app, dataset_id)

    async def prepare_create(self, api: QrveyApi, state: State, app: AppRef, source: dict | None) -> dict[str, Any]:
        """What a create's journal entry must hold beyond the target (read before the write)."""
        return {}

    async def create(
        self, api: QrveyApi, entry: JournalEntry, desired: dict[str, Any]
    ) -> dict[str, Any]:
        """Send the create that ``entry`` (already journaled) describes."""
        raise NotImplementedError

    async def find_landed(self, api: QrveyApi, entry: JournalEntry, state: State) -> dict[str, Any] | None:
        """The object a journaled create made, if it landed (by id; see the view kind for minted ids)."""
        return await api.read(AppRef(entry.userId, entry.appId), entry.datasetId or "")

    async def finish_landed(
        self, api: QrveyApi, entry: JournalEntry, found: dict[str, Any], desired: dict[str, Any]
    ) -> dict[str, Any]:
        """Complete what ``create`` does after its first call, for an object found landed."""
        return found

    async def update(self, api: QrveyApi, app: AppRef, dataset_id: str, desired: dict[str, Any]) -> dict[str, Any]:
        """Full-replace PUT of the live definition with the managed fields overlaid, then apply."""
        live = await api.read(app, dataset_id)
        if live is None:
            raise NotFoundError(404, f"dataset {dataset_id} not found", "GET", f"dataset/{dataset_id}")
        await api.update_dataset(app, dataset_id, self.update_body(live, desired))
        return await api.apply_changes(app, dataset_id)

    def update_body(self, live: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    async def delete(self, api: QrveyApi, app: AppRef, dataset_id: str) -> bool:
        return await api.delete(app, dataset_id)

    # -- leaving management (kind: Removed) ---------------------------------------------------

    def carries_marker(self, live: Mapping[str, Any], address: str) -> bool:
        """Whether ``live`` carries the ownership marker qrvey-iac writes for ``address``."""
        attributes = live.get("customAttributes")
        attributes = attributes if isinstance(attributes, dict) else {}
        return all(attributes.get(key) == value for key, value in owner_attributes(None, address).items())

    def released(self, live: Mapping[str, Any], address: str) -> dict[str, Any]:
        """A managed document that leaves ``live`` as it is but for the ownership marker of
        ``address``, taken off (None: removed), for ``update``: every managed field read back
        from the object itself."""
        document = self.project_live(live, {key: {} for key in self.rules.managed})
        document["customAttributes"] = {key: None for key in MARKER_ATTRIBUTES}     # address and environment
        return document
    # -- export (core/export.py): a live object back into a manifest spec -----------------------

    def describes(self, live: Mapping[str, Any]) -> bool:
        """Whether ``live``, an object of an app's listing, is of this kind."""
        return False

    def exported_spec(
        self, live: Mapping[str, Any], app_alias: str, sources: Mapping[str, str], marker_keys: frozenset[str],
        exported: Mapping[str, Mapping[str, Any]],
    ) -> dict[str, Any]:
        """The manifest spec (plain data, in manifest order) that manages ``live`` as it is: only
        the fields the format manages. ``sources``: datasetId -> address of the exported shared
        datasets (a view names those by address, others by ids); ``marker_keys``: the
        customAttributes qrvey-iac writes itself (``owner_attributes``), left out; ``exported``:
        every exported live object by datasetId (a view leaves out what it inherits)."""
        raise NotImplementedError(f"kind {self.name} cannot be exported")

    def environment_values(self, spec: Mapping[str, Any]) -> list[tuple[tuple, str]]:
        """Spec paths of values that differ per environment (a connection id), each with a
        word to name its variable by."""
        return []


def _flattened(value: Any, path: str) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    _flatten_into(rows, value, path)
    return rows


def _flatten_into(rows: list[tuple[str, Any]], value: Any, path: str) -> None:
    if path in _MARKER_PATHS:
        return
    if isinstance(value, dict):       # an empty map (a view with no column overrides) sends nothing
        for key, inner in value.items():
            _flatten_into(rows, inner, f"{path}.{key}")
    elif value is not None:
        rows.append((path, value))


@dataclass(frozen=True)
class NamedProjection:
    """How a map of named things (datasources, columns) is read back for comparison."""

    default_fields: tuple[str, ...]       # compared when the manifest names none
    keep_unmanaged: bool                   # live entries the manifest does not name still show
    always: tuple[str, ...] = field(default=())   # fields kept even when the live value is absent


def project_named(have: Mapping[str, dict], wanted: Mapping[str, dict | None], how: NamedProjection) -> dict[str, Any]:
    """``have`` (live, by name) projected onto the fields ``wanted`` names, entry by entry."""
    names = set(have) if how.keep_unmanaged else set(have).intersection(wanted)
    projected: dict[str, Any] = {}
    for name in sorted(names):
        entry = have[name]
        fields = (wanted.get(name) or {}).keys() or how.default_fields
        shown = {}
        for f in fields:
            value = entry.get(f)
            if value is not None:
                shown[f] = jsonable(value)
            elif f in how.always:
                shown[f] = None
        projected[name] = shown
    return projected


def claimed_twice(items: list[dict[str, Any]], state: State, environment: str = "") -> list[str]:
    """Objects of a listing that carry the marker of an address the state records with another
    id (and no create of it pending): a view create that landed after it was concluded lost,
    past its landing window, or a copy. Never adopted nor ignored: reported. An object marked
    by another environment is that environment's business (``marked_by``), never a claim here."""
    tracked = {r.datasetId for r in state.resources.values()}
    pending = {e.address for e in state.journal if e.op == "create"}
    found = []
    for item in items:
        address, marked_env = marker_of(item)
        if marked_env is not None and marked_env != environment:
            continue
        recorded = state.resources.get(address) if address is not None else None
        if recorded is None or address in pending or item.get("datasetId") in tracked:
            continue
        found.append(f"{address}: {item.get('datasetId')} in app {item.get('appId')} carries its marker "
                     f"{OWNER_ATTRIBUTE} but the state records {recorded.datasetId}")
    return found


KNOWN_AFTER_APPLY = "(known after apply: {address})"
_PENDING = re.compile(r"^\(known after apply: ([a-z]+\.[a-z0-9_-]+)\)$")


def reference(address: str) -> str:
    """What a managed document holds where the id of the object at ``address`` goes (a
    dataset's ``connectionId`` given as ``connection: connection.warehouse``) until it is
    resolved: by the planner from the state, by apply from the state as it is then.

    A kind places one only for an address its ``dependencies`` name, so a resource that
    depends on nothing holds none: the planner and apply leave its document as it is."""
    return KNOWN_AFTER_APPLY.format(address=address)


def resolve_references(document: Any, ids: Mapping[str, str]) -> Any:
    """``document`` with every reference whose address ``ids`` knows replaced by its id; the
    others stay, shown as ``(known after apply: <address>)``."""
    if isinstance(document, dict):
        return {k: resolve_references(v, ids) for k, v in document.items()}
    if isinstance(document, list):
        return [resolve_references(v, ids) for v in document]
    if isinstance(document, str):
        match = _PENDING.match(document)
        if match and match.group(1) in ids:
            return ids[match.group(1)]
    return document


def unresolved_references(document: Any) -> set[str]:
    """The addresses whose ids ``document`` still waits for."""
    if isinstance(document, dict):
        return {a for v in document.values() for a in unresolved_references(v)}
    if isinstance(document, list):
        return {a for v in document for a in unresolved_references(v)}
    match = _PENDING.match(document) if isinstance(document, str) else None
    return {match.group(1)} if match else set()


def owner_marker(address: str, environment: str) -> dict[str, str]:
    """The ownership marker (customAttributes) of ``address`` in ``environment``: the only place
    it is built. Two attributes, not one ``env/address`` value: an object made by a release
    before issue 14 keeps a valid ``qrveyIacAddress`` (nothing to rewrite, no update storm), and
    each part is matched exactly. An empty ``environment`` (a unit test's manifest) marks the
    address alone, as those releases did."""
    marker = {OWNER_ATTRIBUTE: address}
    if environment:
        marker[ENVIRONMENT_ATTRIBUTE] = environment
    return marker


def marker_of(item: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(address, environment) the live object ``item`` is marked with; None where it carries
    none (environment None and an address: marked by a release before issue 14)."""
    attributes = item.get("customAttributes")
    attributes = attributes if isinstance(attributes, dict) else {}
    address, environment = attributes.get(OWNER_ATTRIBUTE), attributes.get(ENVIRONMENT_ATTRIBUTE)
    return (address if isinstance(address, str) else None,
            environment if isinstance(environment, str) else None)


def _without_environment(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` without the environment marker: the applied hash and field digests stay what
    a release before issue 14 recorded for the same manifest (the marker is no managed field)."""
    attributes = document.get("customAttributes")
    if not isinstance(attributes, dict) or ENVIRONMENT_ATTRIBUTE not in attributes:
        return document
    return {**document, "customAttributes": {k: v for k, v in attributes.items() if k != ENVIRONMENT_ATTRIBUTE}}


def _tolerate_missing_environment(projected: dict[str, Any], live: Mapping[str, Any], desired: dict[str, Any]) -> None:
    wanted = desired.get("customAttributes")
    shown = projected.get("customAttributes")
    if not isinstance(wanted, dict) or not isinstance(shown, dict) or ENVIRONMENT_ATTRIBUTE not in wanted:
        return
    address, environment = marker_of(live)
    if environment is None and address == wanted.get(OWNER_ATTRIBUTE):
        projected["customAttributes"] = {**shown, ENVIRONMENT_ATTRIBUTE: wanted[ENVIRONMENT_ATTRIBUTE]}


def given(fields: dict[str, Any], skip: str) -> dict[str, Any]:
    return {k: jsonable(v) for k, v in fields.items() if v is not None and k != skip}


def jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def owner_attributes(spec: Any, address: str, environment: str = "") -> dict[str, Any]:
    """The customAttributes a spec's object carries: its own, then the marker (owner_marker)."""
    attributes = dict(getattr(spec, "customAttributes", None) or {})
    attributes.update(owner_marker(address, environment))
    return attributes


class AdoptSpec(Frozen):
    """``spec.adopt``: take an existing object under management instead of creating one."""

    datasetId: str = Field(min_length=1, description="The id of the dataset (or view) in Qrvey to adopt.")


def attributes_with_removals(document: dict[str, Any], managed: Mapping[str, list[str]]) -> dict[str, Any]:
    attributes = dict(document.get("customAttributes") or {})
    for key in managed.get("customAttributes", ()):
        attributes.setdefault(key, None)
    return attributes


def managed_attributes(document: dict[str, Any]) -> list[str]:
    return sorted(k for k, v in (document.get("customAttributes") or {}).items() if v is not None)


def overlay_attributes(live: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """Live customAttributes with the managed ones set (None: no longer in the manifest, removed)."""
    attributes = dict(live.get("customAttributes") or {})
    for key, value in desired.get("customAttributes", {}).items():
        if value is None:
            attributes.pop(key, None)
        else:
            attributes[key] = value
    return attributes


def app_changed(
    resource: Resource, current: ResourceState, live: Mapping[str, Any], recreated: set[str], sealer: Sealer
) -> str | None:
    if (current.userId, current.appId) != (resource.app.user_id, resource.app.app_id):
        return f"app changed from {current.appId} to {resource.app.app_id} (a dataset cannot move between apps)"
    return None


def reject_duplicates(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"duplicate {what} {name!r}")
        seen.add(name)
