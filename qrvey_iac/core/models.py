"""Manifest documents: the frozen pydantic models of DESIGN §3.

Field names follow Qrvey's own JSON (camelCase) so that a manifest reads like
the API documents it mirrors and every error path matches the YAML a user wrote.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

API_VERSION = "qrvey-iac/v1"
NAME_PATTERN = r"^[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?$"
ADDRESS_PATTERN = r"^(dataset|view)\.[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?$"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DatasourceSpec(Frozen):
    """One source of a dataset: a table or a query over a connection."""

    name: str = Field(min_length=1)
    connectionId: str = Field(min_length=1)
    connectorType: str = Field(min_length=1, description="e.g. MSSQL_LIVE, MYSQL_LIVE")
    database: str | None = None
    tableName: str | None = None
    query: str | None = None
    datasourceId: str | None = Field(
        default=None, description="Optional; Qrvey mints one when absent (then not managed)."
    )

    @model_validator(mode="after")
    def _table_or_query(self) -> DatasourceSpec:
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
    datasources: tuple[DatasourceSpec, ...] = Field(min_length=1)
    columns: tuple[ColumnSpec, ...] = Field(min_length=1)
    dataSync: dict[str, Any] | None = Field(default=None, description="Passed through as-is.")
    customAttributes: dict[str, Any] | None = None

    @field_validator("datasources")
    @classmethod
    def _unique_datasource_names(cls, value: tuple[DatasourceSpec, ...]):
        _reject_duplicates([d.name for d in value], "datasource name")
        return value

    @field_validator("columns")
    @classmethod
    def _unique_column_names(cls, value: tuple[ColumnSpec, ...]):
        _reject_duplicates([c.columnName for c in value], "columnName")
        return value


class ExternalSource(Frozen):
    """A shared dataset that qrvey-iac does not manage."""

    appId: str = Field(min_length=1)
    userId: str = Field(min_length=1)
    datasetId: str = Field(min_length=1)


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

    @field_validator("columns")
    @classmethod
    def _unique_columns(cls, value: tuple[ViewColumnSpec, ...]):
        _reject_duplicates([c.column for c in value], "column")
        return value


class Metadata(Frozen):
    name: str = Field(pattern=NAME_PATTERN, description="Logical name, unique per kind.")
    dependsOn: tuple[Annotated[str, Field(pattern=ADDRESS_PATTERN)], ...] = Field(
        default=(), description="Extra ordering: addresses that must exist first."
    )


class DatasetDocument(Frozen):
    apiVersion: Literal["qrvey-iac/v1"]
    kind: Literal["Dataset"]
    metadata: Metadata
    spec: DatasetSpec


class DatasetViewDocument(Frozen):
    apiVersion: Literal["qrvey-iac/v1"]
    kind: Literal["DatasetView"]
    metadata: Metadata
    spec: DatasetViewSpec


Document = Annotated[DatasetDocument | DatasetViewDocument, Field(discriminator="kind")]


def _reject_duplicates(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"duplicate {what} {name!r}")
        seen.add(name)
