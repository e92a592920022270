"""World persistence: JSON round trip, atomic save, autosave modes, corrupt files."""

from __future__ import annotations

import json
import os
import zlib

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


async def test_saved_file_is_sorted_two_space_json_with_one_dataset_per_line(client, emulator, tmp_path):
    source = await populate(client)
    path = tmp_path / "world.json"
    emulator.save(path)
    text = path.read_text()
    assert text.endswith("}\n")
    data = json.loads(text)
    checksum = data.pop("datasetLinesCrc32")
    assert data == json.loads(json.dumps(emulator.world.to_json()))
    lines = text.splitlines()
    dataset_lines = [line for line in lines if line.startswith('    "') and line.rstrip(",").endswith("}")]
    assert [json.loads("{" + line.rstrip(",") + "}") for line in dataset_lines] == [{k: v} for k, v in data["datasets"].items()]
    assert source["datasetId"] in data["datasets"] and len(dataset_lines) == len(data["datasets"]) == 2
    assert checksum == zlib.crc32("\n".join(dataset_lines).encode())
    for line in dataset_lines:       # each dataset's own keys sorted, compact
        dataset_text = line.split(": ", 1)[1].rstrip(",")
        assert dataset_text == json.dumps(json.loads(dataset_text), sort_keys=True, separators=(",", ":"))
    rest = (json.dumps({**data, "datasets": {}, "datasetLinesCrc32": checksum}, indent=2, sort_keys=True) + "\n").splitlines()
    at = rest.index('  "datasets": {},')
    assert [line for line in lines if line not in dataset_lines] == [*rest[:at], '  "datasets": {', "  },", *rest[at + 1:]]


async def test_a_loaded_world_answers_gets_from_the_stored_text_and_keeps_none_decoded(client, emulator, tmp_path):
    source = await populate(client)
    path = tmp_path / "world.json"
    emulator.save(path)
    loaded = World.load(path)
    assert loaded.datasets.stored_count() == 2
    view_id = next(dataset_id for dataset_id in loaded.datasets if dataset_id != source["datasetId"])
    restarted = create_app(EmulatorConfig(data_file=path))
    async with make_client(restarted) as again:
        world = restarted.state.emulator.world
        assert ok(await again.get(f"{EMEA}/qollect/dataset/{view_id}")) == emulator.world.datasets[view_id]
        assert world.datasets.stored_count() == 2        # the GET decoded nothing for good
        error_message(await again.get(f"{SALES}/qollect/dataset/{view_id}"), 404)   # the owner is still checked
        ok(await again.get(f"{SALES}/qollect/dataset/{source['datasetId']}"))     # its load moves: kept decoded
        assert world.datasets.stored_count() == 1
        assert world.datasets == emulator.world.datasets and world.datasets.stored_count() == 0


def test_a_file_laid_out_another_way_loads_whole(tmp_path):
    world = World(datasets={"d1": {"datasetId": "d1", "name": "x", "columns": []}}, dataset_order={"d1": 1})
    path = tmp_path / "world.json"
    path.write_text(json.dumps(world.to_json(), indent=2, sort_keys=True))     # one key per line, as edited by hand
    loaded = World.load(path)
    assert loaded == world and loaded.datasets.stored_count() == 0
    world.save(path)
    assert World.load(path).datasets.stored_count() == 1 and World.load(path) == world


def test_a_hand_edited_file_is_decoded_and_checked_whole(tmp_path):
    path = tmp_path / "world.json"
    World(datasets={"d1": {"datasetId": "d1"}, "d2": {"datasetId": "d2"}}).save(path)
    saved = path.read_text()
    # still valid JSON, but not as save wrote it: two datasets on one line
    path.write_text(saved.replace('{"datasetId":"d1"},\n    "d2"', '{"datasetId":"d1"}, "d2"'))
    loaded = World.load(path)
    assert dict(loaded.datasets) == {"d1": {"datasetId": "d1"}, "d2": {"datasetId": "d2"}}
    assert loaded.datasets.stored_count() == 0
    path.write_text(saved.replace('{"datasetId":"d2"}', '{"datasetId":"d2",}'))     # broken: named at load
    with pytest.raises(ValueError, match=r"world.json: not a valid emulator data file"):
        World.load(path)
    path.write_text(saved)
    assert World.load(path).datasets.stored_count() == 2                         # as written: kept as text


async def test_a_restarted_emulator_serves_the_saved_world(tmp_path):
    path = tmp_path / "world.json"
    async with make_client(create_app(EmulatorConfig(data_file=path))) as client:
        source = await populate(client)
        listed = ok(await client.post(f"{SALES}/qollect/dataset/all"))
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


async def test_autosave_writes_after_every_change(tmp_path):
    path = tmp_path / "world.json"
    app = create_app(EmulatorConfig(data_file=path))
    async with make_client(app) as client:
        created = await create_dataset(client)
        assert created["datasetId"] in json.loads(path.read_text())["datasets"]
        ok(await client.delete(f"{SALES}/qollect/dataset/{created['datasetId']}"))
        assert json.loads(path.read_text())["datasets"] == {}


async def test_reads_and_rejected_writes_do_not_save(tmp_path):
    path = tmp_path / "world.json"
    async with make_client(create_app(EmulatorConfig(data_file=path))) as client:
        ok(await client.post(f"{SALES}/qollect/dataset/all"))
        error_message(await client.post(f"{SALES}/qollect/dataset", json={}), 400)
    assert not path.exists()


async def test_without_autosave_nothing_is_written_until_save(tmp_path):
    path = tmp_path / "state" / "world.json"
    app = create_app(EmulatorConfig(data_file=path, autosave=False))
    async with make_client(app) as client:
        created = await create_dataset(client)
    assert not path.exists()
    app.state.emulator.save()
    assert created["datasetId"] in json.loads(path.read_text())["datasets"]


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
    ],
)
def test_loading_a_corrupt_file_names_the_file(tmp_path, content):
    path = tmp_path / "broken.json"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(ValueError, match="broken.json"):
        World.load(path)
    with pytest.raises(ValueError, match="broken.json"):
        create_app(EmulatorConfig(data_file=path))
