"""The route table: which handler serves which method and path (after the user/app prefix).

Paths are matched segment by segment on the raw (still percent-encoded) path, so an id holding
an encoded ``/`` stays one segment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


def match_route(method: str, segments: list[str],
                routes: tuple[Route, ...] | None = None) -> tuple[Route, dict[str, str]]:
    """The route for method and path in ``routes`` (None: ROUTES, as it is at the call); 404
    for an unknown path, 405 for a known path, wrong method."""
    path_known = False
    for route in ROUTES if routes is None else routes:
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


# The operations whose method or path qrvey-api.md leaves open (§6, questions 1 and 2), by the
# names a qrvey-iac.yaml ``routes:`` block gives them: the handler each runs and the path
# parameters it needs. An emulator given other answers (EmulatorConfig.routes) serves such an
# operation at that one method and path only, as a real instance would; the defaults stay as
# ROUTES has them (publishVersion and clone on POST and PUT).
MOVABLE: Mapping[str, tuple[Callable[[Call], dict], frozenset[str]]] = {
    "dataset.create": (datasets.create_dataset, frozenset()),
    "dataset.update": (datasets.update_dataset, frozenset({"datasetId"})),
    "dataset.apply_changes": (datasets.apply_changes, frozenset({"datasetId"})),
    "dataset.publish": (views.publish_version, frozenset({"datasetId"})),
    "view.create": (views.clone_view, frozenset({"connectionId"})),
    "connection.update": (connections.update_connection, frozenset({"connectionId"})),
}
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def route_table(answers: Mapping[str, str]) -> tuple[Route, ...]:
    """ROUTES with each operation of ``answers`` (name -> ``"METHOD /path"``, a query string
    ignored) moved to that method and path. ValueError names an unknown operation, a malformed
    answer, a path without the parameters its handler needs, or one another route already serves."""
    moved = [_moved_route(name, text) for name, text in sorted(answers.items())]
    gone = {MOVABLE[name][0] for name in answers}
    kept = [route for route in ROUTES if route.handler not in gone]
    for route in moved:
        clash = next((other for other in kept if other.method == route.method
                      and _shape(other.template) == _shape(route.template)), None)
        if clash is not None:
            raise ValueError(f"{route.method} {route.template} is already served by {clash.method} {clash.template}")
        kept.append(route)
    return tuple(kept)


def _moved_route(name: str, text: str) -> Route:
    if name not in MOVABLE:
        raise ValueError(f"unknown route {name!r}; the emulator can move {', '.join(sorted(MOVABLE))}")
    parts = str(text).split()
    if len(parts) != 2 or parts[0].upper() not in _METHODS or not parts[1].startswith("/"):
        raise ValueError(f"route {name}: expected 'METHOD /path' with METHOD one of {', '.join(_METHODS)}, "
                         f"got {text!r}")
    template = parts[1].split("?", 1)[0].rstrip("/") or "/"
    handler, needed = MOVABLE[name]
    found = {part.strip("{}") for part in template.strip("/").split("/") if part.startswith("{")}
    if found != needed:
        want = ", ".join("{" + p + "}" for p in sorted(needed)) or "no parameters"
        raise ValueError(f"route {name}: the path {template!r} must use {want}")
    return Route(parts[0].upper(), template, handler)


def _shape(template: str) -> tuple[str, ...]:
    return tuple("{}" if part.startswith("{") else part for part in template.strip("/").split("/"))
