"""Kill-and-restart harness: a real emulator process, real CLI processes, invariants.

Everything here talks to qrvey-iac the way a user does: ``qrvey-iac emulator serve``
in its own process (loopback, ``--data`` so the world survives, ``--faults``), and
``qrvey-iac apply`` as a subprocess that the harness SIGKILLs at seeded random moments.
After every run the invariants of DESIGN §5 are checked on the stored state itself. A
project keeps its state in a local file (``backend="local"``) or in a workspace of the test
PostgreSQL server (``backend="postgres"``, tests/postgres_server.py).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path

import httpx
from click.testing import CliRunner
from postgres_server import new_workspace, shared_database

from qrvey_iac.adapters.state.local import LocalStateStore
from qrvey_iac.adapters.state.lock import LocalLocker
from qrvey_iac.adapters.state.postgres import PostgresDatabase, PostgresLocker, PostgresStateStore
from qrvey_iac.cli import cli
from qrvey_iac.core.kinds.base import OWNER_ATTRIBUTE
from qrvey_iac.core.errors import StateError

REPO = Path(__file__).resolve().parents[2]


def copy_examples_without_connection(folder: Path) -> None:
    """The example manifests as they were before the example connection: its datasets name the
    connection by id (``${var.warehouse_connection}``), so the rigs built on them (their counts
    and levels of ten objects: six datasets, then views) test the journal, signals and late
    landings of datasets and views as before. The connection's own create, lost answers and
    settling are covered by tests/unit/test_connection_kind.py."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in (REPO / "manifests").glob("*.yaml"):
        if path.name != "connections.yaml":
            text = path.read_text()
            (folder / path.name).write_text(
                text.replace("connection: connection.warehouse", "connectionId: ${var.warehouse_connection}"))
API_KEY = "chaos-k3y-never-in-files"
KEY_ENV = "QRVEY_CHAOS_API_KEY"
SECRET = "s3cret-from-env-var"
SECRET_ENV = "QRVEY_CHAOS_SECRET"
DSN_ENV = "QRVEY_CHAOS_STATE_DSN"
BACKENDS = ("local", "postgres")
ENV = "chaos"
APPS = {
    "sales": ("u-hq-owner", "a-sales"),
    "emea": ("u-emea-owner", "a-emea"),
    "apac": ("u-apac-owner", "a-apac"),
}
# 10% 5xx, 5% 429 (Retry-After 0 or 1 s), 2% committed-but-lost: on every call.
FAULT_MIX = ("* *: 500@5%, 503@5%, 429@4% retry-after=0, 429@1% retry-after=1, "
             "lost-500@1%, lost-drop@1%")
# Writes that land late (issue 12): 3% of creates, view clones, updates, shares and deletes are
# committed LATE_SECONDS after they arrive, past the client's LATE_TIMEOUT, whether or not the
# client still waits; on top of FAULT_MIX. The landing window is 2 x LATE_TIMEOUT.
LATE_TIMEOUT = 2.0
LATE_SECONDS = 2.5
LATE_MIX = FAULT_MIX + "".join(f"; {target}: late={LATE_SECONDS:g}s@3%" for target in (
    "POST /qollect/dataset", "POST /qollect/dataset/clone/*", "PUT *", "POST /qollect/dataset/*/publishVersion",
    "DELETE *"))
SAVE_INTERVAL = 0.05   # the emulator saves its world at most this often while it changes


