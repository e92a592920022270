"""Never duplicate, never lose: apply is SIGKILLed at seeded random moments while the
emulator injects 5xx, 429 and committed-but-lost answers; it is rerun until it
converges, and the invariants are checked after every run (see chaos_harness.py).

The default run is a short version; ``pytest -m chaos -s`` runs >= 200 kill points and
prints the figures. Each runs with the state in a local file and in PostgreSQL.
"""

from __future__ import annotations

import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from chaos_harness import (
    BACKENDS, FAULT_MIX, LATE_MIX, LATE_SECONDS, LATE_TIMEOUT, Emulator, Figures, Project, check_invariants,
    converge_with_kills, generated_manifests, plan_is_empty,
)

APPLY = ("apply", "--auto-approve")
DESTROY = ("destroy", "--auto-approve")
# (what the episode does, the generated manifests' variant (None: none), the command)
EPISODES = (("create everything", 0, APPLY), ("change a mix", 1, APPLY), ("change it back", 0, APPLY),
            ("remove the generated set", None, APPLY), ("create everything", 0, APPLY),
            ("destroy everything", 0, DESTROY))


def run_lane(folder: Path, *, datasets: int, views: int, kill_points: int, kills_per_episode: int,
             window: tuple[float, float], writes: int, seed: int, faults: str = FAULT_MIX,
             request_timeout: float | None = None, plan_between: bool = False, backend: str = "local") -> Figures:
    """One emulator and one project: episodes of manifest changes, each applied under kills
    (with ``plan_between``, a plan, itself sometimes killed, after each killed apply)."""
    rng = random.Random(seed)
    figures = Figures()
    emulator = Emulator(folder / "world.json", faults, seed=seed)
    with emulator:
        project = Project(folder / "project", emulator, request_timeout=request_timeout, backend=backend)
        while figures.kill_points < kill_points:
            what, variant, command = EPISODES[figures.episodes % len(EPISODES)]
            text = "" if variant is None else generated_manifests(datasets, views, variant=variant)
            project.write_manifest("generated.yaml", text)
            figures.episodes += 1
            converge_with_kills(project, rng, figures, kills=kills_per_episode, window=window, writes=writes,
                                command=command, plan_between=plan_between)
            state = project.read_state()
            assert state.journal == (), f"{what}: journal left after exit 0"
            if command == DESTROY:
                assert (state.resources, emulator.datasets()) == ({}, {}), f"{what}: objects left"
            else:
                plan = plan_is_empty(project, figures)
                assert plan.code == 0, f"{what}: the plan after a converged apply is not empty:\n{plan.stdout[-3000:]}"
            figures.converged += 1
        if "late=" in faults:
            time.sleep(LATE_SECONDS + 0.5)           # every late write has landed (or been refused) now
            figures.record(check_invariants(project), "after the last late landing")
    figures.late = emulator.fault_counts().get("late", 0)
    return figures


def run_chaos(folder: Path, *, lanes: int = 1, kill_points: int, seed: int, **options) -> Figures:
    """``lanes`` independent emulator+project pairs side by side (the work is in subprocesses)."""
    started = time.monotonic()
    share = -(-kill_points // lanes)
    with ThreadPoolExecutor(lanes) as pool:
        futures = [pool.submit(run_lane, folder / f"lane{lane}", kill_points=share, seed=seed + lane, **options)
                   for lane in range(lanes)]
        results = [future.result() for future in futures]
    figures = Figures()
    for result in results:
        figures.merge(result)
    figures.seconds = time.monotonic() - started
    return figures


# The short runs take a minute or two each: with the postgres backend they run under -m slow
# (the default suite has them once, on the local file; the -m chaos runs take both backends).
SHORT_RUN_BACKENDS = ["local", pytest.param("postgres", marks=pytest.mark.slow)]


def report(figures: Figures, datasets: int, views: int, faults: str = FAULT_MIX) -> str:
    return (f"\nchaos: {datasets} generated datasets + {views} views + the 10 examples; faults {faults!r}\n"
            f"chaos: {figures.line()} in {figures.seconds:.0f}s\n"
            + "".join(f"chaos: a run gave up:\n{text}\n" for text in figures.give_up_reports[:3]))


def assert_clean(figures: Figures) -> None:
    assert figures.problems == []
    assert (figures.duplicates, figures.untracked, figures.unreadable, figures.shared_ids, figures.leaks) == (0,) * 5
    assert figures.converged == figures.episodes


@pytest.mark.parametrize("backend", SHORT_RUN_BACKENDS)
def test_short_chaos_run_converges_without_duplicates(tmp_path, backend):
    figures = run_chaos(tmp_path, kill_points=5, seed=7, datasets=10, views=10, kills_per_episode=3,
                        window=(0, 0), writes=12, backend=backend)
    print(report(figures, 10, 10), file=sys.__stdout__)   # lanes' CliRunners may leave sys.stdout swapped
    assert_clean(figures)
    assert figures.kill_points >= 5 and figures.in_flight >= 1


@pytest.mark.chaos
@pytest.mark.parametrize("backend", BACKENDS)
def test_chaos_200_kill_points(tmp_path, backend):
    figures = run_chaos(tmp_path, lanes=4, kill_points=200, seed=2024, datasets=50, views=50,
                        kills_per_episode=6, window=(0.6, 5.5), writes=60, backend=backend)
    print(report(figures, 50, 50), file=sys.__stdout__)
    assert_clean(figures)
    assert figures.kill_points >= 200


LATE = {"faults": LATE_MIX, "request_timeout": LATE_TIMEOUT, "plan_between": True}


@pytest.mark.slow        # ~35 s: kept out of the default suite, which must stay under 10 minutes in CI
@pytest.mark.parametrize("backend", SHORT_RUN_BACKENDS)
def test_short_late_landing_chaos_run(tmp_path, backend):
    """Writes landing after the client's timeout, kills between apply, plan and apply."""
    figures = run_chaos(tmp_path, kill_points=4, seed=12, datasets=8, views=8, kills_per_episode=2,
                        window=(0, 0), writes=10, backend=backend, **LATE)
    print(report(figures, 8, 8, LATE_MIX), file=sys.__stdout__)
    assert_clean(figures)
    assert figures.kill_points >= 4 and figures.plans_between >= 4


@pytest.mark.chaos
@pytest.mark.parametrize("backend", BACKENDS)
def test_chaos_late_landings_200_kill_points(tmp_path, backend):
    figures = run_chaos(tmp_path, lanes=4, kill_points=200, seed=4242, datasets=30, views=30,
                        kills_per_episode=6, window=(0.6, 5.5), writes=50, backend=backend, **LATE)
    print(report(figures, 30, 30, LATE_MIX), file=sys.__stdout__)
    assert_clean(figures)
    assert figures.kill_points >= 200 and figures.plans_between >= 200 and figures.late > 0
