"""The engine's progress events (engine.Meter): what a progress bar is told, over fakes."""

from __future__ import annotations

import pytest
from fakes.qrvey import FakeQrvey
from fakes.state import MemoryStateStore

from qrvey_iac.core.errors import ConfigError, Problem
from qrvey_iac.engine import Engine
from tests.unit.test_use_cases import dataset, manifest, view

pytestmark = pytest.mark.anyio


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def started(self, total, what):
        self.events.append(("started", total, what))

    def advanced(self, count=1):
        if count:
            self.events.append(("advanced", count))

    def finished(self):
        self.events.append(("finished",))

    def advanced_total(self) -> int:
        return sum(e[1] for e in self.events if e[0] == "advanced")


async def test_apply_counts_every_step_then_refresh_every_object():
    qrvey, store, meter = FakeQrvey(), MemoryStateStore(), Recorder()
    engine = Engine(qrvey, store, meter=meter)
    wanted = manifest(dataset(), dataset("other", shared=False, display="Other"), view())
    plan, _ = await engine.plan(wanted, store.read(), "test")      # nothing in the state: nothing to count
    assert meter.events == []
    await engine.apply(plan, store.read())
    steps = 4                                                        # 3 creates and a share
    assert meter.events[0] == ("started", steps, "operations") and meter.events[-1] == ("finished",)
    assert meter.advanced_total() == steps
    meter.events.clear()
    await engine.plan(wanted, store.read(), "test")
    assert meter.events[0] == ("started", 3, "objects refreshed") and meter.events[-1] == ("finished",)
    assert meter.advanced_total() == 3


async def test_a_refresh_that_fails_on_the_manifest_still_finishes_the_meter():
    qrvey, store, meter = FakeQrvey(), MemoryStateStore(), Recorder()
    engine = Engine(qrvey, store, meter=meter)
    wanted = manifest(dataset())
    plan, _ = await engine.plan(wanted, store.read(), "test")
    await engine.apply(plan, store.read())
    meter.events.clear()

    async def broken():
        raise ConfigError([Problem("manifests/x.yaml", 1, "spec", "bad")])

    with pytest.raises(ConfigError):
        await engine.refresh_while(store.read(), broken())
    assert meter.events[0] == ("started", 1, "objects refreshed") and meter.events[-1] == ("finished",)
