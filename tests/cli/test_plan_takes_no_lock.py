"""`plan` takes no state lock (issue 15, Deliver 2): it runs while another command holds the
lock, on either backend. Only unsettled operations left by an interrupted run make it take the
lock, to settle and record them; while the lock is held they are read as settled and recorded
by no one."""

from __future__ import annotations

import re

import pytest


@pytest.fixture
def project(any_backend_project):
    return any_backend_project


def test_plan_runs_while_an_apply_holds_the_lock_and_its_saved_plan_applies_after(project, tmp_path):
    saved = tmp_path / "plan.json"
    with project.locker().lock("apply (held by the test)"):
        assert project.locker().is_locked()
        planned = project.run("plan", "--out", str(saved))
        assert project.locker().is_locked()              # the holder kept its lock all along
    assert planned.exit_code == 0, planned.output
    assert len(re.findall(r"# \S+ will be created", planned.stdout)) == 11
    assert "lock" not in planned.stderr.lower()
    assert not project.state_exists()                    # plan wrote nothing
    applied = project.run("apply", str(saved), "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert len(project.state()["resources"]) == 11


def test_a_plan_saved_while_the_holder_changed_the_state_is_refused(project, tmp_path):
    assert project.run("apply", "--auto-approve").exit_code == 0
    project.replace_in("sales.yaml", "  name: Products\n", "  name: Products\n  dataSync: {schedule: daily}\n")
    saved = tmp_path / "plan.json"
    with project.locker().lock("apply (held by the test)"):
        assert project.run("plan", "--out", str(saved)).exit_code == 0
    # what the holder would have done meanwhile: another apply changes the state
    project.replace_in("sales.yaml", "dataSync: {schedule: daily}", "dataSync: {schedule: weekly}")
    assert project.run("apply", "--auto-approve").exit_code == 0
    stale = project.run("apply", str(saved), "--auto-approve")
    assert stale.exit_code == 1
    assert "Traceback" not in stale.output
    assert "the state changed since the plan was made" in stale.stderr, stale.stderr


def interrupted(project, served):
    """A state whose journal holds one create (its answer named another id) and the server."""
    server = served("POST /qollect/dataset: other-id@first=1")
    assert project.run("apply", "--auto-approve", "--parallelism", "1").exit_code == 1
    [entry] = project.state()["journal"]
    assert entry["op"] == "create"
    return server, entry


def test_plan_settles_and_records_a_journal_when_the_lock_is_free(project, served):
    server, entry = interrupted(project, served)
    planned = project.run("plan")
    assert planned.exit_code == 0, planned.output
    state = project.state()
    assert state["journal"] == []
    assert entry["datasetId"] in {r["datasetId"] for r in state["resources"].values()}
    assert not project.locker().is_locked()


def test_plan_reads_a_journal_as_settled_and_records_nothing_while_the_lock_is_held(project, served):
    server, entry = interrupted(project, served)
    before = project.state()
    with project.locker().lock("apply (held by the test)"):
        planned = project.run("plan")
        assert project.state() == before                 # nothing recorded: the holder owns the journal
    assert planned.exit_code == 0, planned.output
    assert "note: the state lock is held by apply (held by the test) (pid" in planned.stderr
    assert "this plan takes no lock and records nothing" in planned.stderr
    # the create that landed is read as settled: it is not planned again
    creates = re.findall(r"# (\S+) will be created", planned.stdout)
    assert len(creates) == 11 - len(before["resources"]) - 1
    assert project.run("apply", "--auto-approve").exit_code == 0   # the lock free: settled, then applied
    assert project.state()["journal"] == []
    assert {r["datasetId"] for r in project.state()["resources"].values()} == \
        set(server.emulator.world.datasets) | set(server.emulator.world.connections)


def test_plan_with_lock_timeout_waits_for_the_lock_then_reads_the_journal_without_it(project, served):
    interrupted(project, served)
    with project.locker().lock("apply (held by the test)"):
        planned = project.run("plan", "--lock-timeout", "200ms")
    assert planned.exit_code == 0, planned.output
    assert "Waiting up to 0.2s for the state lock" in planned.stderr
    assert "this plan takes no lock and records nothing" in planned.stderr
