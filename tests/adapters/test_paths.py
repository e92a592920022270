"""The route table: defaults, rendering, and environment overrides."""

from __future__ import annotations

import pytest

from qrvey_iac.adapters.qrvey.paths import (
    DEFAULT_ROUTES,
    NON_IDEMPOTENT_ROUTES,
    UNCONFIRMED_ROUTES,
    Route,
    resolve_routes,
)
from qrvey_iac.core.errors import ConfigError, QrveyIacError, RouteConfigError

EXPECTED_ROUTES = {
    "dataset.get": "GET /qollect/dataset/{datasetId}",
    "dataset.list": "POST /qollect/dataset/all",
    "dataset.create": "POST /qollect/dataset",
    "dataset.create_from_connection": "POST /qollect/dataset/datasource",
    "dataset.update": "PUT /qollect/dataset/{datasetId}",
    "dataset.apply_changes": "POST /qollect/dataset/{datasetId}/applyChanges",
    "dataset.delete": "DELETE /qollect/dataset/{datasetId}",
    "dataset.load": "POST /qollect/dataset/{datasetId}/load",
    "dataset.publish": "POST /qollect/dataset/{datasetId}/publishVersion?runPublicTrigger=true",
    "view.create": "POST /qollect/dataset/clone/connection/{connectionId}",
    "connection.create": "POST /connections",
    "connection.get": "GET /connections/{connectionId}",
    "connection.list": "POST /connections/all",
    "connection.update": "PUT /connections/{connectionId}",
    "connection.delete": "DELETE /connections/{connectionId}",
    "app.get": "GET ",        # the prefix itself: GET /devapi/v4/user/{userId}/app/{appId}
}


def test_default_table_is_exactly_the_documented_one():
    assert {name: str(route) for name, route in DEFAULT_ROUTES.items()} == EXPECTED_ROUTES


def test_creates_are_the_only_non_idempotent_routes():
    assert NON_IDEMPOTENT_ROUTES == {
        "dataset.create", "dataset.create_from_connection", "view.create", "connection.create",
    }


def test_unconfirmed_routes_are_known_routes():
    assert UNCONFIRMED_ROUTES <= DEFAULT_ROUTES.keys()
    assert {"dataset.create", "dataset.apply_changes", "view.create"} <= UNCONFIRMED_ROUTES
    assert "dataset.get" not in UNCONFIRMED_ROUTES


def test_render_percent_encodes_each_value_as_one_segment():
    route = DEFAULT_ROUTES["dataset.publish"]
    assert route.render({"datasetId": "a/b c?"}) == (
        "/qollect/dataset/a%2Fb%20c%3F/publishVersion?runPublicTrigger=true"
    )


def test_render_names_a_missing_placeholder():
    with pytest.raises(ValueError, match="datasetId"):
        DEFAULT_ROUTES["dataset.get"].render({})


def test_no_overrides_gives_the_defaults():
    assert dict(resolve_routes(None)) == dict(DEFAULT_ROUTES)
    assert dict(resolve_routes({})) == dict(DEFAULT_ROUTES)


def test_override_replaces_one_route_and_keeps_the_rest():
    routes = resolve_routes({
        "dataset.publish": "put /qollect/dataset/{datasetId}/publishVersion",
        "dataset.apply_changes": "POST /qollect/dataset/{datasetId}/apply",
    })
    assert routes["dataset.publish"] == Route("PUT", "/qollect/dataset/{datasetId}/publishVersion")
    assert routes["dataset.apply_changes"] == Route("POST", "/qollect/dataset/{datasetId}/apply")
    assert routes["dataset.get"] == DEFAULT_ROUTES["dataset.get"]


def test_overrides_do_not_change_the_defaults():
    resolve_routes({"dataset.get": "POST /x/{datasetId}"})
    assert DEFAULT_ROUTES["dataset.get"] == Route("GET", "/qollect/dataset/{datasetId}")


@pytest.mark.parametrize(
    ("name", "value", "complaint"),
    [
        ("dataset.nope", "GET /x", "unknown route 'dataset.nope'"),
        ("dataset.get", "FETCH /qollect/dataset/{datasetId}", "unknown HTTP method 'FETCH'"),
        ("dataset.get", "/qollect/dataset/{datasetId}", "expected 'METHOD /path'"),
        ("dataset.get", "GET /a {datasetId}", "expected 'METHOD /path'"),
        ("dataset.get", "GET qollect/dataset/{datasetId}", "must start with '/'"),
        ("dataset.get", "GET /qollect/dataset/{id}", "must use {datasetId}"),
        ("dataset.list", "POST /qollect/dataset/{datasetId}/all", "must use no placeholders"),
        ("dataset.get", "GET /qollect/dataset/{datasetId", "malformed path"),
        ("dataset.get", "GET /qollect/dataset/{datasetId!r}", "malformed path"),
        ("dataset.get", 42, "expected a string"),
    ],
)
def test_a_bad_override_is_a_config_error_naming_the_route(name, value, complaint):
    with pytest.raises(RouteConfigError) as caught:
        resolve_routes({name: value})
    error = caught.value
    assert isinstance(error, ConfigError) and isinstance(error, QrveyIacError)
    assert [p.field for p in error.problems] == [f"routes.{name}"]
    assert complaint in str(error)


def test_every_bad_override_is_reported_at_once():
    with pytest.raises(RouteConfigError) as caught:
        resolve_routes({"x.y": "GET /", "dataset.get": "GET /nothing", "dataset.load": "POST /q/{datasetId}"})
    assert [p.field for p in caught.value.problems] == ["routes.dataset.get", "routes.x.y"]