START_TRIES = 5       # an emulator whose port another process took first is started again on another
PROBE = "/devapi/v4/user/u-harness-probe/app/a-harness-probe"   # checks the key (makes that app, no dataset)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Emulator:
    """``qrvey-iac emulator serve`` in its own process, its world persisted to ``data``."""

    def __init__(self, data: Path, faults: str | None = None, seed: int = 0, latency_ms: float = 0) -> None:
        self.data = data
        # a key of its own: a client of another lane's emulator is refused (401), never served.
        # It holds API_KEY, so the leak checks, which look for API_KEY, still find it anywhere.
        self.api_key = f"{API_KEY}-{uuid.uuid4().hex[:8]}"
        data.parent.mkdir(parents=True, exist_ok=True)
        self.log = data.with_suffix(".log").open("w")
        options = ["--api-key", self.api_key, "--data", str(data), "--save-interval", str(SAVE_INTERVAL),
                   "--seed", str(seed), *(["--faults", faults] if faults else []),
                   *(["--latency-ms", str(latency_ms)] if latency_ms else [])]
        for _ in range(START_TRIES):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self.log.flush()
            started_at = self.log.tell()        # this start's lines: an earlier one lost its port
            self.process = subprocess.Popen(
                [sys.executable, "-m", "qrvey_iac", "emulator", "serve", "--port", str(self.port), *options],
                stdout=self.log, stderr=subprocess.STDOUT)
            if self._wait_ready(started_at):
                return
        raise RuntimeError(f"emulator lost its port to another process {START_TRIES} times: see {self.log.name}")

    def _wait_ready(self, started_at: int) -> bool:
        """True once this emulator answers with its own key; False when it exited because another
        process took the port between free_port() and its bind (two lanes at once: start again)."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                with open(self.log.name, "rb") as log:
                    log.seek(started_at)
                    if b"address already in use" in log.read():
                        return False
                raise RuntimeError(f"emulator exited with {self.process.returncode}: see {self.log.name}")
            try:
                answer = httpx.get(self.url + PROBE, headers={"x-api-key": self.api_key}, timeout=0.5)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            if answer.status_code != 401:        # 401: another lane's emulator on this port
                return True
            time.sleep(0.05)
        raise RuntimeError("emulator did not start within 20 s")

    def world(self) -> dict:
        """The persisted world, written atomically by the emulator within SAVE_INTERVAL of a
        change: read after a few intervals, so it holds every change made before the call."""
        time.sleep(SAVE_INTERVAL * 4)
        if not self.data.exists():
            return {}
        return json.loads(self.data.read_text())

    def datasets(self) -> dict[str, dict]:
        return self.world().get("datasets", {})

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def fault_counts(self) -> dict[str, int]:
        """The faults it injected, from the line ``emulator serve`` prints when it stops."""
        for line in Path(self.log.name).read_text().splitlines():
            if line.startswith("Faults injected: "):
                pairs = line.removeprefix("Faults injected: ").split(", ")
                return {kind: int(count) for kind, _, count in (p.partition("=") for p in pairs) if count}
        return {}

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def generated_manifests(datasets: int, views: int, *, shared_every: int = 2, variant: int = 0) -> str:
    """``datasets`` generated datasets (every ``shared_every``-th shared) and ``views`` views of them.

    ``variant`` 1 changes a realistic mix: renames (updates), shares and unshares, an app
    move and a view's new source (replaces), removed views and datasets (deletes) and new
    datasets (creates).
    """
    apps = list(APPS)
    shared = [i for i in range(datasets) if i % shared_every == 0]
    docs = []
    view_sources = {v: shared[v % len(shared)] for v in range(views)} if shared else {}
    with_views = set(view_sources.values())
    for i in range(datasets):
        if variant == 1 and i % 17 == 5 and i not in with_views:
            continue                                           # deleted
        name = f"Generated {i:03d}" + (" (renamed)" if variant == 1 and i % 7 == 3 else "")
        is_shared = i in shared
        if variant == 1 and i not in with_views and i % 5 == 1:
            is_shared = not is_shared                          # share / unshare
        app = apps[i % len(apps)]
        if variant == 1 and i % 19 == 4 and i not in with_views:
            app = apps[(i + 1) % len(apps)]                     # replace: a dataset cannot move apps
        docs.append(_dataset_doc(f"gen-{i:03d}", app, name, is_shared, i))
    if variant == 1:
        for extra in range(datasets, datasets + 4):
            docs.append(_dataset_doc(f"gen-{extra:03d}", apps[extra % 3], f"Added {extra}", False, extra))
    for v, source in view_sources.items():
        if variant == 1 and v % 11 == 2:
            continue                                           # deleted
        app = apps[(source + 1 + v % 2) % len(apps)]
        if variant == 1 and v % 13 == 7:
            source = shared[(shared.index(source) + 1) % len(shared)]   # replace: a view's source moves
        name = f"View {v:03d}" + (" (renamed)" if variant == 1 and v % 6 == 0 else "")
        docs.append(
            f"apiVersion: qrvey-iac/v1\nkind: DatasetView\nmetadata: {{name: gen-view-{v:03d}}}\n"
            f"spec:\n  app: {app}\n  source: dataset.gen-{source:03d}\n  name: {name}\n"
            + ("  columns:\n    - {column: Amount, columnName: Amount (view)}\n" if v % 3 == 0 else "")
        )
    return "---\n".join(docs)


def _dataset_doc(name: str, app: str, display: str, shared: bool, i: int) -> str:
    return (
        f"apiVersion: qrvey-iac/v1\nkind: Dataset\nmetadata: {{name: {name}}}\nspec:\n"
        f"  app: {app}\n  name: {display}\n  shared: {str(shared).lower()}\n"
        f"  datasources:\n    - name: Source\n      connectionId: ${{var.warehouse_connection}}\n"
        f"      connectorType: MSSQL_LIVE\n      database: shop\n      tableName: t_{i:03d}\n"
        f"  columns:\n    - {{columnName: Id, columnType: NUMBER}}\n"
        f"    - {{columnName: Amount, columnType: NUMBER}}\n"
        f"    - {{columnName: Label, columnType: STRING}}\n"
        f"  customAttributes: {{owner: team-{i % 4}, token: \"${{env:{SECRET_ENV}}}\"}}\n"
    )


def write_config(root: Path, endpoint: str, request_timeout: float | None = None,
                 state: str = f"{{path: state/{ENV}.json}}") -> None:
    apps = "\n".join(f"      {alias}: {{userId: {user}, appId: {app}}}" for alias, (user, app) in APPS.items())
    timeout = f"    requestTimeout: {request_timeout}\n" if request_timeout else ""
    (root / "qrvey-iac.yaml").write_text(
        f"manifests: manifests\ndefaultEnvironment: {ENV}\nenvironments:\n  {ENV}:\n"
        f"    endpoint: {endpoint}\n    apiKeyEnv: {KEY_ENV}\n{timeout}    apps:\n{apps}\n"
        "    variables: {warehouse_connection: conn-warehouse, crm_connection: conn-crm, warehouse_db: shop}\n"
        f"    state: {state}\n"
    )


@dataclass(frozen=True)
class Kill:
    """When to SIGKILL a run: ``seconds`` after its start, or ``jitter`` seconds after the
    state file's serial moved ``writes`` times (so the kill lands among the writes)."""

    seconds: float | None = None
    writes: int = 0
    jitter: float = 0.0

    def wait(self, process: subprocess.Popen, serial: Callable[[], int], started: float) -> bool:
        """Wait for the moment; False when the process ended first."""
        if self.seconds is not None:
            try:
                process.wait(timeout=max(0.0, self.seconds - (time.monotonic() - started)))
                return False
            except subprocess.TimeoutExpired:
                return True
        first = serial()
        while process.poll() is None:
            if serial() - first >= self.writes:
                time.sleep(self.jitter)
                return process.poll() is None
            time.sleep(0.005)
        return False

    def __str__(self) -> str:
        if self.seconds is not None:
            return f"{self.seconds:.2f}s after start"
        return f"{self.jitter * 1000:.0f}ms after write {self.writes}"


