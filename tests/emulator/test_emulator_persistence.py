"""World persistence: JSON round trip, atomic save, corrupt files (saving while served: test_emulator_saving.py)."""

from __future__ import annotations

import json
import os

import pytest
from emulator_helpers import EMEA, SALES, connection_body, create_dataset, error_message, make_client, ok, share

from qrvey_iac.emulator import EmulatorConfig, World, create_app

pytestmark = pytest.mark.anyio


async def populate(client) -> dict:
    source = await create_dataset(client, customAttributes={"k": "v"})
    await share(client, source["datasetId"])
    ok(await client.post(f"{SALES}/connections", json=connection_body()))
    ok(await client.post(f"{SALES}/qollect/dataset/{source['datasetId']}/load"))
    body = {"appId": "a-sales", "userId": "u-sales"}
    ok(await client.post(f"{EMEA}/qollect/dataset/clone/connection/{source['connectionId']}", json=body))
    return source


async def test_world_round_trips_through_json(client, emulator):
    await populate(client)
    world = emulator.world
    assert World.from_json(json.loads(json.dumps(world.to_json()))) == world


async def test_saved_file_is_the_world_as_plain_json(client, emulator, tmp_path):
    await populate(client)
    path = tmp_path / "world.json"
    emulator.save(path)
    text = path.read_text()
    assert text == json.dumps(emulator.world.to_json()) + "\n"
    assert World.from_json(json.loads(text)) == World.load(path) == emulator.world


async def test_a_loaded_world_answers_with_the_saved_datasets_and_checks_the_owner(client, emulator, tmp_path):
    source = await populate(client)
    path = tmp_path / "world.json"
    emulator.save(path)
    view_id = next(dataset_id for dataset_id in emulator.world.datasets if dataset_id != source["datasetId"])
    restarted = create_app(EmulatorConfig(data_file=path))
    async with make_client(restarted) as again:
        assert ok(await again.get(f"{EMEA}/qollect/dataset/{view_id}")) == emulator.world.datasets[view_id]
        error_message(await again.get(f"{SALES}/qollect/dataset/{view_id}"), 404)   # another app's: not found
    assert restarted.state.emulator.world.datasets == emulator.world.datasets


def test_a_hand_edited_file_loads_and_a_broken_one_is_named(tmp_path):
    world = World(datasets={"d1": {"datasetId": "d1", "name": "x", "columns": []}}, dataset_order={"d1": 1})
    path = tmp_path / "world.json"
    path.write_text(json.dumps(world.to_json(), indent=4))     # laid out another way, keys unsorted
    assert World.load(path) == world
    world.save(path)
    path.write_text(path.read_text().replace('"name": "x"', '"name": "x",,'))
    with pytest.raises(ValueError, match=r"world.json: not a valid emulator data file"):
        World.load(path)


async def test_a_restarted_emulator_serves_the_saved_world(tmp_path):
    path = tmp_path / "world.json"
    app = create_app(EmulatorConfig(data_file=path))
    async with make_client(app) as client:
        source = await populate(client)
        listed = ok(await client.post(f"{SALES}/qollect/dataset/all"))
    assert not path.exists()                  # in-process, only Emulator.save writes
    app.state.emulator.save()
    restarted = create_app(EmulatorConfig(data_file=path))
    async with make_client(restarted) as client:
        assert ok(await client.post(f"{SALES}/qollect/dataset/all")) == listed
        # the load started before the restart carries on
        statuses = [ok(await client.get(f"{SALES}/qollect/dataset/{source['datasetId']}"))["status"] for _ in range(3)]
        assert statuses == ["LOADING", "LOADING", "LOADED"]
        # ids minted after a restart with the same seed never collide with stored ones
        again = await create_dataset(client)
        assert again["datasetId"] != source["datasetId"] and again["connectionId"] != source["connectionId"]
        used = {source["datasetId"], source["connectionId"], *(col["columnId"] for col in source["columns"])}
        assert not {again["datasetId"], again["connectionId"], *(col["columnId"] for col in again["columns"])} & used


async def test_in_process_nothing_is_written_until_save(tmp_path):
    path = tmp_path / "state" / "world.json"
    app = create_app(EmulatorConfig(data_file=path))
    async with make_client(app) as client:
        created = await create_dataset(client)
    assert not path.exists() and app.state.emulator.unsaved()
    app.state.emulator.save()
    assert created["datasetId"] in json.loads(path.read_text())["datasets"]
    assert not app.state.emulator.unsaved() and app.state.emulator.saves == 1


def test_save_without_a_path_is_an_error():
    with pytest.raises(ValueError, match="data_file"):
        create_app().state.emulator.save()


def test_save_is_atomic_when_the_rename_fails(tmp_path, monkeypatch):
    path = tmp_path / "world.json"
    World().save(path)
    before = path.read_text()
    bigger = World(datasets={"d": {"datasetId": "d", "name": "x"}})

    def failing_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        bigger.save(path)
    assert path.read_text() == before
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["world.json"]  # no temp file left


def test_save_writes_through_a_temp_file_then_renames(tmp_path, monkeypatch):
    path = tmp_path / "world.json"
    calls = []
    real_replace, real_fsync = os.replace, os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(
        os, "replace", lambda src, dst: (calls.append(("replace", src, dst)), real_replace(src, dst))[1]
    )
    World().save(path)
    replace = next(call for call in calls if call[0] == "replace")
    assert calls.index("fsync") < calls.index(replace)
    assert os.path.dirname(replace[1]) == str(tmp_path) and replace[2] == path


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"datasets": []}',
        '{"datasets": {"x": 1}}',
        '{"format": "other"}',
        '{"datasetOrder": {"x": "1"}}',
        '{"loads": {"x": {"pollsLeft": "2"}}}',
        "\udcff",
        '{"datasets": {"x": {"datasetId": "x", "ratio": NaN}}}',     # no JSON: answers could not carry it
        '{"datasets": {"x": {"datasetId": "x", "size": Infinity}}}',
    ],
)
def test_loading_a_corrupt_file_names_the_file(tmp_path, content):
    path = tmp_path / "broken.json"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(ValueError, match="broken.json"):
        World.load(path)
    with pytest.raises(ValueError, match="broken.json"):
        create_app(EmulatorConfig(data_file=path))
