"""The sequential baseline: what a hand-written script does, one HTTP call after another.

It uses plain ``httpx.Client`` against the same emulator process and nothing of qrvey_iac,
and it makes the same calls the CLI's phase made (counted by the emulator), so the speedup
compares like with like:

- read: one GET per object the state knows and a listing of each app holding a view (the
  plan's refresh);
- write: for each dataset a create, for each shared one a publishVersion, for each view a
  clone, and for a view that renames a column a GET, a PUT and an applyChanges. The objects
  get their own ids and names (``seq-...``) so they never collide with the CLI's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from workload import APPS, COLUMN_TYPES, COLUMNS, Workload, app_ids, column_name, is_shared, view_source_index

PREFIX = "/devapi/v4/user/{user}/app/{app}"


def _client(base_url: str, api_key: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=60,
                        headers={"x-api-key": api_key, "Content-Type": "application/json"})


def _prefix(user: str, app: str) -> str:
    return PREFIX.format(user=user, app=app)


def _ok(response: httpx.Response) -> dict:
    response.raise_for_status()
    return response.json()


def sequential_reads(base_url: str, api_key: str, state_file: Path) -> tuple[float, int]:
    """GET every object of the state, then list each app holding a view (the plan looks there
    for a view that landed late under another id), one call after another: (seconds, calls)."""
    resources = json.loads(state_file.read_text(encoding="utf-8"))["resources"]
    targets = [(r["userId"], r["appId"], r["datasetId"]) for _, r in sorted(resources.items())]
    view_apps = sorted({(r["userId"], r["appId"]) for r in resources.values() if r["kind"] == "DatasetView"})
    calls = len(targets)
    with _client(base_url, api_key) as client:
        started = time.perf_counter()
        for user, app, dataset_id in targets:
            _ok(client.get(f"{_prefix(user, app)}/qollect/dataset/{dataset_id}"))
        for user, app in view_apps:
            body: dict = {"limit": 100}
            while True:
                page = _ok(client.post(f"{_prefix(user, app)}/qollect/dataset/all", json=body))
                calls += 1
                if not page.get("LastEvaluatedKey"):
                    break
                body = {"limit": 100, "ExclusiveStartKey": page["LastEvaluatedKey"]}
        return time.perf_counter() - started, calls


def sequential_writes(base_url: str, api_key: str, shape: Workload) -> tuple[float, int]:
    """Create the workload's datasets, shares and views one call at a time: (seconds, calls)."""
    calls = 0
    connections: dict[int, str] = {}
    apps = sorted({i % APPS for i in range(shape.datasets)}
                  | {(view_source_index(j, shape) + 1) % APPS for j in range(shape.views)})
    with _client(base_url, api_key) as client:
        started = time.perf_counter()
        for index in apps:          # the apply's survey: each app listed once before the creates
            user, app = app_ids(index)
            _ok(client.post(f"{_prefix(user, app)}/qollect/dataset/all", json={"limit": 100}))
            calls += 1
        for i in range(shape.datasets):
            user, app = app_ids(i % APPS)
            created = _ok(client.post(f"{_prefix(user, app)}/qollect/dataset", json=_dataset_body(i)))
            connections[i] = created["connectionId"]
            calls += 1
        for i in range(0, shape.datasets):
            if shape.shared and is_shared(i):
                user, app = app_ids(i % APPS)
                _ok(client.post(f"{_prefix(user, app)}/qollect/dataset/seq-{i:05d}/publishVersion",
                                params={"runPublicTrigger": "true"}, json={"isPublic": True}))
                calls += 1
        for j in range(shape.views):
            calls += _view(client, j, shape, connections)
        return time.perf_counter() - started, calls


def _view(client: httpx.Client, j: int, shape: Workload, connections: dict[int, str]) -> int:
    source = view_source_index(j, shape)
    source_user, source_app = app_ids(source % APPS)
    user, app = app_ids((source + 1) % APPS)
    prefix = _prefix(user, app)
    body = {"appId": source_app, "userId": source_user, "name": f"Seq view {j}"}
    view = _ok(client.post(f"{prefix}/qollect/dataset/clone/connection/{connections[source]}", json=body))
    if j % 2:
        return 1
    view_id = view["datasetId"]
    live = _ok(client.get(f"{prefix}/qollect/dataset/{view_id}"))
    update = {k: live[k] for k in ("name", "datasources", "columns", "customAttributes") if k in live}
    update["columns"] = [
        {**c, "columnName": f"Renamed {j}"} if c.get("origColumnSourceName") == column_name(0) else c
        for c in update["columns"]
    ]
    _ok(client.put(f"{prefix}/qollect/dataset/{view_id}", json=update))
    _ok(client.post(f"{prefix}/qollect/dataset/{view_id}/applyChanges"))
    return 4


def _dataset_body(i: int) -> dict:
    return {
        "datasetId": f"seq-{i:05d}",
        "name": f"Seq dataset {i}",
        "datasources": [{"name": "Main", "connectionId": "conn-bench-warehouse", "connectorType": "MSSQL_LIVE",
                         "database": "bench", "tableName": f"table_{i:05d}"}],
        "columns": [{"columnName": column_name(k), "columnType": COLUMN_TYPES[k % 3]} for k in range(COLUMNS)],
        "customAttributes": {},
    }