@dataclass
class Run:
    code: int | None          # None: SIGKILLed
    stdout: str
    stderr: str
    seconds: float

    @property
    def killed(self) -> bool:
        return self.code is None


class Project:
    """A project folder pointed at an emulator process, driven by CLI subprocesses."""

    def __init__(self, root: Path, emulator: Emulator, *, examples: bool = True,
                 request_timeout: float | None = None, backend: str = "local") -> None:
        self.root = root
        self.emulator = emulator
        self.backend = backend
        (root / "manifests").mkdir(parents=True, exist_ok=True)
        if examples:
            copy_examples_without_connection(root / "manifests")
        self.environ = {**os.environ, KEY_ENV: emulator.api_key, SECRET_ENV: SECRET, "PYTHONUNBUFFERED": "1"}
        if backend == "postgres":
            self.workspace = new_workspace()
            self.environ[DSN_ENV] = self.dsn = shared_database("chaos")
            write_config(root, emulator.url, request_timeout,
                         f"{{backend: postgres, dsnEnv: {DSN_ENV}, workspace: {self.workspace}}}")
        else:
            write_config(root, emulator.url, request_timeout)
        self._store = None

    @property
    def state_path(self) -> Path:
        """The local state file (a postgres project has none: its ``state/`` folder holds only
        what the commands write beside the state, checked for secrets all the same)."""
        return self.root / "state" / f"{ENV}.json"

    def store(self):
        """The project's state store (one object, kept: for postgres it holds a connection)."""
        if self._store is None:
            if self.backend == "postgres":
                self._store = PostgresStateStore(self._database(), self.workspace)
            else:
                self._store = LocalStateStore(self.state_path)
        return self._store

    def read_state(self):
        return self.store().read()

    def serial(self) -> int:
        """The stored serial (0 when nothing or nothing readable is stored): a write moves it."""
        try:
            return self.read_state().serial     # local: the file and its sidecar: a delta is a write
        except (OSError, StateError):
            return 0

    def locker(self):
        if self.backend == "postgres":
            return PostgresLocker(self._database(), self.workspace)
        return LocalLocker(self.state_path)

    def _database(self) -> PostgresDatabase:
        dsn = self.dsn
        return PostgresDatabase(lambda: dsn, f"chaos workspace {self.workspace}")

    def write_manifest(self, name: str, text: str) -> None:
        path = self.root / "manifests" / name
        if text:
            path.write_text(text)
        else:
            path.unlink(missing_ok=True)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "qrvey_iac", *args]

    def run(self, *args: str, timeout: float = 300) -> Run:
        started = time.monotonic()
        done = subprocess.run(self.command(*args), cwd=self.root, env=self.environ,
                              capture_output=True, text=True, timeout=timeout)
        return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)

    def run_killed(self, kill: Kill | None, *args: str) -> Run:
        """Run a command; SIGKILL it at ``kill`` if it is still running then."""
        started = time.monotonic()
        out, err = self.root / ".run.out", self.root / ".run.err"
        with out.open("w") as stdout, err.open("w") as stderr:
            process = subprocess.Popen(self.command(*args), cwd=self.root, env=self.environ,
                                       stdout=stdout, stderr=stderr, text=True)
            killed = kill is not None and kill.wait(process, self.serial, started)
            if killed:
                process.send_signal(signal.SIGKILL)
            process.wait()
        return Run(None if killed else process.returncode, out.read_text(), err.read_text(),
                   time.monotonic() - started)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.command(*args), cwd=self.root, env=self.environ,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def unlock_in_process(self, lock_id: str) -> str:
        result = CliRunner().invoke(cli, ["state", "unlock", lock_id, "--config", str(self.root / "qrvey-iac.yaml")])
        assert result.exit_code == 0, result.output
        return result.output

    def lock_holder(self) -> dict | None:
        locker = self.locker()
        try:
            return locker.holder()
        finally:
            if hasattr(locker, "close"):
                locker.close()


