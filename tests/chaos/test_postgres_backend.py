"""Many `apply` processes on one PostgreSQL state database, and an apply SIGKILLed holding the
lock (issue 15's must-show). Every command is a real `python -m qrvey_iac` process; they share
one `emulator serve` process, so they all see one Qrvey world. The two eight-process tests
take ~25 s each on a busy 2-core machine: they run under `-m slow`.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time

import psycopg
import pytest
from chaos_harness import APPS, Emulator, Project, _dataset_doc, check_invariants, wait_for

from qrvey_iac.core.kinds.base import OWNER_ATTRIBUTE

APPLY = ("apply", "--auto-approve")


def manifests(prefix: str, count: int) -> str:
    apps = list(APPS)
    return "---\n".join(_dataset_doc(f"{prefix}-{i:02d}", apps[i % len(apps)], f"{prefix} {i}", i % 2 == 0, i)
                        for i in range(count))


class HolderWatch:
    """Polls the lock holders table while processes run: which workspaces held a lock at once."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.most_at_once = 0
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch)

    def __enter__(self) -> HolderWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                if conn.execute("SELECT to_regclass('qrvey_iac_lock_holders')").fetchone()[0] is not None:
                    # a row counts while its session still holds an advisory lock
                    rows = conn.execute(
                        "SELECT h.workspace FROM qrvey_iac_lock_holders h JOIN pg_locks l ON l.pid = h.backend_pid "
                        "AND l.locktype = 'advisory' AND l.granted").fetchall()
                    self.most_at_once = max(self.most_at_once, len(rows))
                    self.seen.update(r[0] for r in rows)
                time.sleep(0.02)


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


@pytest.mark.slow
def test_eight_applies_on_eight_workspaces_of_one_database_run_at_once(tmp_path, postgres):
    with Emulator(tmp_path / "world.json", latency_ms=20) as emulator:
        projects = [Project(tmp_path / f"p{k}", emulator, examples=False, backend="postgres") for k in range(8)]
        for k, project in enumerate(projects):
            project.write_manifest("generated.yaml", manifests(f"w{k}", 8))
        with HolderWatch(projects[0].dsn) as watch:
            processes = [project.start(*APPLY) for project in projects]     # no --lock-timeout: a wait would fail
            results = [finish(process) for process in processes]
        for code, out, err in results:
            assert code == 0, err[-3000:]
            assert "Apply complete! Resources: 8 created" in out
            assert "Waiting" not in err and "locked" not in err
        assert watch.most_at_once >= 2, f"the applies never held their locks at the same time ({watch.seen})"
        print(f"\n8 workspaces: at most {watch.most_at_once} held their locks at once", flush=True)
        tracked = {}                                  # every dataset of the world in exactly one workspace
        for k, project in enumerate(projects):
            state = project.read_state()
            assert sorted(state.resources) == [f"dataset.w{k}-{i:02d}" for i in range(8)] and state.journal == ()
            tracked.update({r.datasetId: address for address, r in state.resources.items()})
        world = emulator.datasets()
        assert len(tracked) == 64 and set(tracked) == set(world)
        assert {world[i]["customAttributes"][OWNER_ATTRIBUTE] for i in tracked} == set(tracked.values())


@pytest.mark.slow
def test_eight_applies_on_one_workspace_take_turns_and_every_resource_is_made_once(tmp_path, postgres):
    with Emulator(tmp_path / "world.json", latency_ms=20) as emulator:
        first = Project(tmp_path / "p0", emulator, examples=False, backend="postgres")
        first.write_manifest("generated.yaml", manifests("one", 10))
        projects = [first]
        for k in range(1, 8):        # seven more checkouts of the same project, on the same workspace
            project = Project(tmp_path / f"p{k}", emulator, examples=False, backend="postgres")
            project.workspace = first.workspace
            (project.root / "qrvey-iac.yaml").write_text((first.root / "qrvey-iac.yaml").read_text())
            project.write_manifest("generated.yaml", manifests("one", 10))
            projects.append(project)
        with HolderWatch(first.dsn) as watch:
            waiting = [p.start(*APPLY, "--lock-timeout", "2m") for p in projects[:4]]
            at_once = [p.start(*APPLY) for p in projects[4:]]
            results = [finish(p) for p in waiting + at_once]
        pids = {p.pid for p in waiting + at_once}
        assert watch.most_at_once == 1
        created = [out for code, out, _ in results if "Apply complete! Resources: 10 created" in out]
        assert len(created) == 1, [r[1][-500:] for r in results]      # one made them; the others found them made
        for index, (code, out, err) in enumerate(results):
            assert "Traceback" not in err
            if index < 4:                                                 # --lock-timeout: waited its turn
                assert code == 0, err[-3000:]
            elif code != 0:                                               # no timeout: refused, naming the holder
                holder = re.search(r"is locked by apply \(pid (\d+) on ", err)
                assert holder and int(holder.group(1)) in pids, err
            if code == 0 and out not in created:
                assert "No changes. Qrvey matches the manifests." in out
        waited = [err for code, _, err in results[:4] if "Waiting up to 2m for the state lock, held by apply (pid" in err]
        for err in waited:
            assert re.search(r"held by apply \(pid (\d+)", err) and "Got the state lock after" in err
        state = first.read_state()
        assert sorted(state.resources) == [f"dataset.one-{i:02d}" for i in range(10)] and state.journal == ()
        findings = check_invariants(first)
        assert findings.ok, findings
        assert len(emulator.datasets()) == 10


def test_an_apply_sigkilled_holding_the_lock_leaves_it_free_and_the_next_apply_settles_the_journal(tmp_path,
                                                                                                 postgres):
    with Emulator(tmp_path / "world.json", latency_ms=30) as emulator:
        project = Project(tmp_path / "project", emulator, examples=False, backend="postgres")
        project.write_manifest("generated.yaml", manifests("kill", 12))
        process = project.start(*APPLY)
        state = wait_for(lambda: (s := project.read_state()).journal and s.resources and s, timeout=120)
        process.send_signal(signal.SIGKILL)                                  # writes in flight, lock held
        process.communicate()
        assert process.returncode == -signal.SIGKILL
        state = project.read_state()
        assert state.journal, "the kill left no write in flight"            # something to settle
        with psycopg.connect(project.dsn, autocommit=True) as conn:          # the dead holder's row is still there...
            assert conn.execute("SELECT count(*) FROM qrvey_iac_lock_holders WHERE workspace = %s",
                                (project.workspace,)).fetchone()[0] == 1
        assert project.lock_holder() is None                                 # ...but not its lock
        started = time.monotonic()
        again = project.run(*APPLY)                                          # no `state unlock`, no --lock-timeout
        assert again.code == 0, again.stderr[-3000:]
        assert "locked" not in again.stderr and "Waiting" not in again.stderr
        assert time.monotonic() - started < 60
        settled = project.read_state()
        assert settled.journal == () and len(settled.resources) == 12
        findings = check_invariants(project)
        assert findings.ok, findings
        assert len(emulator.datasets()) == 12
