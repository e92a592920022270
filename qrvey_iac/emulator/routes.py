"""The route table: which handler serves which method and path (after the user/app prefix)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from qrvey_iac.emulator import connections, datasets, views
from qrvey_iac.emulator.context import Call
from qrvey_iac.emulator.errors import ApiError

# /devapi/v4 is what Qrvey serves today; /api/v4 is the older spelling some docs still show.
PREFIX = re.compile(r"^/(?:devapi|api)/v4/user/(?P<user>[^/]+)/app/(?P<app>[^/]+)(?P<rest>/.*)?$")


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # e.g. "/qollect/dataset/{datasetId}"
    handler: Callable[[Call], dict]

    @property
    def regex(self) -> re.Pattern[str]:
        return _template_regex(self.template)


ROUTES = (
    Route("POST", "/qollect/dataset", datasets.create_dataset),
    Route("POST", "/qollect/dataset/datasource", datasets.create_from_connection),
    Route("POST", "/qollect/dataset/all", datasets.list_datasets),
    Route("POST", "/qollect/dataset/clone/connection/{connectionId}", views.clone_view),
    Route("PUT", "/qollect/dataset/clone/connection/{connectionId}", views.clone_view),
    Route("GET", "/qollect/dataset/{datasetId}", datasets.get_dataset),
    Route("PUT", "/qollect/dataset/{datasetId}", datasets.update_dataset),
    Route("DELETE", "/qollect/dataset/{datasetId}", datasets.delete_dataset),
    Route("POST", "/qollect/dataset/{datasetId}/applyChanges", datasets.apply_changes),
    Route("POST", "/qollect/dataset/{datasetId}/load", datasets.load_dataset),
    Route("POST", "/qollect/dataset/{datasetId}/publishVersion", views.publish_version),
    Route("PUT", "/qollect/dataset/{datasetId}/publishVersion", views.publish_version),
    Route("POST", "/connections", connections.create_connection),
    Route("POST", "/connections/all", connections.list_connections),
    Route("GET", "/connections/{connectionId}", connections.get_connection),
    Route("PUT", "/connections/{connectionId}", connections.update_connection),
    Route("DELETE", "/connections/{connectionId}", connections.delete_connection),
)


def split_prefix(path: str) -> tuple[str, str, str]:
    """(userId, appId, rest of the path) or a 404 for a path outside the API."""
    match = PREFIX.match(path)
    if match is None:
        raise ApiError(404, f"Route {path} not found")
    rest = match.group("rest") or "/"
    if len(rest) > 1:
        rest = rest.rstrip("/")
    return match.group("user"), match.group("app"), rest


def match_route(method: str, path: str) -> tuple[Route, dict[str, str]]:
    """The route for method and path; 404 for an unknown path, 405 for a known path, wrong method."""
    path_known = False
    for route in ROUTES:
        match = route.regex.fullmatch(path)
        if match is None:
            continue
        if route.method == method:
            return route, match.groupdict()
        path_known = True
    if path_known:
        raise ApiError(405, f"Method {method} is not allowed on {path}")
    raise ApiError(404, f"Route {method} {path} not found")


@functools.lru_cache(maxsize=None)
def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template))
