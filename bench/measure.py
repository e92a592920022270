"""Running things the way a user does, and measuring them.

- the CLI as a subprocess (the installed ``qrvey-iac`` script), timed from spawn to exit,
  with its own peak RSS from ``os.wait4`` (exact for that one process);
- the emulator as its own process (``qrvey-iac emulator serve``) with the request log of
  ``bench/probe`` switched on, so every HTTP call the CLI makes is counted server-side;
- the bound of a phase: the sum over its dependency levels of ceil(calls / P) * L.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

KEY_CHECK_ID = "qrvey-iac-key-check"    # qrvey_iac.engine.KEY_CHECK_ID (the scripts run without the package)
BENCH_DIR = Path(__file__).resolve().parent
PROBE_DIR = BENCH_DIR / "probe"
LOG_PATH = "/__bench/requests"
API_PREFIX_SEGMENTS = 6  # devapi/v4/user/{u}/app/{a}
STARTUP_RUNS = 3


def cli_executable() -> str:
    """The ``qrvey-iac`` script of this interpreter (no pyenv/venv shim in the timing)."""
    beside = Path(sys.executable).with_name("qrvey-iac")
    if beside.exists():
        return str(beside)
    found = shutil.which("qrvey-iac")
    if found is None:
        raise SystemExit("qrvey-iac is not installed: pip install -e . first")
    return found


@dataclass
class Run:
    wall_s: float
    cpu_s: float  # user + system of the CLI process
    peak_rss_mib: float
    returncode: int
    stdout: str
    stderr: str

    def check(self, what: str) -> Run:
        if self.returncode not in (0, 2):
            raise SystemExit(f"{what} failed with exit {self.returncode}:\n{self.stderr[-4000:]}")
        return self


def run_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Run:
    """Spawn ``qrvey-iac ARGS`` and wait for it; wall clock includes interpreter start-up."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen([cli_executable(), *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, process.returncode,
                   out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"))


def cli_startup(cwd: Path) -> Run:
    """Fastest of a few ``qrvey-iac --version``: interpreter plus the CLI's imports."""
    runs = [run_cli(["--version"], cwd).check("qrvey-iac --version") for _ in range(STARTUP_RUNS)]
    return min(runs, key=lambda run: run.wall_s)


def cli_startup_s(cwd: Path) -> float:
    return cli_startup(cwd).wall_s


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Request:
    """One call the emulator served (times from its clock: time.time())."""

    method: str
    path: str      # after /devapi/v4/user/{u}/app/{a}
    status: int
    started: float
    ended: float


@dataclass
class EmulatorProcess:
    base_url: str
    api_key: str
    process: subprocess.Popen

    def take_log(self) -> list[Request]:
        """Every request since the last call, in arrival order, but the API key check that a
        command on an empty state makes first (a GET of engine.KEY_CHECK_ID, answered 404) and
        the check that each app exists (one GET of /user/{u}/app/{a} per app, before planning):
        not part of the workload measured."""
        response = httpx.get(self.base_url + LOG_PATH, timeout=30)
        response.raise_for_status()
        return [Request(method, _after_prefix(path), status, started, ended)
                for method, path, status, started, ended in response.json()
                if not path.endswith("/" + KEY_CHECK_ID) and not _is_app_check(method, path)]


