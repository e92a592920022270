"""The ``POST .../all`` list envelope: limit, CONTAINS search filter and a cursor.

Qrvey's 2021 lists answered ``{Count, Items}``; newer list endpoints answer a lower-case
``items`` (qrvey-api.md §8 N8), and no source shows a cursor. So the shape is a setting
(``EmulatorConfig.list_shape``), for clients to be tested against each:

- ``cursor`` (default): ``{Count: <this page>, Items, LastEvaluatedKey: {<key>: <last id>}}``,
  the next page asked with ``ExclusiveStartKey``;
- ``items-token``: ``{count: <this page>, items, nextToken: "<last id>"}``, asked with ``nextToken``;
- ``total``: ``{Total: <all that match>, Items: <first page>}``, no cursor;
- ``count``: ``{Count: <all that match>, Items: <first page>}``, no cursor;
- ``unpaged``: ``{Items: <first page>}``: no cursor, nothing says more exist.

The last three cannot be paged: a listing longer than the limit is cut, which a client must
notice (``total``, ``count``: the number is larger than what came back; ``unpaged``: a full page).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qrvey_iac.emulator.errors import invalid, wrong_type
from qrvey_iac.emulator.validation import require_object

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True)
class ListQuery:
    limit: int = DEFAULT_LIMIT
    needles: tuple[str, ...] = ()  # lower-cased CONTAINS values; all must match the name
    start_after: str | None = None  # ExclusiveStartKey id, or nextToken


def list_page(body: Any, items: list[dict], order: dict[str, int], key: str = "datasetId",
              shape: str = "cursor", read: Callable[[dict], object] | None = None) -> dict:
    """One page of ``items`` (already in order), in the envelope ``shape`` names (see above).
    ``read`` is called on each item of the page before it is answered (a view follows its source)."""
    query = parse_list_query(body, key)
    selected = [item for item in items if _matches(item, query.needles)]
    if query.start_after is not None:
        if query.start_after not in order:
            raise invalid(f"ExclusiveStartKey.{key} {query.start_after} is not a position in this list")
        position = order[query.start_after]
        selected = [item for item in selected if order.get(item[key], float("inf")) > position]
    page = selected[: query.limit]
    more = len(selected) > query.limit
    for item in page if read is not None else ():
        read(item)
    if shape == "items-token":
        result: dict[str, Any] = {"count": len(page), "items": page}
        if more:
            result["nextToken"] = page[-1][key]
        return result
    if shape == "total":
        return {"Total": len(selected), "Items": page}
    if shape == "count":
        return {"Count": len(selected), "Items": page}
    if shape == "unpaged":
        return {"Items": page}
    result = {"Count": len(page), "Items": page}
    if more:
        result["LastEvaluatedKey"] = {key: page[-1][key]}
    return result


def parse_list_query(body: Any, key: str = "datasetId") -> ListQuery:
    if body is None:
        return ListQuery()
    body = require_object(body, "body")
    return ListQuery(
        limit=_parse_limit(body.get("limit")),
        needles=tuple(_parse_filter(item, index) for index, item in enumerate(_filters(body))),
        start_after=_parse_start_key(body.get("ExclusiveStartKey"), key) or _parse_token(body.get("nextToken")),
    )


def _parse_limit(value: Any) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise wrong_type("limit", f"an integer from 1 to {MAX_LIMIT}")
    return value


def _filters(body: dict) -> list:
    filters = body.get("filters")
    if filters is None:
        return []
    if not isinstance(filters, list):
        raise wrong_type("filters", "an array")
    return filters


def _parse_filter(item: Any, index: int) -> str:
    prefix = f"filters[{index}]"
    item = require_object(item, prefix)
    if item.get("filterType") != "CONTAINS":
        raise invalid(f"{prefix}.filterType {item.get('filterType')!r} is not supported (only 'CONTAINS')")
    if item.get("column") != "search":
        raise invalid(f"{prefix}.column {item.get('column')!r} is not supported (only 'search')")
    value = item.get("value")
    if not isinstance(value, str):
        raise wrong_type(f"{prefix}.value", "a string")
    return value.lower()


def _parse_start_key(value: Any, key: str) -> str | None:
    if value is None:
        return None
    value = require_object(value, "ExclusiveStartKey")
    start = value.get(key)
    if not isinstance(start, str) or not start:
        raise wrong_type(f"ExclusiveStartKey.{key}", "a non-empty string")
    return start


def _parse_token(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise wrong_type("nextToken", "a non-empty string")
    return value


def _matches(item: dict, needles: tuple[str, ...]) -> bool:
    name = str(item.get("name", "")).lower()
    return all(needle in name for needle in needles)
