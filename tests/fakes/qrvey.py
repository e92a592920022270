"""An in-memory Qrvey port (core.kinds.base.QrveyApi): use-case tests without HTTP.

It keeps objects the way Get Dataset returns them, mints ids and connection ids, makes a
view from a shared dataset's connection, and can lose the answer of a write that landed
(``lose_answer``) or fail one that did not (``fail``), the two sides of an unknown outcome,
or refuse a write that surely never reached it (``refuse``: a connection refused). Reads can
take ``read_delay`` seconds each; ``most_reading`` is the most that were ever in flight at once.
It is deliberately small: the emulator (over HTTP or ASGI) is the faithful double.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from typing import Any

from qrvey_iac.core.errors import BadRequestError, NotFoundError, OutcomeUnknownError, TransportError
from qrvey_iac.core.keys import AppRef


class FakeQrvey:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.connections: dict[str, dict[str, Any]] = {}   # by connectorid, passwords included
        self.calls: list[tuple[str, str]] = []          # (operation, datasetId or app id)
        self._ids = itertools.count(1)
        self._lose: dict[str, int] = {}                # operation -> answers still to lose (write lands)
        self._fail: dict[str, int] = {}                # operation -> writes still to drop (nothing lands)
        self._refuse: dict[str, int] = {}              # operation -> writes still to refuse (never sent)
        self.missing_apps: set[AppRef] = set()         # apps get_app says do not exist
        self.app_checks: list[AppRef] = []             # get_app calls (kept out of ``calls``)
        self.read_delay = 0.0
        self.loading: dict[str, int] = {}              # datasetId -> reads still answering LOADING
        self.load_reads = 1
        self.load_ends = "LOADED"                       # the status a load ends in (FAILED to fail it)
        self.reading = 0
        self.most_reading = 0

    # -- test controls --------------------------------------------------------------------

    def lose_answer(self, operation: str, times: int = 1) -> None:
        self._lose[operation] = self._lose.get(operation, 0) + times

    def fail(self, operation: str, times: int = 1) -> None:
        self._fail[operation] = self._fail.get(operation, 0) + times

    def refuse(self, operation: str, times: int = 1) -> None:
        self._refuse[operation] = self._refuse.get(operation, 0) + times

    def writes(self) -> list[tuple[str, str]]:
        reads = ("read", "list_app", "read_connection", "list_connections")
        return [call for call in self.calls if call[0] not in reads]

    # -- the port -------------------------------------------------------------------------

    async def read(self, app: AppRef, dataset_id: str) -> dict[str, Any] | None:
        self.calls.append(("read", dataset_id))
        if self.read_delay:
            self.reading += 1
            self.most_reading = max(self.most_reading, self.reading)
            try:
                await asyncio.sleep(self.read_delay)
            finally:
                self.reading -= 1
        found = self.objects.get(dataset_id)
        if found is None or (found["userId"], found["appId"]) != (app.user_id, app.app_id):
            return None
        if dataset_id in self.loading:
            if self.loading[dataset_id] > 0:
                self.loading[dataset_id] -= 1
            else:
                del self.loading[dataset_id]
                found["status"] = self.load_ends
        return copy.deepcopy(found)

    async def create_dataset(self, app: AppRef, body: dict[str, Any]) -> dict[str, Any]:
        dataset_id = body["datasetId"]
        self._before_write("create_dataset", dataset_id)
        if dataset_id in self.objects:
            raise BadRequestError(400, f"dataset {dataset_id} already exists", "POST", "dataset")
        record = {**copy.deepcopy(body), "userId": app.user_id, "appId": app.app_id, "isPublic": False,
                  "connectionId": f"conn-{next(self._ids)}", "datasetType": "MANAGED", "status": "DRAFT"}
        self.objects[dataset_id] = record
        return self._answer("create_dataset", record)

    async def clone_view(
        self, app: AppRef, source: AppRef, connection_id: str, name: str, custom_attributes: dict[str, Any] | None
    ) -> dict[str, Any]:
        self._before_write("clone_view", app.app_id)
        shared = [o for o in self.objects.values() if o.get("connectionId") == connection_id and o.get("isPublic")]
        if not shared:
            raise NotFoundError(404, f"no shared dataset has connection {connection_id}", "POST", "dataset/view")
        dataset_id = f"view-{next(self._ids)}"
        origin = shared[0]
        record = {
            "datasetId": dataset_id, "userId": app.user_id, "appId": app.app_id, "datasetType": "VIEW",
            "name": name, "customAttributes": dict(custom_attributes or {}),
            "connectionId": f"conn-{next(self._ids)}", "sourceStatus": "AVAILABLE",
            "sourceDataset": {"datasetId": origin["datasetId"], "connectionId": connection_id},
            "columns": [{"columnName": c["columnName"], "origColumnSourceName": c["columnName"], "visible": True}
                        for c in origin.get("columns", [])],
        }
        self.objects[dataset_id] = record
        return self._answer("clone_view", record)

    async def update_dataset(self, app: AppRef, dataset_id: str, body: dict[str, Any]) -> None:
        self._before_write("update_dataset", dataset_id)
        current = self._owned(app, dataset_id, "PUT")
        current.update(copy.deepcopy(body))
        self._answer("update_dataset", current)

    async def apply_changes(self, app: AppRef, dataset_id: str) -> dict[str, Any]:
        self._before_write("apply_changes", dataset_id)
        return self._answer("apply_changes", self._owned(app, dataset_id, "POST"))

    async def set_shared(self, app: AppRef, dataset_id: str, shared: bool) -> dict[str, Any]:
        self._before_write("set_shared", dataset_id)
        current = self._owned(app, dataset_id, "PUT")
        current["isPublic"] = shared
        return self._answer("set_shared", current)

    async def delete(self, app: AppRef, dataset_id: str) -> bool:
        self._before_write("delete", dataset_id)
        if dataset_id not in self.objects:
            return False
        self._owned(app, dataset_id, "DELETE")
        del self.objects[dataset_id]
        self._answer("delete", {})
        return True

    async def get_app(self, app: AppRef) -> dict[str, Any] | None:
        self.app_checks.append(app)
        if app in self.missing_apps:
            return None
        return {"appid": app.app_id, "userid": app.user_id, "name": app.app_id, "description": ""}

    async def load(self, app: AppRef, dataset_id: str) -> dict[str, Any]:
        """Start a load: the dataset is LOADING for ``load_reads`` reads, then ``load_ends`` (LOADED)."""
        self._before_write("load", dataset_id)
        current = self._owned(app, dataset_id, "POST")
        if current.get("status") != "LOADING":
            current["status"] = "LOADING"
            self.loading[dataset_id] = self.load_reads
        return self._answer("load", {"datasetId": dataset_id, "status": "LOADING"})

    async def list_app(self, app: AppRef) -> list[dict[str, Any]]:
        self.calls.append(("list_app", app.app_id))
        return [copy.deepcopy(o) for o in self.objects.values() if (o["userId"], o["appId"]) == (app.user_id, app.app_id)]

    # connections: Qrvey's lower-case keys; the password is kept (Qrvey's side) and never answered
    async def create_connection(self, app: AppRef, body: dict[str, Any]) -> dict[str, Any]:
        self._before_write("create_connection", app.app_id)
        connection_id = f"00000000-0000-4000-8000-{next(self._ids):012d}"
        record = {**copy.deepcopy(body), "connectorid": connection_id, "userid": app.user_id, "appid": app.app_id}
        self.connections[connection_id] = record
        return self._answer("create_connection", _public(record))

    async def read_connection(self, app: AppRef, connection_id: str) -> dict[str, Any] | None:
        self.calls.append(("read_connection", connection_id))
        found = self.connections.get(connection_id)
        if found is None or (found["userid"], found["appid"]) != (app.user_id, app.app_id):
            return None
        return _public(found)

    async def update_connection(self, app: AppRef, connection_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self._before_write("update_connection", connection_id)
        current = self.connections.get(connection_id)
        if current is None or (current["userid"], current["appid"]) != (app.user_id, app.app_id):
            raise NotFoundError(404, f"connection {connection_id} not found", "PUT", f"connections/{connection_id}")
        kept = {k: current[k] for k in ("connectorid", "userid", "appid")}
        current.clear()
        current.update({**copy.deepcopy(body), **kept})
        return self._answer("update_connection", _public(current))

    async def delete_connection(self, app: AppRef, connection_id: str) -> bool:
        self._before_write("delete_connection", connection_id)
        current = self.connections.get(connection_id)
        if current is None or (current["userid"], current["appid"]) != (app.user_id, app.app_id):
            return False
        del self.connections[connection_id]
        self._answer("delete_connection", {})
        return True

    async def list_connections(self, app: AppRef) -> list[dict[str, Any]]:
        self.calls.append(("list_connections", app.app_id))
        mine = (app.user_id, app.app_id)
        return [_public(c) for c in self.connections.values() if (c["userid"], c["appid"]) == mine]

    # -- internals --------------------------------------------------------------------------

    def _before_write(self, operation: str, what: str) -> None:
        self.calls.append((operation, what))
        if self._refuse.get(operation):
            self._refuse[operation] -= 1
            refused = TransportError("POST", operation, "ConnectError: connection refused (fake)")
            refused.nothing_sent = True
            raise refused
        if self._fail.get(operation):
            self._fail[operation] -= 1
            raise OutcomeUnknownError("POST", operation, "connection reset before the write landed (fake)")

    def _answer(self, operation: str, record: dict[str, Any]) -> dict[str, Any]:
        if self._lose.get(operation):
            self._lose[operation] -= 1
            raise OutcomeUnknownError("POST", operation, "the answer was lost after the write landed (fake)")
        return copy.deepcopy(record)

    def _owned(self, app: AppRef, dataset_id: str, method: str) -> dict[str, Any]:
        current = self.objects.get(dataset_id)
        if current is None or (current["userId"], current["appId"]) != (app.user_id, app.app_id):
            raise NotFoundError(404, f"dataset {dataset_id} not found", method, f"dataset/{dataset_id}")
        return current


def _public(connection: dict[str, Any]) -> dict[str, Any]:
    """A connection as Qrvey answers it: never its password."""
    return {k: copy.deepcopy(v) for k, v in connection.items() if k != "password"}
