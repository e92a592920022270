"""plan and drift run with the cyclic collector paused (adapters/runtime.large_batch): that is
only safe while reading and planning leave no reference cycles behind that grow with the
number of objects. httpx left one per response (24 objects, the body included) until the
client broke it; this catches any such cycle coming back."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from qrvey_iac.adapters.runtime import large_batch
from qrvey_iac.cli import cli
from qrvey_iac.emulator import World

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from workload import write_config, write_manifests  # noqa: E402


def reachable(root: object) -> set[int]:
    seen, stack = set(), [root]
    while stack:
        obj = stack.pop()
        if id(obj) not in seen:
            seen.add(id(obj))
            stack.extend(gc.get_referents(obj))
    return seen


def run(root: Path, *args: str):
    return CliRunner().invoke(cli, [*args, "--config", str(root / "qrvey-iac.yaml")], catch_exceptions=False)


def project(root: Path, datasets: int) -> Path:
    write_manifests(root, datasets, with_views=True)
    write_config(root, "local", None, 4)
    done = run(root, "apply", "--auto-approve")
    assert done.exit_code == 0, done.output
    return root


def cyclic_garbage(root: Path, command: str) -> int:
    """How many objects only the cyclic collector could free after one ``command``.

    The in-process emulator's world does not count: Starlette's routing is cyclic, so the
    collector frees the world with the app, once per command, not once per response."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)      # keep what is found unreachable, to count it
    try:
        done = run(root, command)
        assert done.exit_code == 0, done.output
        gc.collect()
        worlds = set().union(*(reachable(obj) for obj in gc.garbage if isinstance(obj, World)))
        return sum(id(obj) not in worlds for obj in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


@pytest.mark.parametrize("command", ["plan", "drift"])
def test_reading_and_planning_leave_no_cycles_that_grow_with_the_objects(tmp_path, command):
    small = project(tmp_path / "small", 8)      # 8 datasets + 4 views
    large = project(tmp_path / "large", 40)     # 40 datasets + 20 views
    cyclic_garbage(small, command)              # warm-up: first-use caches (imports, pydantic) settle
    before, after = cyclic_garbage(small, command), cyclic_garbage(large, command)
    # 48 more GETs: with one cycle per response this grew by 24 x 48 = 1,152 objects
    assert after - before < 48, (before, after)


def test_a_large_batch_pauses_the_collector_and_restores_it_even_on_an_error():
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with large_batch():
            assert not gc.isenabled()
            raise RuntimeError("a failed command")
    assert gc.isenabled()
    gc.disable()                        # already off (a caller's choice): left off
    try:
        with large_batch():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
