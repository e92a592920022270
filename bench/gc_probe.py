"""Where the cyclic collector's time goes in one ``plan``, run in this process.

    cd PROJECT && python /path/to/bench/gc_probe.py [--paused]

PROJECT as for compare_plan.py (applied, ``endpoint: local``). Without ``--paused`` the
plan runs with Python's default collector; with it, inside adapters/runtime.large_batch as
the CLI runs it. Prints one JSON line: wall and CPU seconds of the plan, and per generation
the collections, their CPU seconds (gc.callbacks) and the objects they found unreachable.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import time
from collections import defaultdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paused", action="store_true", help="as the CLI runs plan (large_batch)")
    args = parser.parse_args()
    seconds: dict[int, float] = defaultdict(float)
    runs: dict[int, int] = defaultdict(int)
    found: dict[int, int] = defaultdict(int)
    started: list[float] = []

    def timed(phase: str, info: dict) -> None:
        if phase == "start":
            started.append(time.process_time())
            return
        generation = info["generation"]
        seconds[generation] += time.process_time() - started.pop()
        runs[generation] += 1
        found[generation] += info["collected"]

    from qrvey_iac import cli
    if not args.paused:
        cli.large_batch = contextlib.nullcontext     # the plan command looks it up in cli's namespace
    gc.callbacks.append(timed)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        with contextlib.redirect_stdout(io.StringIO()):     # the plan itself: not this script's output
            cli.cli(["plan", "--detailed-exitcode"], prog_name="qrvey-iac", standalone_mode=False)
    finally:
        gc.callbacks.remove(timed)
    print(json.dumps({
        "collector": "paused" if args.paused else "default",
        "wall_s": round(time.perf_counter() - wall, 2), "cpu_s": round(time.process_time() - cpu, 2),
        "collections": {g: runs[g] for g in sorted(runs)},
        "collection_s": {g: round(seconds[g], 2) for g in sorted(seconds)},
        "unreachable_found": {g: found[g] for g in sorted(found)},
    }))


if __name__ == "__main__":
    main()
