"""The progress output without a screenshot: the refresh of 1,000 datasets, its stderr on a
pseudo-terminal (a moving count, redrawn in place) and on a pipe (plain lines).

The objects are served over real HTTP with 20 ms per read, as a real Qrvey answers: in
process, the emulator answers every read in the same few turns of the event loop, so there
is nothing to watch move.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from qrvey_iac.emulator import EmulatorConfig, parse_faults
from qrvey_iac.emulator.injector import FaultInjector
from qrvey_iac.emulator.testing import running_server

REPO = Path(__file__).resolve().parents[2]
KEY = "progress-key"
DATASETS = 1000


def write_project(root: Path, base_url: str) -> None:
    (root / "manifests").mkdir()
    documents = [
        "apiVersion: qrvey-iac/v1\nkind: Dataset\n"
        f"metadata: {{name: ds-{i}}}\nspec:\n  app: sales\n  name: DS {i}\n"
        "  datasources:\n    - {name: Main, connectionId: c1, connectorType: MSSQL_LIVE, database: shop, "
        f"tableName: t{i}}}\n  columns:\n    - {{columnName: Total, columnType: NUMBER}}\n"
        for i in range(DATASETS)
    ]
    for start in range(0, DATASETS, 100):
        (root / "manifests" / f"part-{start // 100:02d}.yaml").write_text("---\n".join(documents[start:start + 100]))
    (root / "qrvey-iac.yaml").write_text(
        "manifests: manifests\ndefaultEnvironment: big\nenvironments:\n  big:\n"
        f"    endpoint: {base_url}\n    apiKeyEnv: QI_PROGRESS_KEY\n"
        "    apps:\n      sales: {userId: u1, appId: a1}\n")


def environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("NO_COLOR", "TERM", "CI")}
    return {**env, "PYTHONPATH": str(REPO), "QI_PROGRESS_KEY": KEY, "TERM": "xterm", **extra}


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """1,000 datasets applied; every later read of one takes 20 ms (2 s for the refresh, 10 at a time)."""
    root = tmp_path_factory.mktemp("big")
    with running_server(EmulatorConfig(api_key=KEY)) as server:
        write_project(root, server.base_url)
        applied = subprocess.run([sys.executable, "-m", "qrvey_iac", "apply", "--auto-approve", "--parallelism", "32"],
                                 cwd=root, env=environment(), capture_output=True, text=True, timeout=600)
        assert applied.returncode == 0, applied.stderr[-3000:]
        server.emulator.injector = FaultInjector(parse_faults("GET /qollect/dataset/*: latency=20ms"), 0)
        yield root


def plan_on_a_terminal(root: Path) -> tuple[str, str]:
    """``qrvey-iac plan`` with stderr on a pseudo-terminal, stdout on a pipe (as ``plan > plan.md``)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "qrvey_iac", "plan"], cwd=root, env=environment(),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal)
    os.close(terminal)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:          # EIO: the process closed its end
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    stdout = process.stdout.read().decode()
    assert process.wait(timeout=120) == 0, seen.decode(errors="replace")[-3000:]
    return stdout, seen.decode()


def test_on_a_terminal_the_refresh_shows_a_moving_count(big):
    stdout, stderr = plan_on_a_terminal(big)
    assert stdout.startswith("No changes."), stdout
    counts = [int(n) for n in re.findall(r"\robjects refreshed \[[#-]{24}\] +(\d+)/1000  \d+%", stderr)]
    moving = [n for n in counts if 0 < n < DATASETS]
    assert len(set(moving)) >= 5, counts                    # seen at five points at least on the way
    assert counts == sorted(counts)                         # it only goes forward
    assert re.search(r"\d+/s  \d+s left", stderr)           # a rate and the time left, once there is a rate
    # the counter blanked, then the closing line, and nothing drawn after it (the pty writes \n as \r\n)
    assert re.search(r"\r +\r\[ *\d+\.\ds\] Refreshed 1000 objects \(\d+\.\ds\)\r\n\Z", stderr), stderr[-500:]
    assert "\x1b" not in stderr                             # no colour, no escape sequence


def test_on_a_pipe_the_refresh_prints_plain_lines(big):
    done = subprocess.run([sys.executable, "-m", "qrvey_iac", "plan"], cwd=big, env=environment(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "\x1b" not in done.stderr
    lines = done.stderr.splitlines()
    assert any(re.fullmatch(r"\[ *\d+\.\ds\] Refreshing 1000 objects\.\.\.", line) for line in lines), lines
    assert re.fullmatch(r"\[ *\d+\.\ds\] Refreshed 1000 objects \(\d+\.\ds\)", lines[-1]), lines
    counted = [line for line in lines if re.fullmatch(r"  \d+ of 1000 objects refreshed \(\d+%, \d+/s\)", line)]
    assert len(lines) == 2 + len(counted), lines             # a count line at most every 5 s (test_cli_progress)
