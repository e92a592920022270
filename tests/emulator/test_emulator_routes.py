"""Other answers to the open route questions (EmulatorConfig.routes, `emulator serve --route`):
an operation moved elsewhere is served there only; everything else stays as it was."""

from __future__ import annotations

import pytest
from emulator_helpers import SALES, create_dataset, error_message, make_client, ok

from qrvey_iac.emulator import EmulatorConfig, create_app
from qrvey_iac.emulator.routes import ROUTES, route_table

MOVED = {
    "dataset.update": "PUT /qollect/dataset/{datasetId}/update",
    "dataset.publish": "PUT /qollect/dataset/{datasetId}/publishVersion?runPublicTrigger=true",
    "dataset.apply_changes": "POST /qollect/dataset/{datasetId}/apply",
}


def test_no_answers_is_the_default_table():
    assert route_table({}) == ROUTES


@pytest.mark.anyio
async def test_moved_operations_answer_at_their_new_place_only():
    async with make_client(create_app(EmulatorConfig(routes=MOVED))) as client:
        dataset = await create_dataset(client)
        one = f"{SALES}/qollect/dataset/{dataset['datasetId']}"
        body = {**dataset, "name": "Renamed"}
        assert "Method PUT is not allowed" in error_message(await client.put(one, json=body), 405)
        assert ok(await client.put(f"{one}/update", json=body))["pendingChanges"] is True

        assert "not found" in error_message(await client.post(f"{one}/applyChanges"), 404)
        assert ok(await client.post(f"{one}/apply"))["pendingChanges"] is False

        publish = f"{one}/publishVersion?runPublicTrigger=true"
        error_message(await client.post(publish, json={"isPublic": True}), 405)
        assert ok(await client.put(publish, json={"isPublic": True}))["isPublic"] is True
        assert ok(await client.get(one))["name"] == "Renamed"        # the rest is unchanged


@pytest.mark.anyio
async def test_the_default_emulator_still_takes_both_methods_for_publish_version():
    async with make_client(create_app(EmulatorConfig())) as client:
        dataset = await create_dataset(client)
        publish = f"{SALES}/qollect/dataset/{dataset['datasetId']}/publishVersion"
        assert ok(await client.post(publish, json={"isPublic": True}))["isPublic"] is True
        assert ok(await client.put(publish, json={"isPublic": False}))["isPublic"] is False


@pytest.mark.parametrize(("answers", "message"), [
    ({"dataset.get": "GET /qollect/ds/{datasetId}"}, "unknown route 'dataset.get'"),
    ({"dataset.update": "PUT"}, "expected 'METHOD /path'"),
    ({"dataset.update": "FETCH /qollect/dataset/{datasetId}/u"}, "expected 'METHOD /path'"),
    ({"dataset.update": "PUT /qollect/dataset/{id}/u"}, "must use {datasetId}"),
    ({"dataset.update": "POST /qollect/dataset/all"}, "must use {datasetId}"),
    ({"dataset.create": "POST /qollect/dataset/all"}, "already served by POST /qollect/dataset/all"),
])
def test_a_bad_answer_is_refused_naming_it(answers, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("(", r"\(")):
        create_app(EmulatorConfig(routes=answers))


def test_emulator_serve_refuses_a_bad_route_before_listening():
    from click.testing import CliRunner

    from qrvey_iac.cli import cli

    result = CliRunner().invoke(cli, ["emulator", "serve", "--port", "0", "--route", "dataset.update=PUT /x",
                                      "--route", "nonsense"])
    assert result.exit_code == 1
    assert "Error: --route: expected NAME=METHOD /PATH, got 'nonsense'" in result.stderr
    assert "Error: --route: route dataset.update: the path '/x' must use {datasetId}" in result.stderr
    assert "listening" not in result.stderr
