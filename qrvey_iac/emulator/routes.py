"""The route table: which handler serves which method and path (after the user/app prefix).

Paths are matched segment by segment on the raw (still percent-encoded) path, so an id holding
an encoded ``/`` stays one segment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from qrvey_iac.emulator import connections, datasets, views
from qrvey_iac.emulator.context import Call
from qrvey_iac.emulator.errors import ApiError

# /devapi/v4 is what Qrvey serves today; /api/v4 is the older spelling some docs still show.
API_ROOTS = ("devapi", "api")


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # e.g. "/qollect/dataset/{datasetId}"
    handler: Callable[[Call], dict]

    def match(self, segments: list[str]) -> dict[str, str] | None:
        """Path parameters if ``segments`` fit the template, else None."""
        parts = self.template.strip("/").split("/")
        if len(parts) != len(segments):
            return None
        params = {}
        for part, segment in zip(parts, segments):
            if part.startswith("{"):
                params[part.strip("{}")] = segment
            elif part != segment:
                return None
        return params


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


@dataclass(frozen=True)
class Target:
    """Where a request goes: the path's user and app, and the decoded segments after them."""

    user_id: str
    app_id: str
    segments: list[str]

    @property
    def path(self) -> str:
        """The path after the prefix, e.g. "/qollect/dataset/abc" (what fault routes match)."""
        return "/" + "/".join(self.segments)


def split_prefix(raw_path: str) -> Target:
    """Split ``/devapi/v4/user/{u}/app/{a}/...``; a path outside the API is a 404."""
    segments = [unquote(segment) for segment in raw_path.split("/")[1:]]
    if segments and not segments[-1]:
        segments.pop()  # a trailing slash
    head = segments[:6]
    if (
        len(head) < 6
        or head[0] not in API_ROOTS
        or (head[1], head[2], head[4]) != ("v4", "user", "app")
        or not head[3]
        or not head[5]
    ):
        raise ApiError(404, f"Route {unquote(raw_path)} not found")
    return Target(head[3], head[5], segments[6:])


def match_route(method: str, segments: list[str]) -> tuple[Route, dict[str, str]]:
    """The route for method and path; 404 for an unknown path, 405 for a known path, wrong method."""
    path_known = False
    for route in ROUTES:
        params = route.match(segments)
        if params is None:
            continue
        if route.method == method:
            return route, params
        path_known = True
    path = "/" + "/".join(segments)
    if path_known:
        raise ApiError(405, f"Method {method} is not allowed on {path}")
    raise ApiError(404, f"Route {method} {path} not found")
