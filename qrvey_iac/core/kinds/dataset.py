"""kind: Dataset: a table or a query over a connection, possibly shared with other apps."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.kinds.base import (
    ALWAYS_LOADED, NO_LOAD, ON_CHANGE, AdoptSpec, FieldRules, Frozen, Kind, LoadMode, Metadata, NamedProjection,
    QrveyApi, app_changed, attributes_with_removals, given, managed_attributes, overlay_attributes, owner_attributes,
    project_named, reference, reject_duplicates,
)

DATASOURCE_KEYS = ("connectionId", "connectorType", "database", "tableName", "query")
CLIENT_FIELDS = ("name", "datasources", "columns", "dataSync", "customAttributes")
REBUILT_FIELDS = ("name", "columns", "customAttributes")  # update_body replaces these: copying them is waste


CONNECTION_REFERENCE = r"^connection\.[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?$"


class DatasourceSpec(Frozen):
    """One source of a dataset: a table or a query over a connection, given as a managed
    Connection (``connection: connection.warehouse``) or as the id of one (``connectionId``)."""

    name: str = Field(min_length=1)
    connection: str | None = Field(
        default=None, pattern=CONNECTION_REFERENCE,
        description="connection.<name> of a managed Connection (its id is sent as connectionId).",
    )
    connectionId: str | None = Field(default=None, min_length=1, description="The id of a connection.")
    connectorType: str = Field(min_length=1, description="e.g. MSSQL_LIVE, MYSQL_LIVE")
    database: str | None = None
    tableName: str | None = None
    query: str | None = None
    datasourceId: str | None = Field(
        default=None, description="Optional; Qrvey mints one when absent (then not managed)."
    )

    @model_validator(mode="after")
    def _table_or_query(self) -> DatasourceSpec:
        if (self.connection is None) == (self.connectionId is None):
            raise ValueError("give exactly one of connection (connection.<name>) or connectionId")
        if (self.tableName is None) == (self.query is None):
            raise ValueError("give exactly one of tableName or query")
        return self


class ColumnSpec(Frozen):
    """A column of a dataset. Fields left out are not managed by qrvey-iac."""

    columnName: str = Field(min_length=1)
    columnType: str = Field(min_length=1, description="e.g. NUMBER, STRING, DATE")
    origColumnType: str | None = None
    origColumnSourceName: str | None = None
    visible: bool | None = None
    accessRoles: tuple[str, ...] | None = None


class DatasetSpec(Frozen):
    app: str = Field(min_length=1, description="App alias from the environment's apps.")
    name: str = Field(min_length=1, description="Display name in Qrvey (not an identity).")
    shared: bool = Field(default=False, description="publishVersion isPublic: may be a view's source.")
    protect: bool = Field(default=False, description="Refuse to delete or replace it.")
    load: bool | Literal["onChange"] = Field(
        default=False,
        description="Load its data: true (after create, after every update, and whenever it is not loaded), "
                    "onChange (after create, after a structural change: types, datasources, query, and whenever "
                    "it is not loaded); false: never loaded by qrvey-iac.",
    )
    datasources: tuple[DatasourceSpec, ...] = Field(min_length=1)
    columns: tuple[ColumnSpec, ...] = Field(min_length=1)
    dataSync: dict[str, Any] | None = Field(default=None, description="Passed through as-is.")
    customAttributes: dict[str, Any] | None = None
    adopt: AdoptSpec | None = Field(
        default=None, description="Adopt this existing dataset instead of creating one (plan shows an import); "
                                  "ignored once the state records the address.")

    @field_validator("datasources")
    @classmethod
    def _unique_datasource_names(cls, value: tuple[DatasourceSpec, ...]):
        reject_duplicates([d.name for d in value], "datasource name")
        return value

    @field_validator("columns")
    @classmethod
    def _unique_column_names(cls, value: tuple[ColumnSpec, ...]):
        reject_duplicates([c.columnName for c in value], "columnName")
        return value


class DatasetDocument(Frozen):
    apiVersion: Literal["qrvey-iac/v1"]
    kind: Literal["Dataset"]
    metadata: Metadata
    spec: DatasetSpec


DATASOURCES = NamedProjection(default_fields=DATASOURCE_KEYS, keep_unmanaged=True, always=DATASOURCE_KEYS)
COLUMNS = NamedProjection(default_fields=("columnType",), keep_unmanaged=True)
DATASOURCE_READ = ("name", "datasourceId", *DATASOURCE_KEYS)   # what refresh keeps of a live datasource
COLUMN_READ = tuple(ColumnSpec.model_fields)                    # and of a live column


class DatasetKind(Kind):
    name = "Dataset"
    prefix = "dataset"
    plural = "datasets"
    document = DatasetDocument
    rules = FieldRules(
        managed=("name", "datasources", "columns", "dataSync", "customAttributes"),
        read_back=("name", "datasources", "columns", "dataSync", "customAttributes", "isPublic", "status"),
        server_owned=("datasetId", "appId", "userId", "connectionId", "status", "datasetType",
                      "createDate", "modifyDate", "pendingChanges"),
        forces_replacement=("app",),
        renamable=("datasources",),     # a dataset's columns are not: a renamed column is another column
    )
    replacement_checks = {"app": app_changed}
    teardown_phase = 1
    shareable = True
    client_minted_id = True
    reference_fields = ("datasources",)
    checked_spec_paths = (("spec", "datasources"),)   # a connection reference is reported at its line

    def dependencies(self, spec: DatasetSpec) -> tuple[str, ...]:
        """The managed connections its datasources name."""
        datasources = getattr(spec, "datasources", None) or ()      # a salvaged spec may have none
        return tuple(dict.fromkeys(d.connection for d in datasources if getattr(d, "connection", None)))

    def reference_path(self, spec: Any, address: str) -> tuple | None:
        for index, datasource in enumerate(getattr(spec, "datasources", None) or ()):
            if getattr(datasource, "connection", None) == address:
                return ("spec", "datasources", index, "connection")
        return None

    def uses(self, document: Mapping[str, Any] | None) -> set[str]:
        """The connection ids of its datasources (a live list, or a managed document's map)."""
        datasources = (document or {}).get("datasources")
        if isinstance(datasources, dict):
            datasources = list(datasources.values())
        if not isinstance(datasources, list):
            return set()
        return {d["connectionId"] for d in datasources
                if isinstance(d, dict) and isinstance(d.get("connectionId"), str)}

    # Changes that need a reload after Apply Changes (qrvey-api.md D5: types, datasources,
    # query; a column added or removed shows as its columnType). Name, visibility, access
    # roles, custom attributes and dataSync are metadata: no reload.
    structural_changes = (
        "datasources", "datasources.*",
        "columns.*.columnType", "columns.*.origColumnType", "columns.*.origColumnSourceName",
    )

    def load_mode(self, spec: DatasetSpec) -> LoadMode:
        if spec.load == "onChange":
            return ON_CHANGE
        return ALWAYS_LOADED if spec.load is True else NO_LOAD

    def desired(self, address: str, spec: DatasetSpec, environment: str = "") -> dict[str, Any]:
        dumped = spec.model_dump(include={"datasources", "columns"})   # one call, not one per column
        document: dict[str, Any] = {
            "name": spec.name,
            "datasources": {d["name"]: _datasource_fields(d) for d in dumped["datasources"]},
            "columns": {c["columnName"]: given(c, skip="columnName") for c in dumped["columns"]},
            "customAttributes": owner_attributes(spec, address, environment),
        }
        if spec.dataSync is not None:
            document["dataSync"] = spec.dataSync
        return document

    def is_kind_of(self, live: Mapping[str, Any]) -> bool:
        return live.get("datasetType") != "VIEW"

    def managed_fields(self, document: dict[str, Any] | None) -> dict[str, list[str]]:
        document = document or {}
        managed = {
            "customAttributes": managed_attributes(document),
            "dataSync": ["*"] if document.get("dataSync") is not None else [],
        }
        return {k: v for k, v in managed.items() if v}

    def with_removals(self, desired: dict[str, Any], managed: Mapping[str, list[str]]) -> dict[str, Any]:
        document = {**desired, "customAttributes": attributes_with_removals(desired, managed)}
        if managed.get("dataSync") and "dataSync" not in document:
            document["dataSync"] = None
        return document

    def without_removals(self, document: dict[str, Any]) -> dict[str, Any]:
        cleaned = {k: v for k, v in document.items() if not (k == "dataSync" and v is None)}
        if isinstance(cleaned.get("customAttributes"), dict):
            cleaned["customAttributes"] = {k: v for k, v in cleaned["customAttributes"].items() if v is not None}
        return cleaned

    def compared_part(self, live: dict[str, Any] | None) -> dict[str, Any] | None:
        kept = super().compared_part(live)
        if kept is None:
            return None
        if isinstance(kept.get("datasources"), list):
            kept["datasources"] = [_only(s, DATASOURCE_READ) for s in kept["datasources"]]
        if isinstance(kept.get("columns"), list):
            kept["columns"] = [_only(c, COLUMN_READ) for c in kept["columns"]]
        return kept

    def project_live(self, live: Mapping[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
        full = _normalise(live)
        projected: dict[str, Any] = {}
        for key, wanted in desired.items():
            have = full.get(key)
            if key == "datasources" and isinstance(wanted, dict):
                projected[key] = project_named(have or {}, wanted, DATASOURCES)
            elif key == "columns" and isinstance(wanted, dict):
                projected[key] = project_named(have or {}, wanted, COLUMNS)
            elif key == "customAttributes":
                have = have if isinstance(have, dict) else {}
                projected[key] = {k: have.get(k) for k in wanted}
            else:
                projected[key] = have
        return projected

    async def create(self, api: QrveyApi, entry, desired: dict[str, Any]) -> dict[str, Any]:
        app = AppRef(entry.userId, entry.appId)
        return await api.create_dataset(app, create_body(desired, app, entry.datasetId))

    def update_body(self, live: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
        body = base_update_body(live, desired)
        by_name = {d.get("name"): d for d in live.get("datasources") or []}
        body["datasources"] = [
            _merged(by_name.get(name), _datasource(name, record)) for name, record in desired["datasources"].items()
        ]
        app = AppRef(live.get("userId", ""), live.get("appId", ""))
        connection = body["datasources"][0]["connectionId"]
        columns = {c.get("columnName"): c for c in live.get("columns") or []}
        body["columns"] = [
            _merged(columns.get(name), {"columnName": name, **record}) if name in columns
            else _new_column(name, record, app, connection)
            for name, record in desired["columns"].items()
        ]
        if "dataSync" in desired:
            if desired["dataSync"] is None:
                body.pop("dataSync", None)         # no longer in the manifest: remove it
            else:
                body["dataSync"] = desired["dataSync"]
        return body

    # -- export -------------------------------------------------------------------------------

    def describes(self, live: Mapping[str, Any]) -> bool:
        return live.get("datasetType") != "VIEW" and not live.get("sourceDataset")

    def exported_spec(
        self, live: Mapping[str, Any], app_alias: str, sources: Mapping[str, str], marker_keys: frozenset[str],
        exported: Mapping[str, Mapping[str, Any]],
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {"app": app_alias, "name": live.get("name")}
        if live.get("isPublic") is True:
            spec["shared"] = True
        spec["datasources"] = [_exported_datasource(source) for source in live.get("datasources") or []]
        spec["columns"] = [_exported_column(column) for column in live.get("columns") or []]
        if live.get("dataSync") is not None:
            spec["dataSync"] = copy.deepcopy(live["dataSync"])
        attributes = {k: v for k, v in (live.get("customAttributes") or {}).items() if k not in marker_keys}
        if attributes:
            spec["customAttributes"] = copy.deepcopy(attributes)
        return spec

    def environment_values(self, spec: Mapping[str, Any]) -> list[tuple[tuple, str]]:
        """Each datasource's connectionId, named after its database (or connector type)."""
        return [(("datasources", index, "connectionId"), str(source.get("database") or source.get("connectorType")))
                for index, source in enumerate(spec.get("datasources") or [])
                if isinstance(source, dict) and isinstance(source.get("connectionId"), str)]


def _exported_datasource(source: Any) -> Any:
    if not isinstance(source, dict):
        return source           # refused by the spec's validation, with its path
    exported = {"name": source.get("name"), "connectionId": source.get("connectionId"),
                "connectorType": source.get("connectorType")}
    for key in ("database", "tableName", "query"):
        if source.get(key) is not None:
            exported[key] = source[key]
    return exported


def _exported_column(column: Any) -> Any:
    """A column with what a manifest manages of it: its name and type, its source name when it
    was renamed, ``visible: false`` and its access roles when it has them."""
    if not isinstance(column, dict):
        return column
    exported = {"columnName": column.get("columnName"), "columnType": column.get("columnType")}
    original = column.get("origColumnSourceName")
    if original is not None and original != column.get("columnName"):
        exported["origColumnSourceName"] = original
    if column.get("visible") is False:
        exported["visible"] = False
    if column.get("accessRoles"):
        exported["accessRoles"] = list(column["accessRoles"])
    return exported


def create_body(desired: dict[str, Any], app: AppRef, dataset_id: str) -> dict[str, Any]:
    """Create Dataset (full definition) body, with the client-chosen datasetId."""
    datasources = [_datasource(name, record) for name, record in desired["datasources"].items()]
    connection = datasources[0]["connectionId"]
    columns = [_new_column(name, record, app, connection) for name, record in desired["columns"].items()]
    body: dict[str, Any] = {
        "datasetId": dataset_id,
        "name": desired["name"],
        "datasources": datasources,
        "columns": columns,
        "customAttributes": desired.get("customAttributes", {}),
    }
    if "dataSync" in desired:
        body["dataSync"] = desired["dataSync"]
    return body


def base_update_body(live: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """A full-replace PUT body: the live definition, its name and attributes as managed."""
    body = {k: live[k] if k in REBUILT_FIELDS else copy.deepcopy(live[k]) for k in CLIENT_FIELDS if k in live}
    body["datasetId"] = live["datasetId"]
    body["name"] = desired["name"]
    body["customAttributes"] = overlay_attributes(live, desired)
    return body


def _normalise(live: Mapping[str, Any]) -> dict[str, Any]:
    datasources = {}
    for source in live.get("datasources") or []:
        record = {k: source.get(k) for k in DATASOURCE_KEYS}
        record["datasourceId"] = source.get("datasourceId")
        datasources[str(source.get("name"))] = record
    columns = {str(c.get("columnName")): c for c in live.get("columns") or []}   # read, never changed
    return {
        "name": live.get("name"),
        "datasources": datasources,
        "columns": columns,
        "dataSync": live.get("dataSync"),
        "customAttributes": live.get("customAttributes"),
    }


def _datasource_fields(fields: dict[str, Any]) -> dict[str, Any]:
    record = {k: fields.get(k) for k in DATASOURCE_KEYS}
    if fields.get("connection"):
        record["connectionId"] = reference(fields["connection"])    # resolved from the state
    if fields.get("datasourceId"):
        record["datasourceId"] = fields["datasourceId"]
    return record


def _only(item: Any, keys: tuple[str, ...]) -> Any:
    if not isinstance(item, dict):
        return item
    return {key: item[key] for key in keys if key in item}


def _datasource(name: str, record: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, **{k: v for k, v in record.items() if v is not None}}


def _new_column(name: str, record: dict[str, Any], app: AppRef, connection: str) -> dict[str, Any]:
    column = {"columnName": name, **record}
    column.setdefault("origColumnType", record["columnType"])
    column.update({"appId": app.app_id, "userId": app.user_id, "connectionId": connection})
    return column


def _merged(live: dict[str, Any] | None, wanted: dict[str, Any]) -> dict[str, Any]:
    merged = dict(live or {})
    for key in ("database", "tableName", "query"):
        if key in merged and key not in wanted and "connectorType" in wanted:
            del merged[key]             # a datasource switched from table to query, or back
    merged.update(wanted)
    return merged


DATASET = DatasetKind()