@dataclass
class Findings:
    """What one invariant check found (empty lists: all good)."""

    unreadable: str | None = None
    untracked: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    shared_ids: list[str] = field(default_factory=list)   # one object claimed by two addresses
    leaks: list[str] = field(default_factory=list)        # files holding the API key or a ${env:X} value
    journaled: int = 0                                    # pending journal entries (writes in flight)

    @property
    def ok(self) -> bool:
        return not (self.unreadable or self.untracked or self.duplicates or self.shared_ids or self.leaks)


def check_invariants(project: Project) -> Findings:
    """The state loads; every emulator dataset is tracked by exactly one address (a state
    resource or a journal entry); no address has two datasets in Qrvey."""
    findings = Findings()
    findings.leaks = secret_leaks(project.state_path.parent)
    try:
        state = project.read_state()
    except StateError as exc:
        findings.unreadable = str(exc)
        return findings
    findings.journaled = len(state.journal)
    world = project.emulator.datasets()
    claims: dict[str, set[str]] = defaultdict(set)
    for address, resource in state.resources.items():
        claims[resource.datasetId].add(address)
    view_creates = []
    for entry in state.journal:
        if entry.datasetId:
            claims[entry.datasetId].add(entry.address)
        elif entry.op == "create":
            view_creates.append(entry)
    by_marker: dict[str, list[str]] = defaultdict(list)
    for dataset_id, dataset in world.items():
        marker = (dataset.get("customAttributes") or {}).get(OWNER_ATTRIBUTE)
        by_marker[str(marker)].append(dataset_id)
        owners = set(claims.get(dataset_id, ()))
        owners |= {e.address for e in view_creates if _journal_matches_view(e, dataset, marker)}
        if not owners:
            findings.untracked.append(f"{dataset_id} ({marker})")
        elif len(owners) > 1:
            findings.shared_ids.append(f"{dataset_id} claimed by {sorted(owners)}")
    for marker, ids in sorted(by_marker.items()):
        if len(ids) > 1:
            findings.duplicates.append(f"{marker}: {sorted(ids)}")
    return findings


