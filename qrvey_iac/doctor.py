"""``qrvey-iac doctor``: find out, on a real instance, what qrvey-api.md leaves open.

In an app the user names for it (the scratch app), doctor runs one short sequence of the
calls qrvey-iac makes: create a dataset with a client-chosen id, read it back, update it,
apply the changes, load it, share it, create a view of it, list the app, unshare it, and
delete everything it made, in a ``finally`` (a failed step still cleans up; what cannot be
deleted is reported with its id). Every object it makes carries the marker
``customAttributes.qrveyIacDoctor`` (the run's id) and that id in its name, so the cleanup
also finds, by listing the app, an object whose create answer was lost.

For each route of paths.py that no public source confirms, the call is tried with
candidates in a fixed order (CANDIDATES: the environment's own ``routes:`` entry, the
default, then the alternatives): an answer that says the route is not there (404, 405, or
API Gateway's 403 "Missing Authentication Token") means the next candidate; any other
answer settles it. The report gives the routes accepted (the ``routes:`` block to paste),
and the answers to the open questions of qrvey-api.md §6 that the sequence observes.

Layer: composition. It drives the HTTP client route by route (``QrveyClient.use_route``),
which no port offers: routes are the client's business.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from qrvey_iac.adapters.qrvey.client import QrveyClient
from qrvey_iac.adapters.qrvey.paths import DEFAULT_ROUTES, UNCONFIRMED_ROUTES
from qrvey_iac.core.errors import (
    ApiError,
    AuthError,
    DatasetLoadError,
    LoadFailedError,
    QrveyIacError,
)
from qrvey_iac.core.keys import AppRef

T = TypeVar("T")
MARKER = "qrveyIacDoctor"        # customAttributes key on every object doctor makes
PLACEHOLDER_CONNECTION = "00000000-0000-4000-8000-00000000d0c7"   # when no --connection-id is given

# After the environment's own entry and the default: other methods the docs allow (D9, D10:
# POST or PUT), then path guesses (D4-D6 have no documented path). Fixed order, so two runs
# against one instance try the same calls.
ALTERNATIVES: Mapping[str, tuple[str, ...]] = {
    "dataset.create": ("POST /qollect/dataset/create",),
    "dataset.update": ("PUT /qollect/dataset/{datasetId}/update", "POST /qollect/dataset/{datasetId}/update",
                       "PATCH /qollect/dataset/{datasetId}"),
    "dataset.apply_changes": ("POST /qollect/dataset/{datasetId}/apply",
                              "PUT /qollect/dataset/{datasetId}/applyChanges",
                              "POST /qollect/dataset/{datasetId}/applychanges"),
    "dataset.publish": ("PUT /qollect/dataset/{datasetId}/publishVersion?runPublicTrigger=true",),
    "view.create": ("PUT /qollect/dataset/clone/connection/{connectionId}",),
}
NOT_CHECKED = {"connection.update": "doctor makes no connection (a real one would need real credentials)"}
_GATEWAY_MISSING_ROUTE = "missing authentication token"     # AWS API Gateway's 403 for an unknown route


def candidates(name: str, configured: Mapping[str, str]) -> list[str]:
    """The routes tried for ``name``, in order, each once."""
    order = [configured.get(name), str(DEFAULT_ROUTES[name]), *ALTERNATIVES.get(name, ())]
    unique: list[str] = []
    for route in order:
        if route and " ".join(route.split()) not in unique:
            unique.append(" ".join(route.split()))
    return unique


def route_is_missing(error: ApiError) -> bool:
    """An answer meaning "no such method or path here", not "this call was refused"."""
    if error.status in (404, 405):
        return True
    return isinstance(error, AuthError) and error.status == 403 and _GATEWAY_MISSING_ROUTE in error.message.lower()


@dataclass
class RouteFinding:
    """What doctor learnt of one unconfirmed route: the candidate accepted (None: none was),
    and each candidate tried before it with the answer that ruled it out."""

    name: str
    accepted: str | None = None
    refused: list[tuple[str, str]] = field(default_factory=list)

    @property
    def is_default(self) -> bool:
        return self.accepted == str(DEFAULT_ROUTES[self.name])


@dataclass
class Report:
    """Everything one doctor run found; ``failure`` is the step that stopped it, if any."""

    run_id: str
    routes: dict[str, RouteFinding] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)
    failure: str | None = None
    left_over: list[str] = field(default_factory=list)      # what the cleanup could not delete
    deleted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None and not self.left_over and all(
            finding.accepted for finding in self.routes.values())

    def routes_block(self, configured: Mapping[str, str]) -> dict[str, str]:
        """The ``routes:`` entries the environment needs: every route found away from its
        default, and the environment's entries doctor did not check, kept as they are."""
        block = {name: text for name, text in configured.items() if name not in self.routes}
        for name, finding in self.routes.items():
            if finding.accepted and not finding.is_default:
                block[name] = finding.accepted
        return dict(sorted(block.items()))

    def unchecked(self) -> dict[str, str]:
        """The unconfirmed routes this run did not settle, with why."""
        why = dict(NOT_CHECKED)
        for name in sorted(UNCONFIRMED_ROUTES - self.routes.keys() - why.keys()):
            why[name] = "not reached: an earlier step failed"
        return why


