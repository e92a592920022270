"""The same ``qrvey-iac plan`` run by several copies of the code, interleaved.

    python bench/compare_plan.py --rounds 2 \
        --project 1000=/tmp/proj1k --project 10000=/tmp/proj10k \
        --code before=/tmp/perf-before --code after=$PWD

Each PROJECT is a folder that local_cpu.py's workload would make, already applied
(``endpoint: local``); each CODE a checkout whose ``qrvey_iac`` goes first on PYTHONPATH.
Every round runs every project with every code, one after another, so a drift of a shared
machine's load reaches all of them alike. One JSON line per run: wall seconds (spawn to
exit), CPU seconds and peak RSS of the CLI (os.wait4), the load average after it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import cli_executable  # noqa: E402


def pairs(values: list[str]) -> list[tuple[str, str]]:
    return [tuple(value.split("=", 1)) for value in values]  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--project", action="append", required=True, metavar="N=FOLDER")
    parser.add_argument("--code", action="append", required=True, metavar="NAME=CHECKOUT")
    args = parser.parse_args()
    for round_ in range(args.rounds):
        for n, project in pairs(args.project):
            for name, code in pairs(args.code):
                env = {**os.environ, "PYTHONPATH": code}
                started = time.perf_counter()
                process = subprocess.Popen([cli_executable(), "plan", "--detailed-exitcode"], cwd=project, env=env,
                                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)
                _, status, usage = os.wait4(process.pid, 0)
                print(json.dumps({
                    "round": round_, "n": int(n), "code": name, "exit": os.waitstatus_to_exitcode(status),
                    "wall_s": round(time.perf_counter() - started, 2),
                    "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "peak_rss_mib": usage.ru_maxrss // 1024,
                    "load_average_1m": round(os.getloadavg()[0], 1),
                }), flush=True)


if __name__ == "__main__":
    main()
