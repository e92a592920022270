"""The one HTTP client through which qrvey-iac talks to Qrvey (real or emulated).

Every request goes through :meth:`QrveyClient.call`: URL building, the
``x-api-key`` header, the concurrency limit, the optional rate limit, retries
with jittered backoff (see ``sender.py`` for the rules), logging with the key
redacted, status -> typed error, the deadline per call and the cap on an answer's size, and
answers checked before they are used (a JSON object; a create's answer names the id sent;
a listing ends). One ``httpx.AsyncClient`` per instance,
its pool sized to ``parallelism``; close it with ``aclose`` or ``async with``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from qrvey_iac import __version__
from qrvey_iac.adapters.qrvey.network import Exchange, pooled_transport
from qrvey_iac.adapters.qrvey.paths import NON_IDEMPOTENT_ROUTES, Route, resolve_routes
from qrvey_iac.adapters.qrvey.responses import REDACTED, RedactingFilter, Redactor
from qrvey_iac.adapters.qrvey.retry import RetryPolicy
from qrvey_iac.adapters.qrvey.sender import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_ANSWER_BYTES,
    RAISE_ON_404,
    PreparedRequest,
    Sender,
)
from qrvey_iac.core.errors import LoadFailedError, LoadTimeoutError, UnusableAnswerError
from qrvey_iac.core.keys import AppRef

__all__ = ["QrveyClient", "RetryPolicy", "LOADED_STATUSES", "FAILED_STATUSES"]

API_PREFIX = "/devapi/v4/user/{userId}/app/{appId}"
LOADED_STATUSES = frozenset({"LOADED", "ACTIVE"})
FAILED_STATUSES = frozenset({"FAILED"})
_FAILURE_DETAIL_KEYS = ("statusMessage", "errorMessage", "error", "message")
MAX_LIST_PAGES = 1_000      # a listing longer than this never ends: 100,000 objects at 100 a page
LIST_ITEM_KEYS = ("Items", "items")
LIST_TOTAL_KEYS = ("Total", "total", "TotalCount", "totalCount")   # how many the whole listing holds
LIST_COUNT_KEYS = ("Count", "count")      # this page's items (DynamoDB), or, on some lists, all of them
# cursor key in an answer -> the key the next request sends it back under
LIST_CURSORS = (("LastEvaluatedKey", "ExclusiveStartKey"), ("lastEvaluatedKey", "exclusiveStartKey"),
                ("nextToken", "nextToken"), ("NextToken", "NextToken"))
LIST_INCOMPLETE_HINT = ("; qrvey-iac stops rather than work from part of the listing (it would miss objects). "
                        "Tell the qrvey-iac maintainers how this Qrvey instance pages its lists")


class QrveyClient:
    """Async client for the Qrvey dataset and connection endpoints."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        parallelism: int = 10,
        timeout: float = 30.0,
        retry: RetryPolicy = RetryPolicy(),
        routes: Mapping[str, str] | None = None,
        rate_limit: float | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        secrets: Collection[str] = (),
        deadline: float = DEFAULT_DEADLINE,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        max_list_pages: int = MAX_LIST_PAGES,
        key_name: str = "",
    ) -> None:
        """``secrets``: values to hide besides the key in logs and errors, read at each use
        (a set the caller may fill later: the manifests' ``${env:X}`` values). ``key_name``:
        the environment variable the key was read from, named when Qrvey refuses it."""
        if parallelism < 1:
            raise ValueError("parallelism must be at least 1")
        self._base_url = base_url.rstrip("/")
        self._redact = Redactor(api_key, secrets)
        self._log_filter = RedactingFilter(self._redact)
        logging.getLogger("httpx").addFilter(self._log_filter)    # its INFO line shows each URL
        self._route_overrides = dict(routes or {})
        self._routes: Mapping[str, Route] = resolve_routes(self._route_overrides)
        self._sleep = sleep
        self._parallelism = parallelism
        self._max_list_pages = max_list_pages
        limits = httpx.Limits(max_connections=parallelism, max_keepalive_connections=parallelism)
        own = transport or pooled_transport(limits)     # None: httpx builds them (a proxy is set)
        self._http = httpx.AsyncClient(
            transport=own,
            headers={"x-api-key": api_key, "Content-Type": "application/json", "Accept": "application/json",
                     "User-Agent": f"qrvey-iac/{__version__}"},
            timeout=httpx.Timeout(timeout),
            limits=limits,
        )
        exchange = Exchange.via_client(self._http) if own is None else Exchange.direct(self._http, own)
        self._sender = Sender(
            exchange, self._base_url, self._redact, parallelism=parallelism, retry=retry,
            rate_limit=rate_limit, sleep=sleep, rng=rng or random.Random(),
            deadline=deadline, max_answer_bytes=max_answer_bytes, key_name=key_name,
        )

    def __repr__(self) -> str:
        return f"QrveyClient(base_url={self._base_url!r}, api_key={REDACTED!r}, parallelism={self._parallelism})"

    async def __aenter__(self) -> QrveyClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        logging.getLogger("httpx").removeFilter(self._log_filter)
        await self._http.aclose()

    def route(self, name: str) -> Route:
        """The method and path the operation ``name`` is sent with."""
        return self._routes[name]

    def use_route(self, name: str, route: str) -> None:
        """Send the operation ``name`` as ``route`` (``"METHOD /path"``) from now on, as if the
        environment's ``routes:`` said so (``doctor`` tries each candidate of an unconfirmed route
        this way). RouteConfigError, with nothing changed, for an override ``routes:`` would refuse."""
        overrides = {**self._route_overrides, name: route}
        self._routes = resolve_routes(overrides)
        self._route_overrides = overrides

    # -- the choke point ---------------------------------------------------

    async def call(
        self,
        route: str,
        app: AppRef,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Send one logical request; returns the decoded JSON (None for an empty body).

        ``params`` fill the route's ``{placeholders}``; any left over go to the
        query string. ``idempotent=None`` decides from the route name.
        """
        return await self._call(route, app, params, body, idempotent)

    async def _call(
        self, route: str, app: AppRef, params: dict[str, str] | None, body: Any,
        idempotent: bool | None, gone_result: Any = RAISE_ON_404,
    ) -> Any:
        request = self._prepare(route, app, params or {}, body)
        if idempotent is None:
            idempotent = route not in NON_IDEMPOTENT_ROUTES
        return await self._sender.send(request, idempotent, gone_result)

    def _prepare(self, name: str, app: AppRef, params: dict[str, str], body: Any) -> PreparedRequest:
        route = self._routes.get(name)
        if route is None:
            raise ValueError(f"unknown route {name!r}")
        prefix = API_PREFIX.format(userId=quote(app.user_id, safe=""), appId=quote(app.app_id, safe=""))
        path = prefix + route.render(params)
        query = {k: v for k, v in params.items() if k not in route.placeholders}
        if query:
            path = str(httpx.URL(path).copy_merge_params(query))
        return PreparedRequest(name, route.method, path, body)

    # -- typed operations --------------------------------------------------

    async def _object(self, route: str, app: AppRef, body: Any = None, gone_result: Any = RAISE_ON_404,
                      **ids: str) -> dict:
        """The answer of a call that must answer a JSON object (UnusableAnswerError otherwise)."""
        return (await self._request_object(route, app, body, gone_result, ids))[1]

    async def _request_object(self, route: str, app: AppRef, body: Any, gone_result: Any,
                              ids: dict[str, str], ahead: bool = False) -> tuple[PreparedRequest, dict]:
        request = self._prepare(route, app, ids, body)
        result = await self._sender.send(request, route not in NON_IDEMPOTENT_ROUTES, gone_result,
                                         need_object=True, ahead=ahead)
        return request, result

    async def _identified(self, route: str, app: AppRef, expected: str | None, body: Any = None,
                          key: str = "datasetId", **ids: str) -> dict:
        """The answer about one dataset (or connection: ``key`` ``connectorid``). A create's must
        name one, the one its body chose (``expected``) when it chose one; a read's, when it
        names one, the one asked for. Never an id recorded blindly."""
        request, result = await self._request_object(route, app, body, RAISE_ON_404, ids)
        answered = result.get(key)
        reading = request.method == "GET"
        if reading and answered is None:
            return result
        if not isinstance(answered, str) or not answered:
            message = f"the answer names no {key} (it has {answered!r})"
        elif expected is not None and answered != expected:
            message = (f"the answer names {key} {answered!r}, not {expected!r}, the one "
                       f"{'asked for' if reading else 'sent'}; nothing was recorded from it")
        else:
            return result
        raise UnusableAnswerError(200, self._redact(message), request.method, self._redact(request.path))

    async def _list_all(self, route: str, app: AppRef, filters: list[dict] | None, page_size: int) -> list[dict]:
        """Every item of a listing, page by page, whatever its envelope (qrvey-api.md §5, §8 N8):
        the items under ``Items`` or ``items``; the next page asked with the cursor the answer
        gives (``LastEvaluatedKey`` sent back as ``ExclusiveStartKey``, or ``nextToken``).

        It never returns part of a listing as the whole: an answer without a cursor whose
        ``Total`` (or a ``Count`` larger than the items it holds) says more exist than were read,
        or a full page with neither a cursor nor a number, is an UnusableAnswerError naming what
        is missing. A cursor that repeats, or more than ``max_list_pages`` pages, is a listing
        that never ends. Its pages take the sender's free slots before single calls (slots.py)."""
        items: list[dict] = []
        cursor: dict[str, Any] = {}
        seen: set[str] = set()
        for _ in range(self._max_list_pages):
            body: dict[str, Any] = {"limit": page_size}
            if filters:
                body["filters"] = filters
            body.update(cursor)
            _, page = await self._request_object(route, app, body, RAISE_ON_404, {}, ahead=True)
            batch = self._page_items(route, app, page)
            items.extend(batch)
            named, cursor = _next_cursor(page)
            if not cursor:
                self._check_complete(route, app, page, batch, items, page_size)
                return items
            self._check_progress(route, app, named, cursor, seen)
        message = (f"the listing did not end after {self._max_list_pages} pages ({len(items)} items); "
                   "stopped rather than read forever")
        raise self._unusable_listing(route, app, message)

    def _page_items(self, route: str, app: AppRef, page: dict) -> list:
        for key in LIST_ITEM_KEYS:
            if key in page:
                batch = page[key]
                if isinstance(batch, list):
                    return batch
                raise self._unusable_listing(route, app, f"the list answer's {key!r} is not an array")
        raise self._unusable_listing(route, app, "list response has no 'Items' array (nor an 'items' one)")

    def _check_complete(self, route: str, app: AppRef, page: dict, batch: list, items: list, page_size: int) -> None:
        """The last page (no cursor): refuse a listing that says, or may be, longer than what was read."""
        missing = _incomplete(page, len(batch), len(items), page_size)
        if missing:
            raise self._unusable_listing(route, app, missing + LIST_INCOMPLETE_HINT)

    def _unusable_listing(self, route: str, app: AppRef, message: str) -> UnusableAnswerError:
        request = self._prepare(route, app, {}, None)
        return UnusableAnswerError(200, self._redact(message), request.method, self._redact(request.path))

    def _check_progress(self, route: str, app: AppRef, named: str, cursor: dict[str, Any], seen: set[str]) -> None:
        marker = json.dumps(list(cursor.values())[0], sort_keys=True, default=str)
        if marker in seen:
            raise self._unusable_listing(route, app, f"pagination repeats {named} {marker}")
        seen.add(marker)

    async def get_dataset(self, app: AppRef, dataset_id: str) -> dict:
        return await self._identified("dataset.get", app, dataset_id, datasetId=dataset_id)

    async def list_datasets(self, app: AppRef, *, search: str | None = None, page_size: int = 100) -> list[dict]:
        filters = None
        if search is not None:
            filters = [{"filterType": "CONTAINS", "column": "search", "value": search.lower()}]
        return await self._list_all("dataset.list", app, filters, page_size)

    async def create_dataset(self, app: AppRef, body: dict) -> dict:
        """Create from a full definition; the answer must name the ``datasetId`` the body chose."""
        return await self._identified("dataset.create", app, body.get("datasetId"), body=body)

    async def create_dataset_from_connection(self, app: AppRef, body: dict) -> dict:
        return await self._identified("dataset.create_from_connection", app, body.get("datasetId"), body=body)

    async def update_dataset(self, app: AppRef, dataset_id: str, body: dict) -> dict:
        return await self._object("dataset.update", app, body=body, datasetId=dataset_id)

    async def apply_changes(self, app: AppRef, dataset_id: str) -> dict:
        return await self._object("dataset.apply_changes", app, datasetId=dataset_id)

    async def delete_dataset(self, app: AppRef, dataset_id: str) -> dict:
        gone = {"datasetId": dataset_id}
        return await self._object("dataset.delete", app, gone_result=gone, datasetId=dataset_id)

    async def load_dataset(self, app: AppRef, dataset_id: str) -> dict:
        return await self._object("dataset.load", app, datasetId=dataset_id)

    async def wait_until_loaded(
        self, app: AppRef, dataset_id: str, *, poll_interval: float = 1.0, timeout: float = 600.0,
    ) -> dict:
        """Poll Get Dataset until LOADED or ACTIVE; FAILED and running out of time raise."""
        started = time.monotonic()
        slept = 0.0
        while True:
            dataset = await self.get_dataset(app, dataset_id)
            status = str(dataset.get("status", "")).upper()
            if status in LOADED_STATUSES:
                return dataset
            if status in FAILED_STATUSES:
                raise LoadFailedError(dataset_id, status, _failure_detail(dataset, self._redact))
            waited = max(slept, time.monotonic() - started)
            if waited >= timeout:
                raise LoadTimeoutError(dataset_id, status or "UNKNOWN", waited)
            pause = min(poll_interval, timeout - waited)
            await self._sleep(pause)
            slept += pause

    async def get_app(self, app: AppRef) -> dict:
        """GET /user/{u}/app/{a} (qrvey-api.md §1.4): the app, NotFoundError when it does not exist.
        It goes before single calls waiting for a slot: planning waits on it (a missing app is
        said before a refresh's last read, not after it)."""
        return (await self._request_object("app.get", app, None, RAISE_ON_404, {}, ahead=True))[1]

    async def set_shared(self, app: AppRef, dataset_id: str, shared: bool) -> dict:
        return await self._object("dataset.publish", app, body={"isPublic": shared}, datasetId=dataset_id)

    async def create_view(
        self, target: AppRef, source: AppRef, connection_id: str, *,
        name: str | None = None, custom_attributes: dict | None = None,
    ) -> dict:
        body: dict[str, Any] = {"appId": source.app_id, "userId": source.user_id}
        if name is not None:
            body["name"] = name
        if custom_attributes is not None:
            body["customAttributes"] = custom_attributes
        return await self._identified("view.create", target, None, body=body, connectionId=connection_id)

    async def create_connection(self, app: AppRef, body: dict) -> dict:
        """Create Connection (C1); the answer must name the ``connectorid`` Qrvey minted."""
        return await self._identified("connection.create", app, None, body=body, key="connectorid")

    async def get_connection(self, app: AppRef, connection_id: str) -> dict:
        return await self._identified("connection.get", app, connection_id, key="connectorid",
                                      connectionId=connection_id)

    async def list_connections(self, app: AppRef, *, page_size: int = 100) -> list[dict]:
        return await self._list_all("connection.list", app, None, page_size)

    async def update_connection(self, app: AppRef, connection_id: str, body: dict) -> dict:
        return await self._object("connection.update", app, body=body, connectionId=connection_id)

    async def delete_connection(self, app: AppRef, connection_id: str) -> dict:
        gone = {"connectorid": connection_id}
        return await self._object("connection.delete", app, gone_result=gone, connectionId=connection_id)


def _next_cursor(page: dict) -> tuple[str, dict[str, Any]]:
    """The answer's cursor key and the body entry that asks for the next page ({} when the
    answer gives no cursor)."""
    for answered, sent in LIST_CURSORS:
        value = page.get(answered)
        if value:
            return answered, {sent: value}
    return "", {}


def _incomplete(page: dict, on_page: int, read: int, page_size: int) -> str:
    """Why a listing's last page (it gave no cursor) leaves objects unread, or "" when it does not.

    A total says how many the whole listing holds. A count is either this page's (DynamoDB's
    ``Count``) or the whole listing's: larger than both the page and what was read, it is the
    latter, and some were not read. With neither, a page as full as the limit asked for may
    have been cut there."""
    total = _number(page, LIST_TOTAL_KEYS)
    count = _number(page, LIST_COUNT_KEYS)
    if total is not None and total > read:
        return f"the listing says a total of {total} but answered {read} items and no cursor to read the rest"
    if count is not None and count > on_page and count > read:
        return f"the listing says a count of {count} but answered {read} items and no cursor to read the rest"
    if total is None and count is None and on_page >= page_size:
        return (f"the listing answered a full page ({on_page} items, the limit asked for) with neither a cursor "
                "nor a count: more may exist and there is no way to read them")
    return ""


def _number(page: dict, keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = page.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _failure_detail(dataset: dict, redact: Redactor) -> str:
    for key in _FAILURE_DETAIL_KEYS:
        value = dataset.get(key)
        if isinstance(value, str) and value:
            return redact(value)
    return ""
