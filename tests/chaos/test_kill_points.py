"""Deterministic kills between "create sent" and "id recorded": each converges, no duplicate.

Real processes: the emulator serves with a fault that holds the answer of one call, and
``qrvey-iac apply`` is SIGKILLed while it waits. The journal entry written before the call
is what the next run settles from.
"""

from __future__ import annotations

import time

from chaos_harness import Emulator, Project, check_invariants, wait_for

from qrvey_iac.adapters.state.local import LocalStateStore
from qrvey_iac.core.kinds.base import OWNER_ATTRIBUTE

DATASET = """\
apiVersion: qrvey-iac/v1
kind: Dataset
metadata: {name: solo}
spec:
  app: sales
  name: Solo
  shared: true
  datasources:
    - {name: Solo, connectionId: conn-1, connectorType: MSSQL_LIVE, tableName: solo}
  columns:
    - {columnName: Id, columnType: NUMBER}
"""
VIEW = """\
---
apiVersion: qrvey-iac/v1
kind: DatasetView
metadata: {name: solo-emea}
spec:
  app: emea
  source: dataset.solo
  name: Solo (EMEA)
"""



def state_of(project: Project):
    return LocalStateStore(project.state_path).read()


def journaled(project: Project, address: str):
    if not project.state_path.exists():
        return None
    return next((e for e in state_of(project).journal if e.address == address and e.op == "create"), None)


def with_marker(emulator: Emulator, address: str) -> list[dict]:
    return [d for d in emulator.datasets().values() if d.get("customAttributes", {}).get(OWNER_ATTRIBUTE) == address]


def kill_then_rerun(project: Project, process) -> str:
    """SIGKILL the apply; the rerun gets the lock its holder died with (no unlock) and converges."""
    process.kill()
    process.wait()
    time.sleep(0.1)
    findings = check_invariants(project)
    assert findings.ok, findings
    assert project.lock_holder() is None            # the OS released the dead holder's lock
    rerun = project.run("apply", "--auto-approve")
    assert rerun.code == 0, rerun.stderr
    assert check_invariants(project).ok
    plan = project.run("plan", "--detailed-exitcode")
    assert plan.code == 0, plan.stdout
    assert state_of(project).journal == ()
    return rerun.stderr


def test_kill_while_the_create_request_is_held_by_the_server(tmp_path):
    with Emulator(tmp_path / "world.json", "POST /qollect/dataset: latency=2s@first=1") as emulator:
        project = Project(tmp_path / "project", emulator, examples=False)
        project.write_manifest("solo.yaml", DATASET)
        process = project.start("apply", "--auto-approve")
        entry = wait_for(lambda: journaled(project, "dataset.solo"))   # journaled, then sent
        time.sleep(0.3)                                               # the server holds it
        assert "dataset.solo" not in state_of(project).resources     # no id recorded yet
        process.kill()
        time.sleep(2.0)   # the held request ends on the server, whatever it does
        rerun = kill_then_rerun(project, process)
        assert [d["datasetId"] for d in with_marker(emulator, "dataset.solo")] == [entry.datasetId]
        assert state_of(project).resources["dataset.solo"].datasetId == entry.datasetId
        assert ("did not land" in rerun) != ("adopted" in rerun)


def test_kill_after_the_create_committed_but_its_answer_was_lost(tmp_path):
    # every=2: the first GET is the API key check of the empty state, the second the read-back held
    faults = "POST /qollect/dataset: lost-drop@first=1; GET /qollect/dataset/*: latency=3s@every=2"
    with Emulator(tmp_path / "world.json", faults) as emulator:
        project = Project(tmp_path / "project", emulator, examples=False)
        project.write_manifest("solo.yaml", DATASET)
        process = project.start("apply", "--auto-approve")
        created = wait_for(lambda: with_marker(emulator, "dataset.solo"))   # committed, answer dropped
        time.sleep(0.3)                                                    # reading it back, held
        entry = journaled(project, "dataset.solo")
        assert entry.datasetId == created[0]["datasetId"]
        assert "dataset.solo" not in state_of(project).resources
        rerun = kill_then_rerun(project, process)
        assert f"dataset.solo: adopted {entry.datasetId} from an interrupted create" in rerun
        assert [d["datasetId"] for d in with_marker(emulator, "dataset.solo")] == [entry.datasetId]


def test_kill_after_a_view_committed_but_its_answer_was_lost(tmp_path):
    """A view's id is minted by the server: the journal holds the app, the source's
    connectionId and the marker, and the next run finds the view by listing the app."""
    # every=3: the plan lists the two apps the creates go to first (issue 14: for objects that
    # already carry their marker); the third listing is the one looking for the lost view
    faults = ("POST /qollect/dataset/clone/connection/*: lost-drop@first=1; "
              "POST /qollect/dataset/all: latency=3s@every=3")
    with Emulator(tmp_path / "world.json", faults) as emulator:
        project = Project(tmp_path / "project", emulator, examples=False)
        project.write_manifest("solo.yaml", DATASET + VIEW)
        process = project.start("apply", "--auto-approve")
        view = wait_for(lambda: with_marker(emulator, "view.solo-emea"))[0]
        time.sleep(0.3)
        entry = journaled(project, "view.solo-emea")
        assert entry.datasetId is None and entry.appId == "a-emea"
        assert entry.detail.connectionId == view["sourceDataset"]["connectionId"]
        assert entry.detail.marker == {OWNER_ATTRIBUTE: "view.solo-emea"}
        rerun = kill_then_rerun(project, process)
        assert f"view.solo-emea: adopted {view['datasetId']} from an interrupted create" in rerun
        assert [d["datasetId"] for d in with_marker(emulator, "view.solo-emea")] == [view["datasetId"]]
        assert state_of(project).resources["view.solo-emea"].datasetId == view["datasetId"]


def test_kill_then_plan_then_apply_while_the_create_lands_late_makes_one_dataset(tmp_path):
    """Issue 12: the create is held by the server past the client's timeout and lands after
    the apply that sent it was killed. The plan between finds nothing yet; it must keep the
    chosen id, so the next apply sends that id again and the late landing is refused."""
    with Emulator(tmp_path / "world.json", "POST /qollect/dataset: late=4s@first=1") as emulator:
        project = Project(tmp_path / "project", emulator, examples=False, request_timeout=1)
        project.write_manifest("solo.yaml", DATASET)
        process = project.start("apply", "--auto-approve")
        entry = wait_for(lambda: journaled(project, "dataset.solo"))
        time.sleep(0.3)
        process.kill()
        process.wait()
        plan = project.run("plan", "--detailed-exitcode")
        assert plan.code == 2, plan.stderr
        assert f"its id {entry.datasetId} stays in the state's journal" in plan.stderr
        assert [e.datasetId for e in state_of(project).journal] == [entry.datasetId]
        apply = project.run("apply", "--auto-approve")
        assert apply.code == 0, apply.stderr
        time.sleep(4.5)                                                 # the held request has landed (or not)
        assert [d["datasetId"] for d in with_marker(emulator, "dataset.solo")] == [entry.datasetId]
        assert state_of(project).resources["dataset.solo"].datasetId == entry.datasetId
        assert check_invariants(project).ok
