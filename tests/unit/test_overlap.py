"""Reading the manifests while the refresh waits on Qrvey (issue 6), and what that must not change."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from qrvey_iac.adapters.manifest_files import load_manifest, load_manifest_async
from qrvey_iac.adapters.state.local import LocalStateStore
from qrvey_iac.adapters.state.lock import LocalLocker
from qrvey_iac.cli import cli
from qrvey_iac.core.kinds.dataset import DATASET as DATASET_KIND
from qrvey_iac.core.errors import ManifestError, TransportError
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.manifest import Manifest
from qrvey_iac.core.plan import fingerprint
from qrvey_iac.core.state import ResourceState, State
from qrvey_iac.engine import Engine

pytestmark = pytest.mark.anyio
APPS = {"sales": AppRef("u-1", "a-sales"), "hq": AppRef("u-1", "a-hq")}
DATASET = """\
apiVersion: qrvey-iac/v1
kind: Dataset
metadata: {{name: ds-{i}}}
spec:
  app: sales
  name: Dataset {i}
  datasources: [{{name: main, connectionId: conn-1, connectorType: MSSQL_LIVE, tableName: t{i}}}]
  columns: [{{columnName: id, columnType: NUMBER}}, {{columnName: label, columnType: STRING}}]
"""


def write_manifests(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "all.yaml").write_text("---\n".join(DATASET.format(i=i) for i in range(count)))
    return folder


class FakeQrvey:
    """Answers every read after ``delay`` seconds; records what was read and when."""

    def __init__(self, delay: float = 0.0, error: Exception | None = None) -> None:
        self.delay = delay
        self.error = error
        self.started: list[str] = []
        self.finished: list[str] = []

    async def read(self, app: AppRef, dataset_id: str):
        self.started.append(dataset_id)
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        self.finished.append(dataset_id)
        return answer(dataset_id)


def answer(dataset_id: str) -> dict:
    return {"datasetId": dataset_id, "name": f"Dataset {dataset_id}", "status": "LOADED",
            "columns": [{"columnName": "Total", "columnType": "NUMBER", "columnId": f"c-{dataset_id}"}]}


def state_of(count: int) -> State:
    return State(resources={
        f"dataset.ds-{i}": ResourceState(kind="Dataset", datasetId=f"id-{i}", userId="u-1", appId="a-sales")
        for i in range(count)
    })


async def test_the_async_loader_reads_the_same_manifest_and_lets_other_work_run(tmp_path):
    folder = write_manifests(tmp_path / "manifests", 60)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    beside = asyncio.ensure_future(ticker())
    loaded = await load_manifest_async(folder, APPS, {}, {})
    beside.cancel()
    assert loaded == load_manifest(folder, APPS, {}, {})
    assert len(loaded.resources) == 60
    assert ticks >= 60          # the other task ran between the documents, not only before or after


async def test_the_async_loader_reports_the_same_problems(tmp_path):
    folder = write_manifests(tmp_path / "manifests", 3)
    (folder / "bad.yaml").write_text("kind: Dataset\nmetadata: {name: x}\nspec:\n  app: nowhere\n  nme: typo\n")
    with pytest.raises(ManifestError) as sync_error:
        load_manifest(folder, APPS, {}, {})
    with pytest.raises(ManifestError) as async_error:
        await load_manifest_async(folder, APPS, {}, {})
    assert [str(p) for p in async_error.value.problems] == [str(p) for p in sync_error.value.problems]
    assert async_error.value.problems


async def test_refresh_sends_the_reads_before_the_manifest_is_read(tmp_path):
    qrvey = FakeQrvey(delay=0.01)
    engine = Engine(qrvey, store=None)
    seen_when_loading: list[int] = []

    async def loading() -> Manifest:
        await asyncio.sleep(0)
        seen_when_loading.append(len(qrvey.started))
        return Manifest()

    manifest, live = await engine.refresh_while(state_of(5), loading())
    assert seen_when_loading == [5]                    # every read was in flight before the manifest came
    assert manifest == Manifest()
    # the part plans compare is kept, the fingerprint is of the whole answer
    assert live.objects == {f"dataset.ds-{i}": DATASET_KIND.compared_part(answer(f"id-{i}")) for i in range(5)}
    # the status too: plans show it and decide loads from it (issue 16 point 2)
    assert live.objects["dataset.ds-0"] == {"name": "Dataset id-0", "status": "LOADED",
                                            "columns": [{"columnName": "Total", "columnType": "NUMBER"}]}
    assert live.fingerprints == {f"dataset.ds-{i}": fingerprint(answer(f"id-{i}")) for i in range(5)}


async def test_a_manifest_error_cancels_the_reads_and_is_the_error_reported():
    qrvey = FakeQrvey(delay=5.0)
    engine = Engine(qrvey, store=None)

    async def loading() -> Manifest:
        await asyncio.sleep(0)
        raise ManifestError([])

    with pytest.raises(ManifestError):
        await engine.refresh_while(state_of(3), loading())
    assert len(qrvey.started) == 3 and qrvey.finished == []      # cancelled, not waited for


async def test_a_manifest_error_wins_over_a_read_that_already_failed():
    qrvey = FakeQrvey(error=TransportError("GET", "/x", "ConnectError: refused"))
    engine = Engine(qrvey, store=None)

    async def loading() -> Manifest:
        for _ in range(5):
            await asyncio.sleep(0)       # the reads fail meanwhile
        raise ManifestError([])

    with pytest.raises(ManifestError):
        await engine.refresh_while(state_of(2), loading())


def test_the_lock_leaves_no_folder_it_created_unless_something_was_saved(tmp_path):
    store = LocalStateStore(tmp_path / "a" / "b" / "local.json")
    locker = LocalLocker(tmp_path / "a" / "b" / "local.json")
    with locker.lock("plan"):
        assert (tmp_path / "a" / "b" / "local.json.lock").exists()
    assert not (tmp_path / "a").exists()
    with locker.lock("apply"):
        store.write(State(serial=1), 0)
    assert store.exists() and not (tmp_path / "a" / "b" / "local.json.lock").exists()


def test_invalid_manifests_are_reported_before_an_unreachable_endpoint(example_dir):
    """The reads go out before the manifests are parsed; their connection errors must not
    hide the user's mistake (and the plan must not wait out their retries)."""
    assert CliRunner().invoke(cli, ["apply", "--auto-approve"]).exit_code == 0      # the state names objects
    with socket.socket() as probe:                 # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = example_dir / "qrvey-iac.yaml"
    config.write_text(config.read_text().replace("endpoint: local", f"endpoint: http://127.0.0.1:{port}", 1)
                      .replace("apps:", "apiKeyEnv: QRVEY_TEST_KEY\n    apps:", 1))
    (example_dir / "manifests" / "broken.yaml").write_text(
        "apiVersion: qrvey-iac/v1\nkind: Dataset\nmetadata: {name: b}\nspec: {app: sales, nme: x}\n")
    claimed = CliRunner().invoke(cli, ["state", "claim"], env={"QRVEY_TEST_KEY": "k"})   # the endpoint moved on purpose
    assert claimed.exit_code == 0, claimed.output
    result = CliRunner().invoke(cli, ["plan"], env={"QRVEY_TEST_KEY": "k"})
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: manifests/broken.yaml:4: spec"), result.stderr
    assert "Connect" not in result.stderr and "127.0.0.1" not in result.stderr


def test_placeholders_are_replaced_wherever_they_are_and_nothing_else_is_touched(tmp_path, monkeypatch):
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "one.yaml").write_text(DATASET.format(i=1).replace("conn-1", "'${var.conn}'").replace(
        "columnName: label", "columnName: '${var.prefix}_label'"))
    (folder / "aliased.yaml").write_text(
        DATASET.format(i=2).replace("conn-1", "'${env:QI_CONN}'").replace(
            "{columnName: label, columnType: STRING}",
            "{columnName: label, columnType: &t STRING}, {columnName: other, columnType: *t}"))
    monkeypatch.setenv("QI_CONN", "conn-from-env")
    loaded = load_manifest(folder, APPS, {"conn": "conn-7", "prefix": "p"}, dict(os.environ))
    one, two = loaded.resources["dataset.ds-1"], loaded.resources["dataset.ds-2"]
    assert one.spec.datasources[0].connectionId == "conn-7"
    assert [c.columnName for c in one.spec.columns] == ["id", "p_label"]
    assert two.spec.datasources[0].connectionId == "conn-from-env"    # read by the walk (an alias)
    assert [c.columnType for c in two.spec.columns] == ["NUMBER", "STRING", "STRING"]
    assert "conn-from-env" in loaded.secrets
