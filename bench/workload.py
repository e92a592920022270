"""The benchmark workload: a generated qrvey-iac project of N datasets and N/2 views.

Shape (the same at every N, so figures at different N compare):

- 3 apps; dataset i lives in app i % 3 and has 30 columns and one table datasource;
- every 4th dataset is shared (``shared: true``): ceil(N/4) shared sources;
- N // 2 views; view j lives in the app after its source's app, on shared source j % shared;
- every other view renames a column (clone + GET + PUT + applyChanges on create);
  the rest keep the source's columns (a clone alone).

Manifests go 100 documents to a file (the loader caps a file at 5 MB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

APPS = 3
COLUMNS = 30
SHARE_EVERY = 4
DOCUMENTS_PER_FILE = 100
COLUMN_TYPES = ("STRING", "NUMBER", "DATE")


@dataclass(frozen=True)
class Workload:
    datasets: int
    views: int
    shared: int
    renamed_views: int

    @property
    def objects(self) -> int:
        return self.datasets + self.views


def workload(n: int, with_views: bool = True) -> Workload:
    shared = math.ceil(n / SHARE_EVERY) if with_views else 0
    views = n // 2 if with_views and shared else 0
    return Workload(datasets=n, views=views, shared=shared, renamed_views=(views + 1) // 2)


def app_ids(alias_index: int) -> tuple[str, str]:
    """(userId, appId) of bench app ``alias_index``."""
    return f"u-bench-{alias_index}", f"a-bench-{alias_index}"


def write_config(root: Path, endpoint: str, api_key_env: str | None, parallelism: int) -> Path:
    lines = ["manifests: manifests", "defaultEnvironment: bench", "environments:", "  bench:",
             f"    endpoint: {endpoint}"]
    if api_key_env:
        lines.append(f"    apiKeyEnv: {api_key_env}")
    lines.append("    apps:")
    for index in range(APPS):
        user_id, app_id = app_ids(index)
        lines.append(f"      app{index}: {{userId: {user_id}, appId: {app_id}}}")
    lines += ["    variables: {warehouse: conn-bench-warehouse}", "    state: {path: state/bench.json}",
              f"    parallelism: {parallelism}", ""]
    path = root / "qrvey-iac.yaml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_manifests(root: Path, n: int, with_views: bool = True) -> Workload:
    shape = workload(n, with_views)
    folder = root / "manifests"
    folder.mkdir(parents=True, exist_ok=True)
    documents = [dataset_document(i) for i in range(n)]
    documents += [view_document(j, shape) for j in range(shape.views)]
    for start in range(0, len(documents), DOCUMENTS_PER_FILE):
        chunk = documents[start:start + DOCUMENTS_PER_FILE]
        name = folder / f"part-{start // DOCUMENTS_PER_FILE:05d}.yaml"
        name.write_text("---\n".join(chunk), encoding="utf-8")
    return shape


def dataset_name(i: int) -> str:
    return f"ds-{i:05d}"


def is_shared(i: int) -> bool:
    return i % SHARE_EVERY == 0


def column_name(k: int) -> str:
    return f"Col{k:02d}"


def dataset_document(i: int) -> str:
    columns = "\n".join(
        f"    - {{columnName: {column_name(k)}, columnType: {COLUMN_TYPES[k % 3]}}}" for k in range(COLUMNS)
    )
    return (
        "apiVersion: qrvey-iac/v1\nkind: Dataset\n"
        f"metadata: {{name: {dataset_name(i)}}}\n"
        "spec:\n"
        f"  app: app{i % APPS}\n"
        f"  name: Bench dataset {i}\n"
        f"  shared: {'true' if is_shared(i) else 'false'}\n"
        "  datasources:\n"
        f"    - {{name: Main, connectionId: '${{var.warehouse}}', connectorType: MSSQL_LIVE, "
        f"database: bench, tableName: table_{i:05d}}}\n"
        "  columns:\n"
        f"{columns}\n"
    )


def view_source_index(j: int, shape: Workload) -> int:
    """The dataset index of view j's source (a shared dataset)."""
    return (j % shape.shared) * SHARE_EVERY


def view_document(j: int, shape: Workload) -> str:
    source = view_source_index(j, shape)
    text = (
        "apiVersion: qrvey-iac/v1\nkind: DatasetView\n"
        f"metadata: {{name: view-{j:05d}}}\n"
        "spec:\n"
        f"  app: app{(source + 1) % APPS}\n"
        f"  source: dataset.{dataset_name(source)}\n"
        f"  name: Bench view {j}\n"
    )
    if j % 2 == 0:
        text += f"  columns:\n    - {{column: {column_name(0)}, columnName: Renamed {j}}}\n"
    return text
