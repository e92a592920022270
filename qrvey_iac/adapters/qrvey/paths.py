"""Every Qrvey endpoint the tool calls, in one table.

Templates are relative to ``/devapi/v4/user/{userId}/app/{appId}``. Several
paths and methods are not confirmed by any public source (see
docs/qrvey-api.md §2.1); they are marked below with their catalogue id, and an
environment can override any entry with ``"METHOD /path/{placeholder}"``.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import quote

from qrvey_iac.core.errors import Problem, RouteConfigError

ALLOWED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
ROUTES_FIELD = "routes"
ROUTES_SOURCE = "qrvey-iac.yaml"


@dataclass(frozen=True)
class Route:
    """One endpoint: an HTTP method and a path template with ``{placeholders}``."""

    method: str
    template: str

    @property
    def placeholders(self) -> frozenset[str]:
        return placeholders_of(self.template)

    def render(self, values: Mapping[str, str]) -> str:
        """Fill the placeholders, percent-encoding each value as one path segment."""
        missing = self.placeholders - values.keys()
        if missing:
            raise ValueError(f"route {self.template!r} needs {', '.join(sorted(missing))}")
        encoded = {name: quote(str(values[name]), safe="") for name in self.placeholders}
        return self.template.format_map(encoded)

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


_DATASET = "/qollect/dataset"
_ONE_DATASET = _DATASET + "/{datasetId}"
_ONE_CONNECTION = "/connections/{connectionId}"

# name -> route, with its qrvey-api.md id and how sure we are of it.
DEFAULT_ROUTES: Mapping[str, Route] = MappingProxyType({
    "dataset.get": Route("GET", _ONE_DATASET),                           # D2 confirmed
    "dataset.list": Route("POST", _DATASET + "/all"),                    # D1 confirmed
    "dataset.create": Route("POST", _DATASET),                           # D4 UNCONFIRMED path
    "dataset.create_from_connection": Route("POST", _DATASET + "/datasource"),  # D3 confirmed
    "dataset.update": Route("PUT", _ONE_DATASET),                        # D5 UNCONFIRMED path
    "dataset.apply_changes": Route("POST", _ONE_DATASET + "/applyChanges"),  # D6 UNCONFIRMED path
    "dataset.delete": Route("DELETE", _ONE_DATASET),                     # D7 confirmed
    "dataset.load": Route("POST", _ONE_DATASET + "/load"),               # D8 confirmed
    "dataset.publish": Route(                                            # D9 UNCONFIRMED method
        "POST", _ONE_DATASET + "/publishVersion?runPublicTrigger=true"),
    "view.create": Route("POST", _DATASET + "/clone/connection/{connectionId}"),  # D10 UNCONFIRMED method
    "connection.create": Route("POST", "/connections"),                  # C1 confirmed
    "connection.get": Route("GET", _ONE_CONNECTION),                     # C2 confirmed
    "connection.list": Route("POST", "/connections/all"),                # C3 confirmed
    "connection.update": Route("PUT", _ONE_CONNECTION),                  # C5 UNCONFIRMED method and path
    "connection.delete": Route("DELETE", _ONE_CONNECTION),               # C4 confirmed
    "app.get": Route("GET", ""),                  # §1.4 confirmed: GET /user/{userId}/app/{appId} itself
})

# Routes whose method or path no public source confirms (qrvey-api.md §2.1).
UNCONFIRMED_ROUTES: frozenset[str] = frozenset({
    "dataset.create", "dataset.update", "dataset.apply_changes",
    "dataset.publish", "view.create", "connection.update",
})

# Creates mint a new object on every call: repeating one may make a duplicate.
NON_IDEMPOTENT_ROUTES: frozenset[str] = frozenset({
    "dataset.create", "dataset.create_from_connection", "view.create", "connection.create",
})


def placeholders_of(template: str) -> frozenset[str]:
    """The ``{names}`` of a template; raises ValueError on unbalanced braces."""
    names = set()
    for _, field, spec, conversion in string.Formatter().parse(template):
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            raise ValueError(f"bad placeholder {{{field}}}")
        names.add(field)
    return frozenset(names)


def resolve_routes(overrides: Mapping[str, str] | None) -> Mapping[str, Route]:
    """The default table with an environment's overrides applied.

    Each override value reads ``"METHOD /path/{placeholder}"`` and must keep the
    placeholders of the route it replaces. Every problem is reported at once.
    """
    routes = dict(DEFAULT_ROUTES)
    problems = []
    for name, value in sorted((overrides or {}).items()):
        try:
            routes[name] = _parse_override(name, value)
        except ValueError as exc:
            problems.append(Problem(ROUTES_SOURCE, None, f"{ROUTES_FIELD}.{name}", str(exc)))
    if problems:
        raise RouteConfigError(problems)
    return MappingProxyType(routes)


def _parse_override(name: str, value: object) -> Route:
    if name not in DEFAULT_ROUTES:
        known = ", ".join(sorted(DEFAULT_ROUTES))
        raise ValueError(f"unknown route {name!r}; known routes: {known}")
    if not isinstance(value, str):
        raise ValueError(f"expected a string like 'PUT /qollect/dataset/{{datasetId}}', got {value!r}")
    parts = value.split()
    if len(parts) != 2:
        raise ValueError(f"expected 'METHOD /path', got {value!r}")
    method, template = parts[0].upper(), parts[1]
    if method not in ALLOWED_METHODS:
        raise ValueError(f"unknown HTTP method {parts[0]!r} (use one of {', '.join(sorted(ALLOWED_METHODS))})")
    if not template.startswith("/"):
        raise ValueError(f"path must start with '/', got {template!r}")
    return Route(method, _checked_template(name, template))


def _checked_template(name: str, template: str) -> str:
    try:
        found = placeholders_of(template)
    except ValueError as exc:
        raise ValueError(f"malformed path {template!r}: {exc}") from None
    expected = DEFAULT_ROUTES[name].placeholders
    if found != expected:
        want = ", ".join("{" + p + "}" for p in sorted(expected)) or "no placeholders"
        raise ValueError(f"path {template!r} must use {want}")
    return template
