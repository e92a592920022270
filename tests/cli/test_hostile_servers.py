"""Commands against a hostile or broken server (issue 12, point 7): an answer the tool cannot
use stops the command with an ``Error:`` naming the call; nothing is recorded from it; the
journal keeps what may have landed, and the next command settles it by a GET of its own."""

from __future__ import annotations

import pytest

from qrvey_iac.emulator import parse_faults
from qrvey_iac.emulator.injector import FaultInjector


def created_ids(server) -> set[str]:
    """The ids of every dataset and connection in the emulator (the state records both)."""
    return set(server.emulator.world.datasets) | set(server.emulator.world.connections)


def test_a_create_answered_with_another_id_is_refused_then_settled(project, served):
    server = served("POST /qollect/dataset: other-id@first=1")
    result = project.run("apply", "--auto-approve", "--parallelism", "1")
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert "the one sent; nothing was recorded from it" in result.stderr
    assert "POST /devapi/v4/user/" in result.stderr and "/qollect/dataset -> HTTP 200: the answer names datasetId 'other-" in result.stderr
    state = project.state()
    [entry] = state["journal"]
    assert entry["op"] == "create" and entry["datasetId"] in created_ids(server)
    assert entry["datasetId"] not in {r["datasetId"] for r in state["resources"].values()}
    assert all(not r["datasetId"].startswith("other-") for r in state["resources"].values())
    result = project.run("apply", "--auto-approve")          # settles the entry by a GET, then finishes
    assert result.exit_code == 0, result.output
    state = project.state()
    assert state["journal"] == [] and entry["datasetId"] in {r["datasetId"] for r in state["resources"].values()}
    assert {r["datasetId"] for r in state["resources"].values()} == created_ids(server)
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def inject(server, spec: str) -> None:
    """From now on, the served emulator answers with the faults of ``spec``."""
    server.emulator.injector = FaultInjector(parse_faults(spec), seed=0)


@pytest.mark.parametrize("kind", ["body=null", "body=empty", "body=html", "body=error", "other-id"])
def test_a_read_answered_badly_stops_plan_with_an_error(project, served, kind):
    """Before: a ``null`` Get Dataset answer was an empty object, and the plan replaced the dataset."""
    server = served()
    assert project.run("apply", "--auto-approve").exit_code == 0
    before = project.state()
    inject(server, f"GET /qollect/dataset/*: {kind}@first=1")
    result = project.run("plan")
    assert result.exit_code == 1
    first = next(line for line in result.stderr.splitlines() if line.startswith("Error:"))
    assert first.startswith("Error: Qrvey API GET /devapi/v4/user/") and "-> HTTP 200: " in first, first
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert project.state()["resources"] == before["resources"]
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_a_trickling_server_is_stopped_by_the_deadline(project, served):
    server = served(callDeadline=1)
    assert project.run("apply", "--auto-approve").exit_code == 0
    inject(server, "GET *: trickle=100ms")      # a byte every 100 ms: never a read timeout
    result = project.run("plan")
    assert result.exit_code == 1
    assert "CallDeadlineError: no complete answer within 1 s, the deadline per call" in result.stderr
    assert "Traceback" not in result.output
