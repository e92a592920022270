"""Apply and plan at scale over real HTTP, against the emulator in its own process.

    python bench/plan_apply.py --n 1000 --latency-ms 50 --parallelism 16

Generates N datasets (30 columns) and N/2 views over 3 apps (see workload.py), starts
``qrvey-iac emulator serve --latency-ms L`` in its own process, then runs, as a user would:

1. ``qrvey-iac apply --auto-approve --parallelism P``: everything is new;
2. ``qrvey-iac plan --detailed-exitcode --parallelism P``: nothing to change, N + N/2 in state;
3. the sequential baseline (baseline.py): the same calls, one after another, with httpx.

Prints one JSON line. For each phase: ``wall_s`` (spawn to exit, start-up included),
``bound_s`` = sum over dependency levels of ceil(calls in level / P) * L with the calls
counted by the emulator (bench/probe: a request log inside the emulator process),
``ratio`` = wall / bound, the CLI's ``cpu_s`` and ``peak_rss_mib`` (os.wait4), the time the
emulator was serving (``http_span_s``, per level ``served_s``) and the rest
(``outside_http_s``: start-up, manifests, planning, exit), and the baseline's seconds and
the speedup over it. ``cli_startup_s`` is the fastest of 3 ``qrvey-iac --version``.
``--repeat R`` runs apply and plan R times (a fresh emulator each) and keeps the fastest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline import sequential_reads, sequential_writes  # noqa: E402
from measure import (  # noqa: E402
    Level, cli_startup_s, emulator_process, errors_in, level_bound_s, log_span_s, machine, rounded, run_cli,
    split_levels,
)
from workload import write_config, write_manifests  # noqa: E402

API_KEY = "bench-key"
API_KEY_ENV = "QRVEY_BENCH_API_KEY"
APPLY_LEVELS = [
    # before planning creates, each app they go to is listed once, for objects already carrying
    # their marker (a lost state imports them rather than create them again)
    Level("survey", ("dataset.list",)),
    Level("datasets", ("dataset.create",)),
    Level("shares", ("dataset.publish",)),
    Level("views", ("view.create", "dataset.get", "dataset.update", "dataset.apply_changes")),
]
PLAN_LEVELS = [Level("refresh", ("dataset.get", "dataset.list"))]


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="qrvey-bench-") as folder:
        result = run(Path(folder), args)
    print(json.dumps(result, sort_keys=True), flush=True)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="datasets (views: N/2)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="emulator latency per call")
    parser.add_argument("--parallelism", type=int, default=16, help="--parallelism given to the CLI")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run apply and plan this many times (fresh emulator each) and keep the fastest")
    parser.add_argument("--no-baseline", action="store_true", help="skip the sequential baseline")
    return parser.parse_args(argv)


def run(root: Path, args: argparse.Namespace) -> dict:
    shape = write_manifests(root, args.n)
    env = {**os.environ, API_KEY_ENV: API_KEY}
    flags = ["--parallelism", str(args.parallelism)]
    applies, plans, baseline, startup = [], [], None, None
    for repetition in range(args.repeat):
        shutil.rmtree(root / "state", ignore_errors=True)
        with emulator_process(args.latency_ms, API_KEY) as emulator:     # a fresh, empty Qrvey each time
            write_config(root, emulator.base_url, API_KEY_ENV, args.parallelism)
            if startup is None:
                startup = cli_startup_s(root)
            emulator.take_log()
            applied = run_cli(["apply", "--auto-approve", *flags], root, env).check("apply")
            applies.append((applied, emulator.take_log()))
            planned = run_cli(["plan", "--detailed-exitcode", *flags], root, env).check("plan")
            plans.append((planned, emulator.take_log()))
            if plans[-1][0].returncode != 0:
                raise SystemExit(f"plan after apply shows changes:\n{plans[-1][0].stdout[-2000:]}")
            if repetition == args.repeat - 1 and not args.no_baseline:
                baseline = {"plan": sequential_reads(emulator.base_url, API_KEY, root / "state" / "bench.json"),
                            "apply": sequential_writes(emulator.base_url, API_KEY, shape)}
    common = {"n": args.n, "latency_ms": args.latency_ms, "parallelism": args.parallelism}
    return {
        "bench": "plan_apply", **common, "repeat": args.repeat,
        "datasets": shape.datasets, "views": shape.views, "shared": shape.shared, "objects": shape.objects,
        "cli_startup_s": rounded(startup),
        "apply": phase(applies, APPLY_LEVELS, args, baseline and baseline["apply"], startup),
        "plan": phase(plans, PLAN_LEVELS, args, baseline and baseline["plan"], startup,
                      bound_counts="one GET per object in state: N datasets + N/2 views; a listing per app holding a view"),
        "machine": machine(),
    }


def phase(runs, levels, args, baseline, startup, bound_counts=None) -> dict:
    """Figures of the fastest repetition (machines are noisy; the bound is not)."""
    run, log = min(runs, key=lambda pair: pair[0].wall_s)
    described, ordered = split_levels(log, levels)
    for level in described:
        level["bound_s"] = rounded(level_bound_s(level["calls"], args.parallelism, args.latency_ms))
    bound = sum(level["bound_s"] for level in described)
    result = {
        "wall_s": rounded(run.wall_s),
        "wall_s_each": [rounded(r.wall_s) for r, _ in runs],
        "wall_minus_startup_s": rounded(run.wall_s - startup),
        "cpu_s": rounded(run.cpu_s),
        "bound_s": rounded(bound),
        "bound_counts": bound_counts or "HTTP calls per dependency level, counted by the emulator",
        "ratio": rounded(run.wall_s / bound) if bound else None,
        "http_span_s": rounded(log_span_s(log)),
        "outside_http_s": rounded(run.wall_s - log_span_s(log)),
        "calls": len(log),
        "http_errors": errors_in(log),
        "levels": described,
        "levels_in_order": ordered,
        "peak_rss_mib": rounded(run.peak_rss_mib, 1),
    }
    if baseline is not None:
        seconds, calls = baseline
        result["baseline"] = {"wall_s": rounded(seconds), "calls": calls,
                              "kind": "sequential httpx, one call at a time"}
        result["speedup"] = rounded(seconds / run.wall_s, 2)
    return result


if __name__ == "__main__":
    main()
