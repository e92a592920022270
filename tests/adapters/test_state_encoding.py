"""The state file's text does not depend on how it was encoded (StateEncoder's cache)."""

import json

from qrvey_iac.adapters.state_store import LocalStateStore, StateEncoder, dump_json
from qrvey_iac.core.state import JournalEntry, ResourceState, State


def make_resource(index: int, kind: str = "Dataset", **extra) -> ResourceState:
    return ResourceState(kind=kind, datasetId=f"id-{index}", appId="a-sales", userId="u-sales",
                         connectionId=f"c-{index}", applied_hash=f"h{index}", **extra)


def plain(state: State) -> str:
    return dump_json(state.model_dump(mode="json"))


def test_the_text_is_byte_for_byte_what_json_dumps_writes():
    view = make_resource(9, "DatasetView", source={"address": "dataset.orders", "datasetId": "id-1",
                                                   "appId": "a-sales", "userId": "u-sales"})
    state = State(serial=3, resources={"dataset.orders": make_resource(1, shared=True),
                                       "view.orders-émea": view, "dataset.a": make_resource(2, protect=True)},
                  journal=(JournalEntry(id="j1", op="create", address="dataset.b", appId="a", userId="u",
                                        detail={"kind": "Dataset", "note": "\x00resources\x00 ünïcode"}),))
    assert StateEncoder().encode(state) == plain(state)
    assert StateEncoder().encode(State(lineage="l")) == plain(State(lineage="l"))


def test_kept_texts_follow_every_change_between_saves():
    encoder = StateEncoder()
    state = State(resources={f"dataset.d{i}": make_resource(i) for i in range(5)})
    assert encoder.encode(state) == plain(state)
    changed = state.with_resource("dataset.d2", make_resource(2, shared=True))
    changed = changed.with_resource("dataset.new", make_resource(7)).without_resource("dataset.d0")
    assert encoder.encode(changed) == plain(changed)
    assert encoder.encode(state) == plain(state)        # an older state again: no stale text
    assert json.loads(encoder.encode(changed))["resources"]["dataset.d2"]["shared"] is True


def test_the_store_writes_the_same_text(tmp_path):
    store = LocalStateStore(tmp_path / "s.json")
    state = State(resources={"dataset.x": make_resource(1)})
    store.save(state)
    store.save(state.with_resource("dataset.y", make_resource(2)))
    assert (tmp_path / "s.json").read_text() == plain(state.with_resource("dataset.y", make_resource(2)))
    assert store.load().resources["dataset.y"].datasetId == "id-2"


def test_any_sequence_of_changes_encodes_like_the_plain_dump():
    import random

    rng = random.Random(6)
    encoder = StateEncoder()
    state = State()
    for step in range(300):
        address = f"dataset.d{rng.randrange(12)}"
        roll = rng.random()
        if roll < 0.5:
            state = state.with_resource(address, make_resource(step, shared=rng.random() < 0.5))
        elif roll < 0.7 and address in state.resources:
            state = state.without_resource(address)
        elif roll < 0.85 and state.resources:   # the same object under a second address (state mv)
            state = state.with_resource(address, rng.choice(list(state.resources.values())))
        else:
            state = state.bumped()
        assert encoder.encode(state) == plain(state), step


def test_additions_in_batches_land_in_sorted_place():
    """An apply's saves add a few new addresses each (kept texts are moved, not rebuilt)."""
    import random

    rng = random.Random(11)
    encoder = StateEncoder()
    state = State()
    for step in range(60):
        batch = {f"{rng.choice(['dataset', 'view'])}.n{rng.randrange(500)}": make_resource(step) for _ in range(rng.randrange(1, 6))}
        state = state.model_copy(update={"resources": {**state.resources, **batch}})
        if step % 15 == 14:
            state = state.without_resource(rng.choice(sorted(state.resources)))
        assert encoder.encode(state) == plain(state), step