class StepFailed(QrveyIacError):
    """A step of the sequence could not be done: the rest is skipped, the cleanup runs."""


@dataclass
class Scratch:
    """What the run made, so the cleanup deletes it (view first, it depends on the dataset)."""

    dataset_id: str | None = None      # chosen before its create is sent: deleted even if the answer is lost
    view_ids: list[str] = field(default_factory=list)
    attempted: set[str] = field(default_factory=set)     # ids the cleanup tried to delete
    view_in_flight: bool = False      # a view create was sent and did not answer (lost, timed out, interrupted)


class Doctor:
    """One doctor run against ``client`` in the scratch app ``app``; ``say`` shows progress."""

    def __init__(self, client: QrveyClient, app: AppRef, say: Callable[[str], None], *,
                 configured: Mapping[str, str], connection_id: str | None = None,
                 connector_type: str = "MSSQL_LIVE", load_timeout: float = 120.0, poll_interval: float = 2.0) -> None:
        self.client = client
        self.app = app
        self.say = say
        self.configured = dict(configured)
        self.connection_id = connection_id or PLACEHOLDER_CONNECTION
        self.connector_type = connector_type
        self.load_timeout = load_timeout
        self.poll_interval = poll_interval
        self.report = Report(run_id=uuid.uuid4().hex[:8])
        self.scratch = Scratch()
        self.source: dict[str, Any] = {}          # the dataset as read back before its view is made

    async def run(self) -> Report:
        steps = [("create a dataset with a client-chosen id", self._create), ("read it back", self._read_back),
                 ("update it", self._update), ("apply the changes", self._apply_changes),
                 ("load it", self._load), ("share it", self._share), ("create a view of it", self._view),
                 ("list the app", self._list), ("unshare it", self._unshare)]
        try:
            for number, (title, step) in enumerate(steps, 1):
                self.say(f"[{number}/{len(steps)}] {title}")
                await step()
        except QrveyIacError as error:
            self.report.failure = f"{title}: {error}"
            self.say(f"  failed: {error}")
        finally:
            await self._clean_up()
        return self.report

    # -- the steps ---------------------------------------------------------

    async def _create(self) -> None:
        self.scratch.dataset_id = str(uuid.uuid4())
        body = {"datasetId": self.scratch.dataset_id, **self._definition("")}
        try:
            created = await self._find("dataset.create", lambda: self.client.create_dataset(self.app, body))
        except StepFailed as error:
            if self.connection_id != PLACEHOLDER_CONNECTION:
                raise
            raise StepFailed(f"{error} (the scratch dataset is on a made-up connection: if the instance wants a "
                             "real one, pass --connection-id and --connector-type)") from None
        self.answer("Create Dataset keeps a client-chosen datasetId", f"yes ({created['datasetId']})")

    async def _read_back(self) -> None:
        dataset = await self._read(self.scratch.dataset_id)
        self.answer("status after create", str(dataset.get("status")))
        attributes = dataset.get("customAttributes")
        kept = isinstance(attributes, dict) and attributes.get(MARKER) == self.report.run_id
        self.answer("customAttributes kept", "yes" if kept else f"no (Get Dataset has {json.dumps(attributes)})")
        if not dataset.get("connectionId"):
            raise StepFailed("Get Dataset has no top-level connectionId: a view cannot be made from it")

    async def _update(self) -> None:
        body = {"datasetId": self.scratch.dataset_id, **self._definition(" (updated)")}
        await self._find("dataset.update", lambda: self.client.update_dataset(self.app, self.scratch.dataset_id, body))

    async def _apply_changes(self) -> None:
        await self._find("dataset.apply_changes", lambda: self.client.apply_changes(self.app, self.scratch.dataset_id))
        name = (await self._read(self.scratch.dataset_id)).get("name")
        shown = "yes" if name == self._name(" (updated)") else f"no (the name is still {name!r})"
        self.answer("the update shows in Get Dataset after Apply Changes", shown)

    async def _load(self) -> None:
        """A load that cannot finish (a made-up connection) leaves the question open, no more."""
        try:
            await self.client.load_dataset(self.app, self.scratch.dataset_id)
            loaded = await self.client.wait_until_loaded(self.app, self.scratch.dataset_id,
                                                         poll_interval=self.poll_interval, timeout=self.load_timeout)
        except (DatasetLoadError, ApiError) as error:
            kind = ("ended FAILED" if isinstance(error, LoadFailedError) else
                    "did not end in time" if isinstance(error, DatasetLoadError) else "was refused")
            self.answer("a finished load's status", f"unknown: the load {kind} ({error}); a dataset on a real "
                        "connection and table (--connection-id) answers it")
            return
        self.answer("a finished load's status", str(loaded.get("status")))

    async def _share(self) -> None:
        await self._find("dataset.publish", lambda: self.client.set_shared(self.app, self.scratch.dataset_id, True))
        dataset = await self._read(self.scratch.dataset_id)
        echoed = f"yes (isPublic: {json.dumps(dataset['isPublic'])} after sharing)" if "isPublic" in dataset else "no"
        self.answer("Get Dataset echoes isPublic", echoed)

    async def _view(self) -> None:
        self.source = await self._read(self.scratch.dataset_id)      # as it is now: loaded, shared
        connection_id = self.source["connectionId"]
        self.scratch.view_in_flight = True       # its id is the server's: known only from the answer
        view = await self._find("view.create", lambda: self.client.create_view(
            self.app, self.app, connection_id, name=self._name(" (view)"),
            custom_attributes={MARKER: self.report.run_id}))
        self.scratch.view_in_flight = False
        self.scratch.view_ids.append(view["datasetId"])
        self.answer("what a view looks like", describe_view(await self._read(view["datasetId"]), self.source))

    async def _list(self) -> None:
        listed = {item.get("datasetId") for item in await self.client.list_datasets(self.app) if isinstance(item, dict)}
        wanted = {"the dataset": self.scratch.dataset_id, "its view": self.scratch.view_ids[0]}
        missing = [what for what, dataset_id in wanted.items() if dataset_id not in listed]
        self.answer("Get All Datasets lists the dataset and its view",
                    "yes" if not missing else f"no: {' and '.join(missing)} missing")

    async def _unshare(self) -> None:
        await self.client.set_shared(self.app, self.scratch.dataset_id, False)
        dataset = await self._read(self.scratch.dataset_id)
        if "isPublic" not in dataset:
            shown = "unknown: Get Dataset does not echo isPublic"
        else:
            shown = "yes" if dataset["isPublic"] is False else f"no (isPublic is {json.dumps(dataset['isPublic'])})"
        self.answer('{"isPublic": false} unshares', shown)

    # -- helpers -----------------------------------------------------------

    async def _find(self, name: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt`` with each candidate route of ``name`` until one is there."""
        finding = self.report.routes.setdefault(name, RouteFinding(name))
        for candidate in candidates(name, self.configured):
            self.client.use_route(name, candidate)
            try:
                result = await attempt()
            except ApiError as error:
                if not route_is_missing(error):
                    raise StepFailed(f"{candidate} answered HTTP {error.status}: {error.message}") from None
                finding.refused.append((candidate, f"HTTP {error.status}"))
                self.say(f"  {name}: {candidate} -> HTTP {error.status}: not there, trying the next")
                continue
            finding.accepted = candidate
            self.say(f"  {name}: {candidate} -> accepted")
            return result
        raise StepFailed(f"no candidate route for {name} was accepted (tried {len(finding.refused)}); "
                         f"find its path and set routes.{name} in qrvey-iac.yaml")

    async def _read(self, dataset_id: str) -> dict[str, Any]:
        return await self.client.get_dataset(self.app, dataset_id)

    def answer(self, question: str, answer: str) -> None:
        self.report.answers[question] = answer
        self.say(f"  {question}: {answer}")

    def _name(self, suffix: str) -> str:
        return f"qrvey-iac doctor {self.report.run_id}{suffix}"

    def _definition(self, suffix: str) -> dict[str, Any]:
        """A dataset definition (D4's fields) on --connection-id, marked as doctor's."""
        return {
            "name": self._name(suffix),
            "datasources": [{"name": "doctor", "connectionId": self.connection_id, "connectorType": self.connector_type,
                             "database": "qrvey_iac_doctor", "tableName": "qrvey_iac_doctor"}],
            "columns": [{"columnName": "One", "columnType": "NUMBER", "origColumnType": "NUMBER"},
                        {"columnName": "Label", "columnType": "STRING"}],
            "customAttributes": {MARKER: self.report.run_id},
        }

    # -- cleanup -----------------------------------------------------------

    async def _clean_up(self) -> None:
        self.say("cleanup: deleting what doctor made")
        for view_id in self.scratch.view_ids:
            await self._delete(view_id, "view")
        if self.scratch.dataset_id is not None:
            await self._delete(self.scratch.dataset_id, "dataset")
        try:
            leftovers = [item for item in await self.client.list_datasets(self.app) if self._ours(item)]
        except QrveyIacError as error:
            self.report.left_over.append(f"could not list the scratch app to look for leftovers: {error}")
            return
        for item in leftovers:           # a create whose answer was lost, or a view named only here
            await self._delete(str(item.get("datasetId")), "object")
        if self.scratch.view_in_flight and not leftovers:
            # Qrvey may finish a request whose client gave up: the view can still appear
            note = (f"a view create got no answer and may still land: if a dataset named "
                    f"{self._name(' (view)')!r} appears in the scratch app, delete it")
            self.report.left_over.append(note)
            self.say(f"  {note}")

    async def _delete(self, dataset_id: str, what: str) -> None:
        self.scratch.attempted.add(dataset_id)
        try:
            await self.client.delete_dataset(self.app, dataset_id)    # a 404 is "already gone"
        except QrveyIacError as error:
            self.report.left_over.append(f"{what} {dataset_id}: {error}")
            self.say(f"  could not delete {what} {dataset_id}: {error}")
            return
        self.report.deleted.append(dataset_id)

    def _ours(self, item: dict[str, Any]) -> bool:
        if not isinstance(item, dict) or item.get("datasetId") in self.scratch.attempted:   # tried already
            return False
        attributes = item.get("customAttributes")
        marked = isinstance(attributes, dict) and attributes.get(MARKER) == self.report.run_id
        return marked or str(item.get("name", "")).startswith(self._name(""))


def describe_view(view: dict[str, Any], source: dict[str, Any]) -> str:
    """What tells a view from its source in Get Dataset: its own fields, the plain fields whose
    value differs, and how its datasource and columns relate to the source."""
    own = sorted(set(view) - set(source))
    differing = sorted(key for key, value in view.items() if key in source and isinstance(value, (str, bool))
                       and key not in ("datasetId", "name", "updateDate", "createDate") and value != source[key])
    parts = [f"fields a dataset has not: {', '.join(own) or 'none'}"]
    parts += [f"{key}: {json.dumps(source[key])} -> {json.dumps(view[key])}" for key in differing]
    datasources = view.get("datasources") or [{}]
    first = datasources[0] if isinstance(datasources, list) and isinstance(datasources[0], dict) else {}
    follows = first.get("connectionId") == source.get("connectionId")
    parts.append(f"datasources[0].connectionId is the source's connectionId: {'yes' if follows else 'no'}")
    parts.append(f"columns: {_count(view.get('columns'))} (the source has {_count(source.get('columns'))})")
    return "; ".join(parts)


def _count(items: Any) -> int:
    return len(items) if isinstance(items, list) else 0
