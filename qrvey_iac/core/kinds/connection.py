"""kind: Connection: a database connection in an app, which datasets are built on.

Fields (qrvey-api.md §2.2 C1-C5, §8 N10):

- confirmed (C1's request and answer, Qrvey's 2021 sample tests): ``name``,
  ``connectorType`` (``MYSQL_LIVE``, ``MSSQL_LIVE``; any string is passed on), ``host``,
  ``user``, ``password``; the answer's ``connectorid`` / ``appid`` / ``userid`` (lower case);
- inferred, not confirmed: ``port`` and ``database`` (the Data Router's connections had
  ``port`` and ``dbName``; Composer's names per engine are unknown: N10), ``customAttributes``
  (Qrvey's place for caller data on its objects, S6; whether connections keep it is unknown,
  and qrvey-iac's ownership marker goes there).

The password is write-only: given only as ``${env:NAME}`` (``env_only``: a literal is a
validation error), sent on create and on every update, never read back (Qrvey does not return
it), so never compared with Qrvey. Its change is seen through the state's keyed digests
(``applied_hash`` / ``applied_fields``, HMAC with the environment's seal key: core/sealing.py,
docs/architecture.md §6): a new value in the environment variable plans an update that sends it
again, the digest gives nothing of it away, and no separate ``rotate`` marker is needed.

Qrvey mints a connection's id (a UUID), so a create whose answer was lost is found again by
listing the app's connections for the ownership marker, as a view is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from qrvey_iac.core.errors import NotFoundError, UndecidedError
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.kinds.base import (
    OWNER_ATTRIBUTE, FieldRules, Frozen, Kind, Metadata, QrveyApi, app_changed, attributes_with_removals,
    managed_attributes, overlay_attributes, owner_attributes,
)
from qrvey_iac.core.kinds.dataset import DATASET

if TYPE_CHECKING:
    from qrvey_iac.core.state import JournalEntry, State

FIELDS = ("name", "connectorType", "host", "port", "database", "user", "password")
SECRET_FIELDS = ("password",)
SERVER_KEYS = ("connectorid", "appid", "userid", "datasetId")


class ConnectionSpec(Frozen):
    app: str = Field(min_length=1, description="App alias from the environment's apps.")
    name: str = Field(min_length=1, description="Display name in Qrvey (not an identity).")
    connectorType: str = Field(min_length=1, description="e.g. MSSQL_LIVE, MYSQL_LIVE")
    host: str | None = Field(default=None, min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535, description="Inferred: not confirmed by Qrvey's docs.")
    database: str | None = Field(default=None, min_length=1, description="Inferred: not confirmed by Qrvey's docs.")
    user: str | None = Field(default=None, min_length=1)
    password: str | None = Field(
        default=None, min_length=1,
        description="Write-only, and only as ${env:NAME}: never stored, shown or compared with Qrvey.",
    )
    protect: bool = Field(default=False, description="Refuse to delete or replace it.")
    customAttributes: dict[str, Any] | None = None


class ConnectionDocument(Frozen):
    apiVersion: Literal["qrvey-iac/v1"]
    kind: Literal["Connection"]
    metadata: Metadata
    spec: ConnectionSpec


class ConnectionKind(Kind):
    name = "Connection"
    prefix = "connection"
    plural = "connections"
    document = ConnectionDocument
    rules = FieldRules(
        managed=(*FIELDS, "customAttributes"),
        read_back=(*(f for f in FIELDS if f not in SECRET_FIELDS), "customAttributes"),
        server_owned=("connectorid", "appid", "userid", "createDate", "updateDate"),
        forces_replacement=("app",),
        write_only=SECRET_FIELDS,
    )
    replacement_checks = {"app": app_changed}
    teardown_phase = 2            # deleted after the datasets built on it (phase 1)
    client_minted_id = False
    env_only = (("spec", "password"),)
    guards_delete = True

    def desired(self, address: str, spec: ConnectionSpec, environment: str = "") -> dict[str, Any]:
        """The fields the manifest gives (one left out is not managed), and the attributes."""
        document: dict[str, Any] = {key: getattr(spec, key) for key in FIELDS if getattr(spec, key) is not None}
        document["customAttributes"] = owner_attributes(spec, address, environment)
        return document

    def managed_fields(self, document: dict[str, Any] | None) -> dict[str, list[str]]:
        attributes = managed_attributes(document or {})
        return {"customAttributes": attributes} if attributes else {}

    def with_removals(self, desired: dict[str, Any], managed: Mapping[str, list[str]]) -> dict[str, Any]:
        return {**desired, "customAttributes": attributes_with_removals(desired, managed)}

    def without_removals(self, document: dict[str, Any]) -> dict[str, Any]:
        cleaned = dict(document)
        if isinstance(cleaned.get("customAttributes"), dict):
            cleaned["customAttributes"] = {k: v for k, v in cleaned["customAttributes"].items() if v is not None}
        return cleaned

    def project_live(self, live: Mapping[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
        projected: dict[str, Any] = {}
        for key, wanted in desired.items():
            if key == "customAttributes":
                have = live.get("customAttributes")
                have = have if isinstance(have, dict) else {}
                projected[key] = {k: have.get(k) for k in wanted}
            elif key not in SECRET_FIELDS:
                projected[key] = live.get(key)
        return projected

    # -- the API calls ------------------------------------------------------------------------

    async def read(self, api: QrveyApi, app: AppRef, dataset_id: str) -> dict[str, Any] | None:
        return identified(await api.read_connection(app, dataset_id))

    listed_apart = True

    async def listing(self, api: QrveyApi, app: AppRef) -> list[dict[str, Any]]:
        return [identified(item) for item in await api.list_connections(app) if isinstance(item, dict)]

    async def create(self, api: QrveyApi, entry: JournalEntry, desired: dict[str, Any]) -> dict[str, Any]:
        app = AppRef(entry.userId, entry.appId)
        return identified(await api.create_connection(app, connection_body(desired)))

    async def find_landed(self, api: QrveyApi, entry: JournalEntry, state: State) -> dict[str, Any] | None:
        """The connection a journaled create made: the app's connection with its marker that the
        state does not record under another address."""
        tracked = {r.datasetId for a, r in state.resources.items() if a != entry.address}
        matches = [
            item for item in await self.listing(api, AppRef(entry.userId, entry.appId))
            if (item.get("customAttributes") or {}).get(OWNER_ATTRIBUTE) == entry.address
            and item["datasetId"] not in tracked
        ]
        if len(matches) > 1:
            ids = ", ".join(sorted(m["datasetId"] for m in matches))
            raise UndecidedError(f"{len(matches)} candidate connections ({ids}) in app {entry.appId} carry the "
                                 f"marker of {entry.address}; delete the extra ones in Qrvey, then run again")
        return matches[0] if matches else None

    async def update(self, api: QrveyApi, app: AppRef, dataset_id: str, desired: dict[str, Any]) -> dict[str, Any]:
        live = await api.read_connection(app, dataset_id)
        if live is None:
            raise NotFoundError(404, f"connection {dataset_id} not found", "GET", f"connections/{dataset_id}")
        return identified(await api.update_connection(app, dataset_id, self.update_body(live, desired)))

    def update_body(self, live: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
        """A full-replace PUT: the live connection's own fields, the managed ones as desired
        (the password, never returned, sent again)."""
        body = {k: v for k, v in live.items() if k not in SERVER_KEYS}
        body.update({k: v for k, v in desired.items() if k != "customAttributes"})
        body["customAttributes"] = overlay_attributes(live, desired)
        return body

    async def delete(self, api: QrveyApi, app: AppRef, dataset_id: str) -> bool:
        return await api.delete_connection(app, dataset_id)

    async def users(self, api: QrveyApi, app: AppRef, object_id: str) -> list[dict[str, Any]]:
        """The datasets of the connection's app whose datasources use it, as far as the list
        of the app's datasets tells (qrvey-api.md D1: whether its items carry datasources is
        not documented; those that do not count as not using it, and the managed datasets are
        checked from what refresh read of them)."""
        return [
            {"datasetId": str(item.get("datasetId")), "name": str(item.get("name", ""))}
            for item in await api.list_app(app) if object_id in DATASET.uses(item)
        ]


def connection_body(desired: dict[str, Any]) -> dict[str, Any]:
    """Create Connection (C1) body: the managed fields and the attributes with the marker."""
    return {k: v for k, v in desired.items() if v is not None}


def identified(answer: dict[str, Any] | None) -> dict[str, Any] | None:
    """A connection answer with its id also under ``datasetId``, the state's name for an
    object's id (Qrvey's own key is ``connectorid``)."""
    if answer is None:
        return None
    connector_id = answer.get("connectorid")
    return {**answer, "datasetId": connector_id} if isinstance(connector_id, str) and connector_id else dict(answer)


CONNECTION = ConnectionKind()
