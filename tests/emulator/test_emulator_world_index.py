"""World lookups by view source and by connectionId: indexed, so they must always agree
with a scan of every dataset, whatever way the datasets came and went."""

from __future__ import annotations

import random

from qrvey_iac.emulator import World


def scanned_views(world: World, source_id: str) -> list[str]:
    views = [d for d in world.datasets.values() if (d.get("sourceDataset") or {}).get("datasetId") == source_id]
    return sorted((d["datasetId"] for d in views), key=lambda i: (world.dataset_order.get(i, 10**9), i))


def scanned_connection(world: World, connection_id: str) -> list[str]:
    found = [d["datasetId"] for d in world.datasets.values() if d.get("connectionId") == connection_id]
    return sorted(found, key=lambda i: (world.dataset_order.get(i, 10**9), i))


def dataset(dataset_id: str, connection_id: str, source_id: str | None = None) -> dict:
    body = {"datasetId": dataset_id, "connectionId": connection_id, "name": dataset_id}
    if source_id is not None:
        body["sourceDataset"] = {"datasetId": source_id}
    return body


def check(world: World, ids: list[str], connections: list[str]) -> None:
    for source_id in ids:
        assert [v["datasetId"] for v in world.views_of(source_id)] == scanned_views(world, source_id)
    for connection_id in connections:
        assert [d["datasetId"] for d in world.with_connection(connection_id)] == scanned_connection(world, connection_id)


def test_lookups_agree_with_a_scan_through_puts_sets_deletes_and_reloads(tmp_path):
    rng = random.Random(7)
    ids = [f"d{i}" for i in range(12)]
    connections = [f"c{i}" for i in range(5)]
    world = World()
    for step in range(400):
        dataset_id = rng.choice(ids)
        present = sorted(world.datasets)
        action = rng.choice(["put", "set", "delete", "remove", "reload", "check"])
        source = rng.choice([None, *ids])
        body = dataset(dataset_id, rng.choice(connections), source)
        if action == "put":
            world.put_dataset(body)
        elif action == "set":                       # as a test would, past put_dataset
            world.datasets[dataset_id] = body
        elif action == "delete" and present:
            del world.datasets[rng.choice(present)]
        elif action == "remove" and present:
            world.remove_dataset(rng.choice(present))
        elif action == "reload":                    # the lookups are rebuilt from the file
            world.save(tmp_path / "world.json")
            world = World.load(tmp_path / "world.json")
        check(world, ids, connections)


def test_a_share_reaches_every_view_of_its_source_and_no_other():
    world = World()
    world.put_dataset(dataset("src", "c-src"))
    world.put_dataset(dataset("other", "c-other"))
    world.put_dataset(dataset("v1", "c-v1", "src"))
    world.put_dataset(dataset("v2", "c-v2", "other"))
    world.datasets["v3"] = dataset("v3", "c-v3", "src")
    assert [v["datasetId"] for v in world.views_of("src")] == ["v1", "v3"]
    world.remove_dataset("v1")
    world.datasets["v3"] = dataset("v3", "c-v3", "other")        # replaced: moved to the other source
    assert world.views_of("src") == [] and [v["datasetId"] for v in world.views_of("other")] == ["v2", "v3"]
    assert [d["datasetId"] for d in world.with_connection("c-other")] == ["other"]


def test_a_restarted_world_never_mints_the_id_of_a_dataset_deleted_before_its_first_mint(tmp_path):
    from qrvey_iac.emulator.ids import IdMinter

    world = World()
    first = IdMinter(seed=3).short_id(world.taken_ids())
    world.put_dataset(dataset(first, "c1"))
    world.save(tmp_path / "world.json")
    again = World.load(tmp_path / "world.json")
    again.remove_dataset(first)                    # before anything was minted after the restart
    assert IdMinter(seed=3).short_id(again.taken_ids()) != first     # same seed, same sequence


def test_a_column_removed_by_an_update_keeps_its_id_taken(tmp_path):
    from qrvey_iac.emulator.ids import IdMinter

    world = World()
    column_id = IdMinter(seed=5).short_id(world.taken_ids())
    world.put_dataset({**dataset("d1", "c1"), "columns": [{"columnId": column_id}]})
    world.save(tmp_path / "world.json")
    again = World.load(tmp_path / "world.json")
    again.put_dataset({**dataset("d1", "c1"), "columns": []})       # an update without that column
    assert IdMinter(seed=5).short_id(again.taken_ids()) != column_id
