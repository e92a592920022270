"""kind: DatasetView: a view, in another app, of a shared dataset (managed or not).

Qrvey makes a view by cloning the shared dataset's connection into the target app and mints
its id; so a view's create is found again by listing the app for the journaled source
connection and the ownership marker, never by id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator

from qrvey_iac.core.errors import ApplyError, UndecidedError, did_you_mean
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.kinds.base import (
    OWNER_ATTRIBUTE, AdoptSpec, ExternalSource, FieldRules, Frozen, Kind, Metadata, QrveyApi, SourceRef, app_changed,
    attributes_with_removals, given, managed_attributes, owner_attributes, reject_duplicates,
)
from qrvey_iac.core.kinds.dataset import base_update_body
from qrvey_iac.core.sealing import Sealer

if TYPE_CHECKING:
    from qrvey_iac.core.manifest import Resource, Salvaged
    from qrvey_iac.core.state import JournalEntry, ResourceState, State

VIEW_COLUMN_READ = ("origColumnSourceName", "columnName", "visible")


class ViewColumnSpec(Frozen):
    """Rename or hide one column of the source in a view."""

    column: str = Field(min_length=1, description="The source column's name.")
    columnName: str | None = Field(default=None, description="The name shown in the view.")
    visible: bool | None = None


class DatasetViewSpec(Frozen):
    app: str = Field(min_length=1)
    source: Annotated[str, Field(pattern=r"^dataset\.")] | ExternalSource = Field(
        description="dataset.<name> of a managed shared Dataset, or {appId, userId, datasetId}."
    )
    name: str = Field(min_length=1)
    protect: bool = False
    columns: tuple[ViewColumnSpec, ...] = ()
    customAttributes: dict[str, Any] | None = None
    adopt: AdoptSpec | None = Field(
        default=None, description="Adopt this existing view instead of creating one (plan shows an import); "
                                  "ignored once the state records the address.")

    @field_validator("columns")
    @classmethod
    def _unique_columns(cls, value: tuple[ViewColumnSpec, ...]):
        reject_duplicates([c.column for c in value], "column")
        return value


class DatasetViewDocument(Frozen):
    apiVersion: Literal["qrvey-iac/v1"]
    kind: Literal["DatasetView"]
    metadata: Metadata
    spec: DatasetViewSpec


def _column_names(source: Resource | Salvaged) -> set[str] | None:
    """The names a view of ``source`` may override, or None when they cannot be told: the
    source's columns, or the name of one of them, failed validation."""
    naming = ("columnName", "origColumnSourceName")
    if any(path[0] == "columns" and (len(path) < 3 or path[2] in naming) for path in source.broken):
        return None
    return {c.origColumnSourceName or c.columnName for c in getattr(source.spec, "columns", ())}


def _source_recreated(
    resource: Resource, current: ResourceState, live: Mapping[str, Any], recreated: set[str], sealer: Sealer
):
    source = resource.source
    if source and source.address in recreated:
        return f"its source {source.address} gets a new dataset"
    recorded = current.source or {}
    if source and source.external and not sealer.same(recorded.get("datasetId"), source.external.datasetId):
        before = recorded.get("datasetId") or ""
        shown = "" if before.startswith("(sensitive") or sealer.holds_secret(before) else f" from {before}"
        return f"source changed{shown} to {source.external.datasetId}"
    if source and source.address and recorded.get("address") != source.address:
        return f"source changed to {source.address}"
    if live.get("sourceStatus") == "DELETED":
        return "its source dataset was deleted outside qrvey-iac"
    return None