@contextmanager
def emulator_process(latency_ms: float, api_key: str, *options: str) -> Iterator[EmulatorProcess]:
    """``qrvey-iac emulator serve [OPTIONS]`` on a free loopback port, in its own process;
    stopped with SIGINT, as a user stops it (with ``--data``, that saves the world)."""
    port = free_port()
    env = {**os.environ, "QRVEY_BENCH_PROBE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(PROBE_DIR), os.environ.get("PYTHONPATH")]))}
    command = [cli_executable(), "emulator", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--latency-ms", str(latency_ms), "--api-key", api_key, *options]
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    emulator = EmulatorProcess(f"http://127.0.0.1:{port}", api_key, process)
    try:
        _wait_listening(emulator)
        yield emulator
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


def _wait_listening(emulator: EmulatorProcess, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if emulator.process.poll() is not None:
            error = emulator.process.stderr.read().decode() if emulator.process.stderr else ""
            raise SystemExit(f"the emulator exited at start-up:\n{error}")
        try:
            httpx.get(emulator.base_url + LOG_PATH, timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"the emulator did not listen within {timeout} s")


def _is_app_check(method: str, path: str) -> bool:
    return method == "GET" and len(path.strip("/").split("/")) == API_PREFIX_SEGMENTS


def _after_prefix(path: str) -> str:
    segments = path.strip("/").split("/")
    return "/" + "/".join(segments[API_PREFIX_SEGMENTS:])


def call_kind(method: str, path: str) -> str:
    """Name a request by what it does (the client's route names)."""
    parts = path.strip("/").split("/")
    if parts[:2] != ["qollect", "dataset"]:
        return f"{method} {path}"
    rest = parts[2:]
    if not rest:
        return "dataset.create" if method == "POST" else f"{method} /qollect/dataset"
    if rest[0] == "clone":
        return "view.create"
    if rest == ["all"]:
        return "dataset.list"
    if len(rest) == 1:
        return {"GET": "dataset.get", "PUT": "dataset.update", "DELETE": "dataset.delete"}.get(method, method)
    return {"applyChanges": "dataset.apply_changes", "publishVersion": "dataset.publish",
            "load": "dataset.load"}.get(rest[1], rest[1])


def level_bound_s(calls: int, parallelism: int, latency_ms: float) -> float:
    return math.ceil(calls / parallelism) * latency_ms / 1000


@dataclass
class Level:
    name: str
    kinds: tuple[str, ...]


def split_levels(log: list[Request], levels: list[Level]) -> tuple[list[dict], bool]:
    """Count the logged calls of each level, and time each level from its first call to its last.

    A request belongs to the first level that lists its kind. ``ordered`` is True when every
    request of level k arrived before every request of level k+1 (the apply's barrier held).
    """
    counts = [Counter() for _ in levels]
    members: list[list[int]] = [[] for _ in levels]
    for index, request in enumerate(log):
        kind = call_kind(request.method, request.path)
        level = next((i for i, lv in enumerate(levels) if kind in lv.kinds), len(levels) - 1)
        counts[level][kind] += 1
        members[level].append(index)
    spans = [(min(m), max(m)) for m in members if m]
    ordered = all(a[1] < b[0] for a, b in zip(spans, spans[1:]))
    described = []
    for level, count, indexes in zip(levels, counts, members):
        served = [log[i] for i in indexes]
        span = max(r.ended for r in served) - min(r.started for r in served) if served else 0.0
        described.append({"level": level.name, "calls": sum(count.values()), "by_kind": dict(sorted(count.items())),
                          "served_s": round(span, 3)})
    return described, ordered


def errors_in(log: list[Request]) -> int:
    return sum(1 for request in log if request.status >= 400)


def log_span_s(log: list[Request]) -> float:
    """From the first call's arrival to the last call's answer."""
    return max(r.ended for r in log) - min(r.started for r in log) if log else 0.0


def cpu_ticks() -> list[int] | None:
    """The machine's CPU time so far, per state, in clock ticks (Linux /proc/stat; None elsewhere)."""
    try:
        return [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None


STARTED_TICKS = cpu_ticks()     # when the benchmark script started


def steal_share() -> float | None:
    """The share of the machine's CPU time since the script started that the hypervisor gave to
    other guests ("steal", the 8th field of /proc/stat): above a few percent, the figures of
    this run do not compare with those of a quiet one."""
    now = cpu_ticks()
    if STARTED_TICKS is None or now is None or len(now) < 8:
        return None
    spent = [after - before for before, after in zip(STARTED_TICKS, now)]
    return round(spent[7] / sum(spent), 3) if sum(spent) else 0.0


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpus": len(os.sched_getaffinity(0)), "cpu_model": model or platform.processor(),
            "ram_gib": round(memory_gib, 1), "python": platform.python_version(),
            "load_average_1m": round(os.getloadavg()[0], 2), "cpu_steal_share": steal_share()}


def rounded(value: float, digits: int = 3) -> float:
    return round(value, digits)
