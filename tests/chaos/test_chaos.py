"""Never duplicate, never lose: apply is SIGKILLed at seeded random moments while the
emulator injects 5xx, 429 and committed-but-lost answers; it is rerun until it
converges, and the invariants are checked after every run (see chaos_harness.py).

The default run is a short version; ``pytest -m chaos -s`` runs >= 200 kill points and
prints the figures.
"""

from __future__ import annotations

import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from chaos_harness import (
    FAULT_MIX, Emulator, Figures, Project, converge_with_kills, generated_manifests, plan_is_empty,
)

from qrvey_iac.adapters.state.local import LocalStateStore

APPLY = ("apply", "--auto-approve")
DESTROY = ("destroy", "--auto-approve")
# (what the episode does, the generated manifests' variant (None: none), the command)
EPISODES = (("create everything", 0, APPLY), ("change a mix", 1, APPLY), ("change it back", 0, APPLY),
            ("remove the generated set", None, APPLY), ("create everything", 0, APPLY),
            ("destroy everything", 0, DESTROY))


def run_lane(folder: Path, *, datasets: int, views: int, kill_points: int, kills_per_episode: int,
             window: tuple[float, float], writes: int, seed: int) -> Figures:
    """One emulator and one project: episodes of manifest changes, each applied under kills."""
    rng = random.Random(seed)
    figures = Figures()
    with Emulator(folder / "world.json", FAULT_MIX, seed=seed) as emulator:
        project = Project(folder / "project", emulator)
        while figures.kill_points < kill_points:
            what, variant, command = EPISODES[figures.episodes % len(EPISODES)]
            text = "" if variant is None else generated_manifests(datasets, views, variant=variant)
            project.write_manifest("generated.yaml", text)
            figures.episodes += 1
            converge_with_kills(project, rng, figures, kills=kills_per_episode, window=window, writes=writes,
                                command=command)
            state = LocalStateStore(project.state_path).read()
            assert state.journal == (), f"{what}: journal left after exit 0"
            if command == DESTROY:
                assert (state.resources, emulator.datasets()) == ({}, {}), f"{what}: objects left"
            else:
                plan = plan_is_empty(project, figures)
                assert plan.code == 0, f"{what}: the plan after a converged apply is not empty:\n{plan.stdout[-3000:]}"
            figures.converged += 1
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


def report(figures: Figures, datasets: int, views: int) -> str:
    return (f"\nchaos: {datasets} generated datasets + {views} views + the 10 examples; faults {FAULT_MIX!r}\n"
            f"chaos: {figures.line()} in {figures.seconds:.0f}s\n"
            + "".join(f"chaos: a run gave up:\n{text}\n" for text in figures.give_up_reports[:3]))


def assert_clean(figures: Figures) -> None:
    assert figures.problems == []
    assert (figures.duplicates, figures.untracked, figures.unreadable, figures.shared_ids, figures.leaks) == (0,) * 5
    assert figures.converged == figures.episodes


def test_short_chaos_run_converges_without_duplicates(tmp_path):
    figures = run_chaos(tmp_path, kill_points=5, seed=7, datasets=10, views=10, kills_per_episode=3,
                        window=(0, 0), writes=12)
    print(report(figures, 10, 10), file=sys.__stdout__)   # lanes' CliRunners may leave sys.stdout swapped
    assert_clean(figures)
    assert figures.kill_points >= 5 and figures.in_flight >= 1


@pytest.mark.chaos
def test_chaos_200_kill_points(tmp_path):
    figures = run_chaos(tmp_path, lanes=4, kill_points=200, seed=2024, datasets=50, views=50,
                        kills_per_episode=6, window=(0.6, 5.5), writes=60)
    print(report(figures, 50, 50), file=sys.__stdout__)
    assert_clean(figures)
    assert figures.kill_points >= 200
