"""A state folder that refuses writes (a full disk, a read-only folder): a precise Error naming
the path, the report of what was already done, and a state that is still whole."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from qrvey_iac.adapters.state import local as local_module
from qrvey_iac.adapters.state import lock as lock_module
from qrvey_iac.adapters.state.local import LocalStateStore


def refuse_writes_after(monkeypatch, allowed: int, code: int) -> list[float]:
    """The file system accepts ``allowed`` more state writes (a whole file or a sidecar line),
    then refuses each one with ``code`` (ENOSPC, EROFS), as os.write and os.open do. Returns
    the count left: set it to infinity to free the disk."""
    left = [allowed]
    real_temp, real_append = local_module.write_temp, LocalStateStore._append_line

    def spend() -> None:
        if left[0] == 0:
            raise OSError(code, os.strerror(code))
        left[0] -= 1

    def write_temp(*args, **kwargs):
        spend()
        return real_temp(*args, **kwargs)

    def append_line(self, *args, **kwargs):
        spend()
        return real_append(self, *args, **kwargs)

    monkeypatch.setattr(local_module, "write_temp", write_temp)
    monkeypatch.setattr(LocalStateStore, "_append_line", append_line)
    return left


def tracked_ids(project) -> set[str]:
    state = LocalStateStore(project.state_path).read()        # decodes: the state is whole
    return {r.datasetId for r in state.resources.values()} | {e.datasetId for e in state.journal if e.datasetId}


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_state_folder_that_fills_up_or_turns_read_only_during_apply(project, monkeypatch, code):
    left = refuse_writes_after(monkeypatch, 3, code)
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    reason = os.strerror(code)
    assert (f"Error: apply stopped: cannot write the state file {Path('state/local.json')} ({reason}; check that "
            f"the folder {Path('state')} is writable and has free space)") in result.stderr, result.stderr
    assert result.stderr.count(reason) == 1                   # said once, not once per step
    # what was done before the disk refused is reported, and what was not started
    assert "done in Qrvey: 9 (create:connection.warehouse, create:dataset.apac-campaigns, " in result.stderr   # with the example's load
    assert "not started: 5 (create:view.customers-apac, " in result.stderr
    left[0] = float("inf")                                    # space is freed / the folder writable again
    world = project.world()["datasets"]
    assert len(world) == 6 and set(world) <= tracked_ids(project)   # nothing in Qrvey the state does not know
    again = project.run("apply", "--auto-approve")
    assert again.exit_code == 0, again.output
    assert len(project.world()["datasets"]) == 10, again.output
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_a_state_folder_that_refuses_the_lock_file_changes_nothing(project, monkeypatch):
    def refused(temp: Path, holder: dict) -> int:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(temp))

    monkeypatch.setattr(lock_module, "_create_locked", refused)
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: cannot lock state {Path('state/local.json')}: its lock file {Path('state/local.json.lock')} cannot be "
        f"written (Permission denied; check that the folder {Path('state')} is writable and has free space); "
        "nothing was changed\n")
    assert not project.world_path.exists() and not project.state_path.exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_read_only_state_folder_is_named_and_nothing_is_changed(project):
    first = project.run("apply", "--auto-approve", "--target", "dataset.orders")
    assert first.exit_code == 0, first.output
    before = project.state_path.read_bytes()
    folder = project.state_path.parent
    folder.chmod(0o555)
    try:
        result = project.run("apply", "--auto-approve")
    finally:
        folder.chmod(0o755)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"Error: cannot lock state {Path('state/local.json')}: its lock file" in result.stderr
    assert "(Permission denied; check that the folder" in result.stderr
    assert project.state_path.read_bytes() == before
    assert len(project.world()["datasets"]) == 1
