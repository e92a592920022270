"""Apply through ``qrvey-iac emulator serve`` without and with ``--data``, in one run.

    python bench/serve_data.py --n 1000 --latency-ms 0 --parallelism 16 --repeat 3

Generates N datasets (30 columns) and N/2 views over 3 apps (workload.py; ``--no-views``
for datasets only). Each round runs, in both modes and alternating which goes first,
a fresh ``qrvey-iac emulator serve`` in its own process (``memory``: no data file;
``data``: ``--data FILE``, with ``--save-interval`` if given) and, against it, as
a user would, ``qrvey-iac apply --auto-approve --parallelism P`` on an empty state. The
emulator is stopped with SIGINT after each apply; in ``data`` mode the file it leaves
must hold every object.

Prints one JSON line: per mode the wall seconds of each apply (spawn to exit), the
fastest and the median, the CLI's CPU seconds, the emulator process's CPU seconds and
the calls it served; ``ratio`` = data / memory of the fastest runs, ``ratio_median`` of
the medians; and the data file's size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import emulator_process, machine, rounded, run_cli  # noqa: E402
from workload import Workload, write_config, write_manifests  # noqa: E402

API_KEY = "bench-key"
API_KEY_ENV = "QRVEY_BENCH_API_KEY"
MODES = ("memory", "data")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="qrvey-bench-serve-") as folder:
        root = Path(folder)
        shape = write_manifests(root, args.n, with_views=not args.no_views)
        env = {**os.environ, API_KEY_ENV: API_KEY}
        for repetition in range(args.repeat):
            # both modes in every round, the first one alternating: the machine's load drifts
            for mode in MODES if repetition % 2 == 0 else reversed(MODES):
                runs[mode].append(apply_once(root, args, env, mode, shape))
    memory, data = (summary(runs[mode]) for mode in MODES)
    result = {
        "bench": "serve_data", "n": args.n, "latency_ms": args.latency_ms, "parallelism": args.parallelism,
        "repeat": args.repeat, "save_interval": args.save_interval, "datasets": shape.datasets, "views": shape.views, "objects": shape.objects,
        "memory": memory, "data": data,
        "ratio": rounded(data["wall_s"] / memory["wall_s"], 3),
        "ratio_median": rounded(data["median_wall_s"] / memory["median_wall_s"], 3),
        "machine": machine(),
    }
    print(json.dumps(result, sort_keys=True), flush=True)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="datasets (views: N/2 unless --no-views)")
    parser.add_argument("--no-views", action="store_true", help="datasets only")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="emulator latency per call")
    parser.add_argument("--parallelism", type=int, default=16, help="--parallelism given to the CLI")
    parser.add_argument("--repeat", type=int, default=1, help="rounds (each mode once per round)")
    parser.add_argument("--save-interval", type=float, help="passed to emulator serve in data mode (default: its own)")
    return parser.parse_args(argv)


def apply_once(root: Path, args: argparse.Namespace, env: dict[str, str], mode: str, shape: Workload) -> dict:
    shutil.rmtree(root / "state", ignore_errors=True)
    data = root / "world.json"
    data.unlink(missing_ok=True)
    options = ["--data", str(data)] if mode == "data" else []
    if mode == "data" and args.save_interval is not None:
        options += ["--save-interval", str(args.save_interval)]
    with emulator_process(args.latency_ms, API_KEY, *options) as emulator:
        write_config(root, emulator.base_url, API_KEY_ENV, args.parallelism)
        applied = run_cli(["apply", "--auto-approve", "--parallelism", str(args.parallelism)], root, env)
        applied.check(f"apply ({mode})")
        calls = len(emulator.take_log())
        emulator_cpu = process_cpu_s(emulator.process.pid)
    result = {"wall_s": applied.wall_s, "cpu_s": applied.cpu_s, "emulator_cpu_s": emulator_cpu, "calls": calls}
    if mode == "data":
        saved = json.loads(data.read_text(encoding="utf-8"))
        if len(saved["datasets"]) != shape.objects:
            raise SystemExit(f"the data file holds {len(saved['datasets'])} objects, not {shape.objects}")
        result["data_file_mib"] = data.stat().st_size / 2**20
    return result


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a running process so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(runs: list[dict]) -> dict:
    fastest = min(runs, key=lambda run: run["wall_s"])
    result = {
        "wall_s": rounded(fastest["wall_s"]),
        "median_wall_s": rounded(statistics.median(run["wall_s"] for run in runs)),
        "wall_s_each": [rounded(run["wall_s"]) for run in runs],
        "cpu_s": rounded(fastest["cpu_s"]),
        "emulator_cpu_s": None if fastest["emulator_cpu_s"] is None else rounded(fastest["emulator_cpu_s"]),
        "calls": fastest["calls"],
    }
    if "data_file_mib" in fastest:
        result["data_file_mib"] = rounded(fastest["data_file_mib"], 2)
    return result


if __name__ == "__main__":
    main()