class DatasetViewKind(Kind):
    name = "DatasetView"
    prefix = "view"
    plural = "views"
    document = DatasetViewDocument
    rules = FieldRules(
        managed=("name", "columns", "customAttributes"),
        read_back=("name", "columns", "customAttributes", "sourceStatus"),
        server_owned=("datasetId", "appId", "userId", "connectionId", "datasetType", "sourceDataset",
                      "sourceStatus", "status"),
        forces_replacement=("app", "source"),
    )
    replacement_checks = {"app": app_changed, "source": _source_recreated}
    teardown_phase = 0            # a view goes before the dataset it is a view of
    client_minted_id = False
    checked_spec_paths = (("spec", "columns"),)   # overrides are checked against the source later
    reference_fields = ("source",)

    def source(self, spec: DatasetViewSpec) -> SourceRef:
        if isinstance(spec.source, str):
            return SourceRef(address=spec.source)
        return SourceRef(external=spec.source)

    def check_source(self, resource: Resource | Salvaged, source: Resource | Salvaged) -> list[tuple[tuple, str]]:
        """Its source is shared, and has every column it overrides. Both are reported in one
        run; a field that failed validation (``broken``, reported already) is not checked."""
        problems: list[tuple[tuple, str]] = []
        if ("shared",) not in source.broken and not source.definition.is_shared(source.spec):
            problems.append((("spec", "source"),
                             f"{source.address} is not shared: set shared: true on it to use it as a view's source"))
        known = _column_names(source)
        if known is None:
            return problems
        for index, override in enumerate(resource.spec.columns):
            column = getattr(override, "column", None)      # None: this override is broken itself
            if column is not None and column not in known:
                problems.append((("spec", "columns", index, "column"),
                                 f"{source.address} has no column {column!r}{did_you_mean(column, known)} "
                                 f"(its columns: {', '.join(sorted(known))})"))
        return problems

    def missing_source_columns(self, spec: DatasetViewSpec, source_live: Mapping[str, Any] | None) -> tuple[str, ...]:
        """The overridden columns the source's current columns lack, in manifest order. A view's
        columns follow its source's (qrvey-api.md §4): an override of a column removed from the
        source has nothing left to act on. A source not read (None) or with no column list
        (its answer lacks one) is not judged."""
        columns = (source_live or {}).get("columns")
        if not isinstance(columns, list) or not spec.columns:
            return ()
        have = {c.get("origColumnSourceName") or c.get("columnName") for c in columns if isinstance(c, dict)}
        return tuple(override.column for override in spec.columns if override.column not in have)

    def desired(self, address: str, spec: DatasetViewSpec, environment: str = "") -> dict[str, Any]:
        columns = spec.model_dump(include={"columns"})["columns"]
        return {
            "name": spec.name,
            "columns": {c["column"]: given(c, skip="column") for c in columns},
            "customAttributes": owner_attributes(spec, address, environment),
        }

    def is_kind_of(self, live: Mapping[str, Any]) -> bool:
        return live.get("datasetType") == "VIEW"

    def managed_fields(self, document: dict[str, Any] | None) -> dict[str, list[str]]:
        document = document or {}
        managed = {
            "customAttributes": managed_attributes(document),
            "overrides": sorted(k for k, v in (document.get("columns") or {}).items() if v),
        }
        return {k: v for k, v in managed.items() if v}

    def with_removals(self, desired: dict[str, Any], managed: Mapping[str, list[str]]) -> dict[str, Any]:
        columns = dict(desired.get("columns") or {})
        for name in managed.get("overrides", ()):
            columns.setdefault(name, None)        # back to the source's name, visible
        return {**desired, "customAttributes": attributes_with_removals(desired, managed), "columns": columns}

    def without_removals(self, document: dict[str, Any]) -> dict[str, Any]:
        cleaned = dict(document)
        for key in ("customAttributes", "columns"):
            if isinstance(cleaned.get(key), dict):
                cleaned[key] = {k: v for k, v in cleaned[key].items() if v is not None}
        return cleaned

    def compared_part(self, live: dict[str, Any] | None) -> dict[str, Any] | None:
        kept = super().compared_part(live)
        if kept is not None and isinstance(kept.get("columns"), list):
            kept["columns"] = [
                {k: c[k] for k in VIEW_COLUMN_READ if k in c} if isinstance(c, dict) else c for c in kept["columns"]
            ]
        return kept

    def project_live(self, live: Mapping[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
        have = _live_columns(live)
        projected: dict[str, Any] = {}
        for key, wanted in desired.items():
            if key == "columns" and isinstance(wanted, dict):
                projected[key] = _project_overrides(have, wanted)
            elif key == "customAttributes":
                attributes = live.get("customAttributes")
                attributes = attributes if isinstance(attributes, dict) else {}
                projected[key] = {k: attributes.get(k) for k in wanted}
            else:
                projected[key] = live.get(key)
        return projected

    def compared_documents(
        self, live: dict[str, Any], desired: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A removed column override is compared as what Qrvey shows once it is removed (the
        update sends it so): the column under its source's name, visible. The plan then says
        ``columns.Total.columnName: "Order total" → "Total"``, not that an object went away."""
        wanted, have = desired.get("columns"), live.get("columns")
        if not isinstance(wanted, dict) or not isinstance(have, dict):
            return live, desired
        reset = {name: _at_source(name) for name, override in wanted.items() if override is None and name in have}
        if not reset:
            return live, desired
        shown = {name: reset[name] if name in reset and have[name] is None else value for name, value in have.items()}
        return {**live, "columns": shown}, {**desired, "columns": {**wanted, **reset}}

    async def prepare_create(self, api: QrveyApi, state: State, app: AppRef, source: dict | None) -> dict[str, Any]:
        """The source's app and connection (the clone needs them) and the marker to find it by."""
        source = source or {}
        if "address" in source:
            recorded = state.resources[source["address"]]
            ref = {"address": source["address"], "datasetId": recorded.datasetId,
                   "appId": recorded.appId, "userId": recorded.userId}
            connection_id = recorded.connectionId
        else:
            ref = dict(source)
            connection_id = None
        if not connection_id:
            live = await api.read(AppRef(ref["userId"], ref["appId"]), ref["datasetId"])
            connection_id = (live or {}).get("connectionId")
        if not connection_id:
            raise ApplyError(f"source dataset {ref['datasetId']} not found in Qrvey")
        return {"connectionId": connection_id, "source": ref}

    async def create(self, api: QrveyApi, entry: JournalEntry, desired: dict[str, Any]) -> dict[str, Any]:
        app = AppRef(entry.userId, entry.appId)
        source = entry.detail.source or {}
        view = await api.clone_view(app, AppRef(source["userId"], source["appId"]), entry.detail.connectionId or "",
                                    desired["name"], desired.get("customAttributes"))
        return await self.finish_landed(api, entry, view, desired)

    async def find_landed(self, api: QrveyApi, entry: JournalEntry, state: State) -> dict[str, Any] | None:
        return find_view(await api.list_app(AppRef(entry.userId, entry.appId)), entry, state)

    async def finish_landed(
        self, api: QrveyApi, entry: JournalEntry, found: dict[str, Any], desired: dict[str, Any]
    ) -> dict[str, Any]:
        """After the clone: set the name, column overrides and attributes when they still differ."""
        body = self.update_body(found, desired)
        if any(body.get(k) != found.get(k) for k in ("name", "columns", "customAttributes")):
            app = AppRef(entry.userId, entry.appId)
            return {**found, **await self.update(api, app, found["datasetId"], desired)}
        return found

    def update_body(self, live: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
        body = base_update_body(live, desired)
        body["columns"] = _view_columns(live.get("columns") or [], desired.get("columns", {}))
        return body

    # -- export -------------------------------------------------------------------------------

    def describes(self, live: Mapping[str, Any]) -> bool:
        return live.get("datasetType") == "VIEW" or bool(live.get("sourceDataset"))

    def exported_spec(
        self, live: Mapping[str, Any], app_alias: str, sources: Mapping[str, str], marker_keys: frozenset[str],
        exported: Mapping[str, Mapping[str, Any]],
    ) -> dict[str, Any]:
        """The view's source by address when it is exported too (and shared), by ids otherwise;
        an override for each column renamed or hidden in the view: shown otherwise than in its
        source when the source is exported too (what it inherits is left out), otherwise
        than under the source column's name, visible, when not."""
        source = live.get("sourceDataset")
        source = source if isinstance(source, dict) else {}
        address = sources.get(source.get("datasetId"))
        spec: dict[str, Any] = {
            "app": app_alias,
            "source": address or {key: source.get(key) for key in ("appId", "userId", "datasetId")},
            "name": live.get("name"),
        }
        inherited = _live_columns(exported.get(source.get("datasetId")) or {})
        overrides = []
        for key, column in _live_columns(live).items():
            origin = inherited.get(key, {"columnName": key, "visible": True})
            override: dict[str, Any] = {"column": key}
            if column.get("columnName") != origin.get("columnName"):
                override["columnName"] = column.get("columnName")
            if column.get("visible") != origin.get("visible"):
                override["visible"] = column.get("visible")
            if len(override) > 1:
                overrides.append(override)
        if overrides:
            spec["columns"] = overrides
        attributes = {k: v for k, v in (live.get("customAttributes") or {}).items() if k not in marker_keys}
        if attributes:
            spec["customAttributes"] = dict(attributes)
        return spec


def find_view(items: list[dict[str, Any]], entry: JournalEntry, state: State) -> dict[str, Any] | None:
    """The view a journaled create made: same source connection, same marker, not tracked elsewhere."""
    tracked = {r.datasetId for a, r in state.resources.items() if a != entry.address}
    matches = [
        item for item in items
        if (item.get("sourceDataset") or {}).get("connectionId") == entry.detail.connectionId
        and (item.get("customAttributes") or {}).get(OWNER_ATTRIBUTE) == entry.address
        and item.get("datasetId") not in tracked
    ]
    if len(matches) > 1:
        ids = ", ".join(sorted(m["datasetId"] for m in matches))
        raise UndecidedError(f"{len(matches)} candidate views ({ids}) in app {entry.appId}; "
                             "delete the extra ones in Qrvey, then run again")
    return matches[0] if matches else None


def _at_source(name: str) -> dict[str, Any]:
    """A view column with no override: its source's name, shown."""
    return {"columnName": name, "visible": True}


def _live_columns(live: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    columns = {}
    for column in live.get("columns") or []:
        key = column.get("origColumnSourceName") or column.get("columnName")
        columns[str(key)] = {"columnName": column.get("columnName"), "visible": column.get("visible", True)}
    return columns


def _project_overrides(have: dict[str, dict], wanted: dict[str, dict | None]) -> dict[str, Any]:
    projected: dict[str, Any] = {}
    for name in sorted(wanted):
        if name not in have:
            continue
        column = have[name]
        if wanted[name] is None:      # a removed override: at the source's name and shown, or not
            at_reset = column.get("columnName") == name and column.get("visible", True) is True
            projected[name] = None if at_reset else column
            continue
        fields = wanted[name].keys() or ("columnType",)
        projected[name] = {f: column.get(f) for f in fields if column.get(f) is not None}
    return projected


def _view_columns(columns: list[dict[str, Any]], overrides: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for column in columns:
        key = column.get("origColumnSourceName") or column.get("columnName")
        override = overrides.get(key, {})
        if override is None:                   # override removed: back to the source's name, shown
            override = _at_source(key)
        out.append({**column, **override})
    return out


VIEW = DatasetViewKind()