def secret_leaks(folder: Path) -> list[str]:
    """Files under ``folder`` (state, backup, lock, plans) that hold the API key or the env secret."""
    leaks = []
    for path in sorted(folder.rglob("*")) if folder.is_dir() else ():
        if path.is_file() and path.suffix != ".log":
            data = path.read_bytes()
            leaks += [f"{path.name} holds {what}" for what, value in (("the API key", API_KEY), ("the secret", SECRET))
                      if value.encode() in data]
    return leaks


def _journal_matches_view(entry, dataset: dict, marker) -> bool:
    source = dataset.get("sourceDataset") or {}
    return (marker == entry.address and dataset.get("appId") == entry.appId
            and source.get("connectionId") == entry.detail.connectionId)


@dataclass
class Figures:
    kill_points: int = 0
    runs: int = 0                # apply runs (killed, failed or finished)
    plans: int = 0               # plan --detailed-exitcode checks
    gave_up: int = 0             # runs that ended with exit 1 on their own (faults outlasted retries)
    duplicates: int = 0
    untracked: int = 0
    unreadable: int = 0
    shared_ids: int = 0
    leaks: int = 0
    episodes: int = 0
    converged: int = 0
    plans_between: int = 0       # plans run between a killed apply and the next apply
    plans_killed: int = 0        # of those, SIGKILLed too
    late: int = 0                # writes the emulator committed late, past the client's timeout
    seconds: float = 0.0
    in_flight: int = 0           # kills that left writes in flight (journal entries to settle)
    problems: list[str] = field(default_factory=list)
    give_up_reports: list[str] = field(default_factory=list)

    def merge(self, other: Figures) -> None:
        for name, value in vars(other).items():
            if isinstance(value, list):
                getattr(self, name).extend(value)
            elif name != "seconds":
                setattr(self, name, getattr(self, name) + value)

    def record(self, findings: Findings, when: str) -> None:
        self.duplicates += len(findings.duplicates)
        self.untracked += len(findings.untracked)
        self.shared_ids += len(findings.shared_ids)
        self.unreadable += bool(findings.unreadable)
        self.leaks += len(findings.leaks)
        if not findings.ok:
            self.problems.append(f"{when}: {findings}")

    def line(self) -> str:
        return (f"kill points {self.kill_points} ({self.in_flight} with writes in flight), apply runs "
                f"{self.runs}, plan checks {self.plans}, "
                f"gave up {self.gave_up}, "
                f"duplicates {self.duplicates}, "
                f"untracked {self.untracked}, claimed twice {self.shared_ids}, unreadable states "
                f"{self.unreadable}, secret leaks {self.leaks}, converged {self.converged}/{self.episodes}"
                + (f", plans between kills {self.plans_between} ({self.plans_killed} killed), "
                   f"late landings {self.late}" if self.plans_between or self.late else ""))


