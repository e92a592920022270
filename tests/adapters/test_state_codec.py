"""The state codec: the format's history (one upgrader per version), and the text it writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from qrvey_iac.adapters.state.codec import UPGRADERS, decode, dump_json, encode
from qrvey_iac.cli import cli
from qrvey_iac.core.errors import StateError
from qrvey_iac.core.state import STATE_VERSION, JournalDetail, JournalEntry, ResourceState, State, StateOwner

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
V1 = FIXTURES / "state-v1-d8bcedc.json"      # written by the release before format 2 (see its README)
V2 = FIXTURES / "state-v2-11e0275.json"      # written by the release before format 3
V3 = FIXTURES / "state-v3-0547722.json"      # written by the release before format 4
V4 = FIXTURES / "state-v4-ab11e30.json"      # written by the release before format 5


def without_applied_fields(written: dict) -> dict:
    """A state as written, less what format 5 added (empty ``applied_fields`` everywhere):
    older files compare equal to it field for field."""
    resources = {a: {k: v for k, v in r.items() if k != "applied_fields"} for a, r in written["resources"].items()}
    journal = [{**e, "detail": {k: v for k, v in e["detail"].items() if k != "applied_fields"}}
               for e in written["journal"]]
    return {**written, "resources": resources, "journal": journal}


def v1() -> dict:
    return json.loads(V1.read_text())


def test_a_state_written_by_the_previous_release_loads_with_its_journal_typed():
    state = decode(V1.read_text(), "state file old.json")
    assert state.version == STATE_VERSION == 5
    assert (state.lineage, state.serial) == (v1()["lineage"], v1()["serial"])
    assert state.resources["dataset.orders"].kind == "Dataset"
    assert state.resources["view.orders-emea"].source["address"] == "dataset.orders"
    create, update = state.journal
    assert isinstance(create.detail, JournalDetail)
    assert (create.op, create.address, create.datasetId) == ("create", "view.orders-latam", None)
    assert create.detail.kind == "DatasetView"
    assert create.detail.connectionId == v1()["journal"][0]["detail"]["connectionId"]
    assert create.detail.marker == {"qrveyIacAddress": "view.orders-latam"}
    assert create.detail.source["address"] == "dataset.orders"
    assert (update.op, update.detail.kind, update.detail.previous_hash) == (
        "update", "Dataset", v1()["journal"][1]["detail"]["previous_hash"])
    assert update.detail.managed == v1()["journal"][1]["detail"]["managed"]


def test_the_converted_state_is_written_as_the_current_format_and_reads_back_the_same():
    state = decode(v1(), "old")
    text = encode(state)
    written = json.loads(text)
    assert written["version"] == STATE_VERSION
    assert written["journal"][0]["detail"]["connectionId"] == v1()["journal"][0]["detail"]["connectionId"]
    assert decode(text, "new") == state
    assert without_applied_fields(written)["resources"] == v1()["resources"]   # format 2 changed the journal only


def test_a_state_written_by_the_release_before_format_3_loads_unchanged():
    """Format 3 changed no field: only its number, so that format 2 readers, which do not
    know the sidecar, refuse a file that may have one."""
    old = json.loads(V2.read_text())
    state = decode(V2.read_text(), "state file old.json")
    assert (old["version"], state.version) == (2, STATE_VERSION)
    assert {**without_applied_fields(json.loads(encode(state))), "version": 2, "owner": None} == {**old, "owner": None}
    assert [(e.op, e.address) for e in state.journal] == [("create", "view.orders-latam"), ("update", "dataset.products")]


def test_a_state_written_by_the_release_before_format_4_loads_with_no_owner_recorded():
    """Format 4 records the environment and endpoint a state was made for; a format-3 file
    names none, so it is read as unowned (the first write records the writer's)."""
    old = json.loads(V3.read_text())
    state = decode(V3.read_text(), "state file old.json")
    assert (old["version"], state.version, state.owner) == (3, STATE_VERSION, None)
    assert "owner" not in old
    assert (state.lineage, state.serial) == (old["lineage"], old["serial"])
    written = without_applied_fields(json.loads(encode(state)))
    assert written == {**old, "version": STATE_VERSION, "owner": None}
    assert [(e.op, e.address) for e in state.journal] == [("create", "view.orders-latam"), ("update", "dataset.products")]


def test_a_state_written_by_the_release_before_format_5_loads_with_no_field_digests():
    """Format 5 may record per-field digests of what was applied (``applied_fields``); a
    format-4 file has none, so drift is decided per resource until its next apply."""
    old = json.loads(V4.read_text())
    state = decode(V4.read_text(), "state file old.json")
    assert (old["version"], state.version) == (4, 5)
    assert state.owner is not None and state.owner.environment == old["owner"]["environment"]
    assert all(r.applied_fields == {} for r in state.resources.values())
    assert all(e.detail.applied_fields is None for e in state.journal)
    written = json.loads(encode(state))
    assert without_applied_fields(written) == {**old, "version": 5}
    assert decode(encode(state), "again") == state


def test_the_owner_is_written_and_read_back():
    state = State(owner=StateOwner(environment="prod", endpoint="https://x.qrveyapp.com"))
    written = json.loads(encode(state))
    assert written["owner"] == {"environment": "prod", "endpoint": "https://x.qrveyapp.com"}
    assert decode(written, "s") == state
    with pytest.raises(StateError, match=r"^s is invalid at owner\.environment"):
        decode({**written, "owner": {"environment": "", "endpoint": "embedded"}}, "s")


def test_a_v1_detail_without_kind_meant_a_dataset_and_keys_nobody_read_are_dropped():
    old = v1()
    old["journal"] = [{"id": "j", "op": "delete", "address": "dataset.x", "datasetId": "d", "appId": "a",
                       "userId": "u", "detail": {"note": "never read"}}]
    (entry,) = decode(old, "old").journal
    assert entry.detail == JournalDetail(kind="Dataset")


def test_a_v1_file_without_a_version_is_version_1():
    old = v1()
    del old["version"]
    assert decode(old, "old").journal[0].detail.kind == "DatasetView"


def test_a_newer_format_is_refused():
    newer = {**json.loads(encode(State())), "version": STATE_VERSION + 1, "someday": {"x": 1}}
    with pytest.raises(StateError) as caught:
        decode(newer, "state file s.json")
    assert str(caught.value) == (f"state file s.json has format version {STATE_VERSION + 1}; this qrvey-iac "
                                 f"reads up to {STATE_VERSION}: upgrade qrvey-iac")


@pytest.mark.parametrize("version", [0, -1, "2", True, None])
def test_a_version_that_is_not_one_is_invalid(version):
    with pytest.raises(StateError, match=r"^s is invalid at version: not a format version"):
        decode({"version": version}, "s")


def test_every_older_version_has_exactly_one_upgrader():
    assert sorted(UPGRADERS) == list(range(1, STATE_VERSION))


def test_a_current_detail_is_strict():
    state = json.loads(encode(State(journal=(JournalEntry(id="j", op="create", address="dataset.x", appId="a",
                                                          userId="u", detail=JournalDetail(kind="Dataset")),))))
    state["journal"][0]["detail"]["conectionId"] = "typo"
    with pytest.raises(StateError, match=r"^s is invalid at journal\.0\.detail\.conectionId: Extra inputs"):
        decode(state, "s")


@pytest.mark.parametrize("text", ["", "{", "[1]", '"x"', "[" * 100_000])
def test_text_that_is_not_a_state_is_a_state_error(text):
    with pytest.raises(StateError, match=r"^s is (unreadable|invalid)"):
        decode(text, "s")


def test_the_text_is_the_plain_sorted_dump():
    view = ResourceState(kind="DatasetView", datasetId="v", appId="a", userId="u",
                         source={"address": "dataset.o", "datasetId": "o", "appId": "a", "userId": "u"})
    state = State(serial=3, resources={"view.é": view, "dataset.a": ResourceState(
        kind="Dataset", datasetId="d", appId="a", userId="u", protect=True)})
    text = encode(state)
    assert text == json.dumps(state.model_dump(mode="json"), indent=2, sort_keys=True) + "\n" == dump_json(
        state.model_dump(mode="json"))
    assert list(json.loads(text)["resources"]) == ["dataset.a", "view.é"]


def test_the_cli_upgrades_an_old_state_file_on_its_first_write_and_keeps_the_old_one_as_backup(example_dir):
    state = example_dir / "state" / "local.json"
    state.parent.mkdir()
    shutil.copy(V1, state)
    listed = CliRunner().invoke(cli, ["state", "list"])
    assert listed.exit_code == 0, listed.output
    assert "pending: create view.orders-latam in app a-apac (dataset not known yet" in listed.stderr
    assert state.read_bytes() == V1.read_bytes()                      # reading writes nothing
    planned = CliRunner().invoke(cli, ["plan"])                       # settles the journal: a write
    assert planned.exit_code == 0, planned.output
    assert planned.stderr.count("note: state file state/local.json recorded no environment") == 1
    written = json.loads(state.read_text())
    assert (written["version"], written["lineage"], written["journal"]) == (STATE_VERSION, v1()["lineage"], [])
    assert written["owner"] == {"environment": "local", "endpoint": "embedded"}
    assert written["serial"] == v1()["serial"] + 1
    assert state.with_name("local.json.backup").read_bytes() == V1.read_bytes()
