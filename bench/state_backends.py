"""The same apply and plan with the local state file and with the postgres state backend.

    python bench/state_backends.py --n 1000 --latency-ms 50 --parallelism 16 --repeat 3

Starts one throwaway PostgreSQL server (tests/postgres_server.py: ``initdb`` and ``pg_ctl``
from ``pg_config --bindir``, on a free loopback port) and, per repetition, a fresh
``qrvey-iac emulator serve --latency-ms L`` in its own process. In each repetition the two
backends run one after the other against that emulator, in alternating order (local first in
even repetitions, postgres first in odd ones), each in its own apps so their worlds do not
meet:

1. ``qrvey-iac apply --auto-approve``: N datasets and N/2 views, all new;
2. ``qrvey-iac plan --detailed-exitcode``: nothing to change (must exit 0).

Prints one JSON line: per backend and command the fastest wall seconds (spawn to exit) and
CPU seconds of the CLI, every repetition's wall seconds, and ``ratio`` = postgres / local
of the fastest runs (the target of issue 15: within 1.1x). The DSN's password is the test
server's; nothing prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "tests"))

from measure import emulator_process, machine, rounded, run_cli  # noqa: E402
from workload import write_config, write_manifests  # noqa: E402

API_KEY, API_KEY_ENV, DSN_ENV = "bench-key", "BENCH_API_KEY", "BENCH_STATE_DSN"
BACKENDS = ("local", "postgres")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="datasets (views: N/2)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="emulator latency per call")
    parser.add_argument("--parallelism", type=int, default=16, help="--parallelism given to the CLI")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; the fastest of each is kept")
    return parser.parse_args(argv)


def project(root: Path, backend: str, repetition: int, base_url: str, args: argparse.Namespace) -> Path:
    """A bench project whose apps are its own (ids carry the backend and repetition)."""
    folder = root / f"{backend}-{repetition}"
    folder.mkdir()
    write_manifests(folder, args.n)
    config = write_config(folder, base_url, API_KEY_ENV, args.parallelism)
    text = config.read_text().replace("appId: ", f"appId: {backend}{repetition}-")
    if backend == "postgres":
        text = text.replace("state: {path: state/bench.json}",
                            f"state: {{backend: postgres, dsnEnv: {DSN_ENV}, workspace: bench-{repetition}}}")
        assert "backend: postgres" in text, "workload.write_config changed its state line"
    config.write_text(text)
    return folder


def run(args: argparse.Namespace) -> dict:
    from postgres_server import PostgresServer, find_bindir

    bindir, why = find_bindir()
    if bindir is None:
        raise SystemExit(f"state_backends: {why}")
    server = PostgresServer(bindir)
    server.start()
    env = {**os.environ, API_KEY_ENV: API_KEY, DSN_ENV: server.create_database()}
    flags = ["--parallelism", str(args.parallelism)]
    runs: dict[str, dict[str, list]] = {b: {"apply": [], "plan": []} for b in BACKENDS}
    try:
        with tempfile.TemporaryDirectory(prefix="qrvey-iac-bench-") as tmp:
            for repetition in range(args.repeat):
                order = BACKENDS if repetition % 2 == 0 else tuple(reversed(BACKENDS))
                with emulator_process(args.latency_ms, API_KEY) as emulator:
                    for backend in order:
                        folder = project(Path(tmp), backend, repetition, emulator.base_url, args)
                        applied = run_cli(["apply", "--auto-approve", *flags], folder, env).check(f"{backend} apply")
                        planned = run_cli(["plan", "--detailed-exitcode", *flags], folder, env).check(f"{backend} plan")
                        if planned.returncode != 0:
                            raise SystemExit(f"{backend}: plan after apply shows changes:\n{planned.stdout[-2000:]}")
                        runs[backend]["apply"].append(applied)
                        runs[backend]["plan"].append(planned)
    finally:
        server.stop()
    result: dict = {"bench": "state_backends", "n": args.n, "latency_ms": args.latency_ms,
                    "parallelism": args.parallelism, "repeat": args.repeat}
    for command in ("apply", "plan"):
        figures = {}
        for backend in BACKENDS:
            each = runs[backend][command]
            fastest = min(each, key=lambda r: r.wall_s)
            figures[backend] = {"wall_s": rounded(fastest.wall_s), "cpu_s": rounded(fastest.cpu_s),
                                "peak_rss_mib": rounded(fastest.peak_rss_mib, 1),
                                "wall_s_each": [rounded(r.wall_s) for r in each]}
        figures["ratio"] = rounded(figures["postgres"]["wall_s"] / figures["local"]["wall_s"])
        result[command] = figures
    result["machine"] = machine()
    return result


def main(argv: list[str] | None = None) -> None:
    print(json.dumps(run(parse_args(argv)), sort_keys=True))


if __name__ == "__main__":
    main()
