"""Use case: export the datasets and views of some apps as manifests, and take them under
management (``qrvey-iac export``).

In this order, so that no failure leaves a plan that would create or delete anything:

1. the output folder is checked (before any call);
2. under the state lock, every app is listed (``list_app`` pages ``dataset/all`` to its end)
   and every listed object read with Get Dataset (a listing item's shape is not documented);
3. ``core.export.build_export`` decides names, specs, variables and records (any problem:
   nothing done);
4. the manifests are written to temp files, the state is written with the records, then
   the files are renamed into place;
5. each exported object that lacks its ownership marker gets it, one update each (a failure
   there leaves a plan that shows the marker as an update, which apply makes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from qrvey_iac.core.errors import ApiError, QrveyIacError, StateError, TransportError
from qrvey_iac.core.export import AppObjects, Export, ExportedObject, ExportError, build_export
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.kinds import KINDS
from qrvey_iac.ports import QrveyPort, Workspace


class ManifestSink(Protocol):
    """Where the manifests go (adapters/manifest_writer.ManifestFolder)."""

    def stage(self, documents: dict[str, list[dict[str, Any]]], environment: str) -> None: ...
    def publish(self) -> list: ...
    def discard(self) -> None: ...


@dataclass
class ExportReport:
    export: Export
    files: list = field(default_factory=list)
    marked: list[ExportedObject] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)     # listed objects of another app, left out


async def export_apps(
    workspace: Workspace, apps: Mapping[str, AppRef], variables: Mapping[str, Any], sink: ManifestSink,
    progress: Callable[[str], None], parallelism: int | None = None,
) -> ExportReport:
    limit = workspace.parallelism(parallelism)
    with workspace.locker.lock("export"):
        state = workspace.store.read()
        if state.journal:
            raise StateError(f"the state has {len(state.journal)} pending operation(s) from an interrupted run; "
                             "run `qrvey-iac plan` first so they are settled, then export")
        async with workspace.qrvey(limit) as qrvey:
            report = ExportReport(Export((), {}))
            try:
                listed = await read_apps(qrvey, apps, limit, progress, report.skipped)
            except (ApiError, TransportError) as exc:
                raise QrveyIacError(f"{exc}\nexport stopped while reading Qrvey: nothing was written or changed; "
                                    "run it again") from None
            report.export = build_export(listed, state, variables, workspace.environment_name)
            sink.stage(report.export.documents, workspace.environment_name)
            try:
                if report.export.recorded:
                    workspace.store.write(report.export.state.bumped(), state.serial)
                    workspace.store.compact()
            except BaseException:
                sink.discard()
                raise
            report.files = sink.publish()
            report.marked = await _mark(qrvey, report.export.to_mark, limit, progress, workspace.environment_name)
    return report


async def read_apps(
    qrvey: QrveyPort, apps: Mapping[str, AppRef], limit: int, progress: Callable[[str], None], skipped: list[str],
) -> list[AppObjects]:
    """Every object of each app: the whole listing, then a Get Dataset of each id listed."""
    aliases = list(apps)
    progress(f"Listing {len(aliases)} app(s): {', '.join(aliases)}...")
    listings = await asyncio.gather(*(qrvey.list_app(apps[alias]) for alias in aliases))
    slots = asyncio.Semaphore(limit)

    async def read(app: AppRef, dataset_id: str) -> dict[str, Any] | None:
        async with slots:
            return await qrvey.read(app, dataset_id)

    ids: dict[str, list[str]] = {}
    problems: list[str] = []
    for alias, items in zip(aliases, listings):
        ids[alias] = _listed_ids(alias, apps[alias], items, problems, skipped)
    if problems:
        raise ExportError("cannot export: the listing of Qrvey cannot be used; nothing was written or changed:\n"
                          + "\n".join(f"- {line}" for line in problems))
    total = sum(len(v) for v in ids.values())
    progress(f"Reading {total} objects...")
    answers = await asyncio.gather(*(read(apps[alias], i) for alias in aliases for i in ids[alias]))
    found = iter(answers)
    result = []
    for alias in aliases:
        objects = []
        for dataset_id in ids[alias]:
            answer = next(found)
            if answer is None:
                problems.append(f"app {alias}: {dataset_id} was listed but is not found (deleted meanwhile?)")
            else:
                objects.append(answer)
        result.append(AppObjects(alias, apps[alias], tuple(objects)))
    if problems:
        raise ExportError("cannot export: Qrvey changed while it was read; nothing was written or changed, run "
                          "export again:\n" + "\n".join(f"- {line}" for line in problems))
    return result


def _listed_ids(alias: str, app: AppRef, items: list, problems: list[str], skipped: list[str]) -> list[str]:
    """The ids of a listing, each once; an item of another app (a shared dataset listed by
    its consumers, should Qrvey do that) is left out and said."""
    ids: list[str] = []
    for index, item in enumerate(items):
        dataset_id = item.get("datasetId") if isinstance(item, dict) else None
        if not isinstance(dataset_id, str) or not dataset_id:
            problems.append(f"app {alias}: item {index} of the listing names no datasetId")
            continue
        if dataset_id in ids:
            problems.append(f"app {alias}: the listing names {dataset_id} twice: it cannot be told complete")
            continue
        if item.get("appId", app.app_id) != app.app_id:
            skipped.append(f"{dataset_id} (listed in app {alias}, of app {item.get('appId')})")
            continue
        ids.append(dataset_id)
    return ids


async def _mark(
    qrvey: QrveyPort, objects: list[ExportedObject], limit: int, progress: Callable[[str], None], environment: str,
) -> list[ExportedObject]:
    """One update per object: its live definition with the ownership marker added."""
    if not objects:
        return []
    progress(f"Marking {len(objects)} objects as managed by environment {environment}...")
    slots = asyncio.Semaphore(limit)

    async def mark(obj: ExportedObject) -> BaseException | None:
        async with slots:
            try:
                await KINDS[obj.kind].update(qrvey, obj.app, obj.dataset_id, obj.desired)
            except QrveyIacError as exc:
                return exc
        return None

    outcomes = await asyncio.gather(*(mark(obj) for obj in objects))
    failed = [(obj, exc) for obj, exc in zip(objects, outcomes) if exc is not None]
    if failed:
        lines = "\n".join(f"- {obj.address} ({obj.dataset_id}): {exc}" for obj, exc in failed)
        raise QrveyIacError(
            f"exported and recorded in the state, but {len(failed)} of {len(objects)} objects could not be marked "
            f"as managed:\n{lines}\nThe next plan shows their marker as an update; `qrvey-iac apply` adds it."
        )
    return list(objects)