def converge_with_kills(project: Project, rng: random.Random, figures: Figures, *, kills: int,
                        window: tuple[float, float], writes: int = 40, max_runs: int = 40,
                        command: tuple[str, ...] = ("apply", "--auto-approve"), plan_between: bool = False) -> Run:
    """Run ``command`` until a run exits 0, SIGKILLing each of the first ``kills`` runs at a
    seeded random moment (a run that finishes first ends the episode): half the time at a
    time in ``window`` (seconds after start), else a few ms after a random one of the first
    ``writes`` state writes. Invariants are checked after every run. After a kill the lock's
    holder is gone and so is the lock (the OS held it): the next run gets in, nobody unlocks."""
    remaining = kills
    for _ in range(max_runs):
        kill = None
        if remaining > 0:
            timed = window[1] > 0 and rng.random() < 0.5
            kill = (Kill(seconds=rng.uniform(*window)) if timed
                    else Kill(writes=rng.randint(1, writes), jitter=rng.uniform(0, 0.03)))
        run = project.run_killed(kill, *command)
        figures.runs += 1
        if run.killed:
            remaining -= 1
            figures.kill_points += 1
            time.sleep(0.05)   # let the emulator finish answering the dead socket
        findings = check_invariants(project)
        findings.leaks += [f"the output holds {what}" for what, value in (("the API key", API_KEY), ("the secret", SECRET))
                           if value in run.stdout + run.stderr]
        figures.record(findings, f"run {figures.runs} ({f'SIGKILL {kill}' if run.killed else run.code})")
        if run.code == 0:
            return run
        if run.killed:
            figures.in_flight += findings.journaled > 0
            assert project.lock_holder() is None, project.lock_holder()   # died with its holder
            if plan_between:
                plan_after_kill(project, rng, figures)
            continue
        assert "Traceback" not in run.stderr and "Error:" in run.stderr, run.stderr[-3000:]
        assert "is locked by" not in run.stderr, run.stderr     # no lock outlives its holder
        figures.gave_up += 1
        figures.give_up_reports.append(run.stderr.strip()[-1500:])
    raise AssertionError(f"no run converged after {max_runs} runs; last stderr:\n{run.stderr[-3000:]}")


def plan_after_kill(project: Project, rng: random.Random, figures: Figures) -> None:
    """``plan`` between a killed apply and the next one (it settles and saves the journal),
    itself SIGKILLed a third of the time. Any exit is fine but a traceback: 0, 2 (changes
    left), 1 (faults outlasted the retries)."""
    kill = Kill(seconds=rng.uniform(0.3, 2.0)) if rng.random() < 1 / 3 else None
    run = project.run_killed(kill, "plan", "--detailed-exitcode")
    figures.plans_between += 1
    figures.plans_killed += run.killed
    figures.record(check_invariants(project), f"plan between kills {figures.plans_between} "
                                              f"({'SIGKILL ' + str(kill) if run.killed else run.code})")
    assert run.killed or "Traceback" not in run.stderr, run.stderr[-3000:]
    assert run.killed or run.code in (0, 2) or "Error:" in run.stderr, run.stderr[-3000:]
    assert project.lock_holder() is None, project.lock_holder()


def plan_is_empty(project: Project, figures: Figures, attempts: int = 4) -> Run:
    """``plan --detailed-exitcode``: 0 is converged, 2 is not; 1 (faults outlasted the
    retries on a read) is retried."""
    for _ in range(attempts):
        run = project.run("plan", "--detailed-exitcode")
        figures.plans += 1
        figures.record(check_invariants(project), f"plan check {figures.plans}")
        if run.code != 1:
            return run
        assert "Traceback" not in run.stderr and "Error:" in run.stderr, run.stderr[-3000:]
    return run


def wait_for(condition, timeout: float = 30.0):
    """Poll ``condition`` every 10 ms until it gives a true value (returned), else fail the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("timed out waiting for the condition")
