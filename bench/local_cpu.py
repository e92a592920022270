"""CPU-only figures: ``endpoint: local`` (the in-process emulator, no latency).

    python bench/local_cpu.py --sizes 1000,5000,10000

For each N (``--repeat R`` rounds over all the sizes, keeping the fastest): a fresh project of N datasets
(30 columns each; no views unless ``--views``), then, as a user runs them,

1. ``qrvey-iac apply --auto-approve``: N new datasets;
2. ``qrvey-iac plan --detailed-exitcode``: N unchanged datasets (must exit 0).

With ``endpoint: local`` the emulator runs inside the CLI process and its world is loaded
from and saved to ``state/<env>.emulator.json`` by every command: that is part of the
figures, as it is part of what the user waits for.

Prints one JSON line: per N and command the wall seconds (start-up included), CPU
seconds, peak RSS and milliseconds per object (start-up left out), of the fastest run and,
with ``median_wall_s``, of the median one; and ``growth``: per-object time at the largest N
over the smallest (1.0 is linear, below 1.0 better than linear), from the fastest runs and
(``*_ratio_median``) from the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import Run, cli_startup, machine, rounded, run_cli  # noqa: E402
from workload import Workload, write_config, write_manifests  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    startup: Run | None = None
    measured: dict[int, list[tuple[Run, Run, dict]]] = {n: [] for n in args.sizes}
    shapes: dict[int, Workload] = {}
    # Rounds over every size rather than all repetitions of one size, then the next: a
    # shared machine's load drifts over minutes, and the growth ratio compares sizes.
    for _ in range(args.repeat):
        for n in args.sizes:
            with tempfile.TemporaryDirectory(prefix="qrvey-bench-local-") as folder:
                root = Path(folder)
                shapes[n] = write_manifests(root, n, with_views=args.views)
                write_config(root, "local", None, args.parallelism)
                # sampled in every round, fastest kept: one noisy sample of ~0.3 s moved the
                # per-object time at 1,000 by 15% and the growth ratio with it
                sampled = cli_startup(root)
                startup = sampled if startup is None or sampled.wall_s < startup.wall_s else startup
                measured[n].append(measure(root, n))
    runs = [summary(n, shapes[n], measured[n], startup) for n in args.sizes]
    result = {
        "bench": "local_cpu", "latency_ms": 0, "parallelism": args.parallelism, "repeat": args.repeat,
        "cli_startup_s": rounded(startup.wall_s), "cli_startup_cpu_s": rounded(startup.cpu_s),
        "runs": runs, "growth": growth(runs), "machine": machine(),
    }
    print(json.dumps(result, sort_keys=True), flush=True)
    return result


def measure(root: Path, n: int) -> tuple[Run, Run, dict]:
    apply_run = run_cli(["apply", "--auto-approve"], root).check("apply")
    plan_run = run_cli(["plan", "--detailed-exitcode"], root).check("plan")
    if plan_run.returncode != 0:
        raise SystemExit(f"plan after apply shows changes at N={n}:\n{plan_run.stdout[-2000:]}")
    sizes = {"state_file_mib": (root / "state" / "bench.json").stat().st_size / 2**20,
             "world_file_mib": (root / "state" / "bench.emulator.json").stat().st_size / 2**20}
    return apply_run, plan_run, {k: rounded(v, 4) for k, v in sizes.items()}


def summary(n: int, shape: Workload, measured: list[tuple[Run, Run, dict]], startup: Run) -> dict:
    """The fastest apply and the fastest plan of the repetitions (machines are noisy), and the
    median wall time: the fastest of R favours short runs (a 1.7 s run finds a quiet moment
    more often than a 15 s one), the median does not."""
    result = {"n": n, "objects": shape.objects, "views": shape.views, **measured[-1][2]}
    for index, command in enumerate(("apply", "plan")):
        runs = [m[index] for m in measured]
        fastest = min(runs, key=lambda run: run.wall_s)
        median = statistics.median(run.wall_s for run in runs)
        result[command] = {**figures(fastest, shape.objects, startup), "median_wall_s": rounded(median),
                           "per_object_ms_median": rounded(max(median - startup.wall_s, 0.0) / shape.objects * 1000)}
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=lambda text: [int(x) for x in text.split(",")], default=[1000, 5000, 10000],
                        help="comma-separated N values (datasets)")
    parser.add_argument("--views", action="store_true", help="add N/2 views, as plan_apply.py does")
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=1, help="measure each N this many times, keep the fastest")
    return parser.parse_args(argv)


def figures(run: Run, objects: int, startup: Run) -> dict:
    """Per-object figures leave out the fixed start-up, so they show how the work itself grows."""
    return {"wall_s": rounded(run.wall_s), "cpu_s": rounded(run.cpu_s), "peak_rss_mib": rounded(run.peak_rss_mib, 1),
            "per_object_ms": rounded(max(run.wall_s - startup.wall_s, 0.0) / objects * 1000),
            "per_object_cpu_ms": rounded(max(run.cpu_s - startup.cpu_s, 0.0) / objects * 1000)}


def growth(runs: list[dict]) -> dict:
    """Per-object time (start-up left out) at the largest N over that at the smallest N.

    None when the smallest N took no measurable time beyond start-up (a smoke run's tiny N)."""
    if len(runs) < 2:
        return {}
    small, large = min(runs, key=lambda r: r["n"]), max(runs, key=lambda r: r["n"])
    ratios = {}
    for command in ("apply", "plan"):
        for figure, name in (("per_object_ms", "per_object_ratio"), ("per_object_cpu_ms", "per_object_cpu_ratio"),
                             ("per_object_ms_median", "per_object_ratio_median")):
            before, after = small[command][figure], large[command][figure]
            ratios[f"{command}_{name}"] = rounded(after / before, 2) if before > 0 else None
    return {"from_n": small["n"], "to_n": large["n"], **dict(sorted(ratios.items()))}


if __name__ == "__main__":
    main()
