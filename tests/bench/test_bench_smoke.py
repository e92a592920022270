"""Smoke runs of the benchmark scripts: tiny N, every field present and sane.

No timing is asserted (machines are noisy); what is checked is what a broken benchmark
would get wrong: the JSON shape, the call counts the emulator saw, the bound computed
from them, and that the CLI really ran (exit codes, RSS, convergence).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
MACHINE_FIELDS = {"cpus", "cpu_model", "ram_gib", "python", "load_average_1m"}


def run_script(name: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, str(BENCH / name), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got {len(lines)}: {done.stdout[:500]}"
    return json.loads(lines[0])


def positive(value) -> bool:
    return isinstance(value, (int, float)) and value > 0


@pytest.fixture(scope="module")
def http_figures() -> dict:
    return run_script("plan_apply.py", "--n", "12", "--latency-ms", "5", "--parallelism", "4")


def test_plan_apply_reports_every_field(http_figures):
    fields = {"bench", "n", "latency_ms", "parallelism", "repeat", "datasets", "views", "shared", "objects",
              "cli_startup_s", "apply", "plan", "machine"}
    assert fields <= http_figures.keys()
    assert http_figures["bench"] == "plan_apply"
    assert (http_figures["n"], http_figures["latency_ms"], http_figures["parallelism"]) == (12, 5.0, 4)
    assert MACHINE_FIELDS <= http_figures["machine"].keys()
    assert positive(http_figures["cli_startup_s"])
    phase_fields = {"wall_s", "wall_s_each", "wall_minus_startup_s", "cpu_s", "bound_s", "bound_counts", "ratio",
                    "http_span_s", "outside_http_s", "calls", "http_errors", "levels", "levels_in_order",
                    "peak_rss_mib", "baseline", "speedup"}
    for name in ("apply", "plan"):
        phase = http_figures[name]
        assert phase_fields <= phase.keys(), name
        assert all(positive(phase[k]) for k in ("wall_s", "cpu_s", "bound_s", "ratio", "peak_rss_mib", "speedup"))
        assert phase["ratio"] == pytest.approx(phase["wall_s"] / phase["bound_s"], rel=0.01)
        assert phase["ratio"] >= 1, "nothing finishes faster than its latency bound"
        assert 10 < phase["peak_rss_mib"] < 4096
        assert phase["http_errors"] == 0 and phase["levels_in_order"] is True
        assert phase["baseline"]["calls"] == phase["calls"]
        assert phase["speedup"] == pytest.approx(phase["baseline"]["wall_s"] / phase["wall_s"], rel=0.02, abs=0.01)


def test_plan_apply_counts_the_calls_the_workload_needs(http_figures):
    n, views, shared = 12, 6, 3
    assert (http_figures["datasets"], http_figures["views"], http_figures["shared"]) == (n, views, shared)
    renamed = (views + 1) // 2        # every other view renames a column: clone + GET + PUT + applyChanges
    levels = {level["level"]: level for level in http_figures["apply"]["levels"]}
    assert levels["survey"]["by_kind"] == {"dataset.list": 3}   # each app the creates go to, listed once
    assert levels["datasets"]["by_kind"] == {"dataset.create": n}
    assert levels["shares"]["by_kind"] == {"dataset.publish": shared}
    assert levels["views"]["by_kind"] == {"view.create": views, "dataset.get": renamed,
                                          "dataset.update": renamed, "dataset.apply_changes": renamed}
    bound = sum(math.ceil(level["calls"] / 4) * 0.005 for level in levels.values())
    assert http_figures["apply"]["bound_s"] == pytest.approx(bound, abs=0.002)
    plan = http_figures["plan"]
    view_apps = 3                   # every app holds a view: each is listed once (one page)
    assert plan["calls"] == n + views + view_apps
    assert plan["levels"][0]["by_kind"] == {"dataset.get": n + views, "dataset.list": view_apps}
    assert plan["bound_s"] == pytest.approx(math.ceil((n + views + view_apps) / 4) * 0.005, abs=0.001)


def test_local_cpu_reports_every_field_and_the_growth():
    figures = run_script("local_cpu.py", "--sizes", "8,16", "--repeat", "2")
    assert {"bench", "latency_ms", "parallelism", "repeat", "cli_startup_s", "cli_startup_cpu_s", "runs", "growth",
            "machine"} <= figures.keys()
    assert figures["bench"] == "local_cpu" and figures["latency_ms"] == 0
    assert MACHINE_FIELDS <= figures["machine"].keys()
    assert [run["n"] for run in figures["runs"]] == [8, 16]
    for run in figures["runs"]:
        assert run["objects"] == run["n"] and run["views"] == 0
        assert run["state_file_mib"] > 0 and run["world_file_mib"] > 0
        for command in ("apply", "plan"):
            result = run[command]
            assert {"wall_s", "cpu_s", "peak_rss_mib", "per_object_ms", "per_object_cpu_ms"} <= result.keys()
            assert positive(result["wall_s"]) and positive(result["cpu_s"]) and 10 < result["peak_rss_mib"] < 4096
            assert result["per_object_ms"] >= 0 and result["per_object_cpu_ms"] >= 0
            assert result["median_wall_s"] >= result["wall_s"] and result["per_object_ms_median"] >= result["per_object_ms"]
    growth = figures["growth"]
    assert (growth["from_n"], growth["to_n"]) == (8, 16)
    assert {"apply_per_object_ratio", "plan_per_object_ratio", "apply_per_object_cpu_ratio",
            "plan_per_object_cpu_ratio", "apply_per_object_ratio_median", "plan_per_object_ratio_median"} <= growth.keys()


def test_serve_data_reports_both_modes_and_their_ratio():
    figures = run_script("serve_data.py", "--n", "6", "--repeat", "2")
    assert {"bench", "n", "latency_ms", "parallelism", "repeat", "datasets", "views", "objects", "memory", "data",
            "ratio", "ratio_median", "machine"} <= figures.keys()
    assert figures["bench"] == "serve_data" and (figures["datasets"], figures["views"]) == (6, 3)
    assert MACHINE_FIELDS <= figures["machine"].keys()
    calls = 3 + 6 + 2 + 3 + 2 * 3    # 3 apps listed; creates, shares, view clones; get + put + applyChanges
                                     # for 2 of the 3 views
    for mode in ("memory", "data"):
        result = figures[mode]
        assert len(result["wall_s_each"]) == 2 and result["wall_s"] == min(result["wall_s_each"])
        assert positive(result["median_wall_s"]) and positive(result["cpu_s"]) and positive(result["emulator_cpu_s"])
        assert result["calls"] == calls
    assert figures["data"]["data_file_mib"] > 0 and "data_file_mib" not in figures["memory"]
    assert figures["ratio"] == pytest.approx(figures["data"]["wall_s"] / figures["memory"]["wall_s"], rel=0.01)


def test_state_backends_runs_both_backends_and_compares_them():
    """Each backend applied and planned (the script exits non-zero when a plan after apply
    shows changes), with the ratio computed from the figures it prints."""
    from postgres_server import find_bindir, unavailable

    if find_bindir()[0] is None:
        unavailable(find_bindir()[1])
    figures = run_script("state_backends.py", "--n", "4", "--latency-ms", "1", "--parallelism", "4", "--repeat", "1")
    assert figures["bench"] == "state_backends" and figures["repeat"] == 1
    assert MACHINE_FIELDS <= figures["machine"].keys()
    for command in ("apply", "plan"):
        phase = figures[command]
        for backend in ("local", "postgres"):
            assert len(phase[backend]["wall_s_each"]) == 1
            assert phase[backend]["wall_s"] == min(phase[backend]["wall_s_each"])
            assert positive(phase[backend]["cpu_s"]) and 10 < phase[backend]["peak_rss_mib"] < 4096
        assert phase["ratio"] == pytest.approx(phase["postgres"]["wall_s"] / phase["local"]["wall_s"], rel=0.01)
