"""Deciding, per call, which faults fire: seeded, so the same seed and calls give the same faults."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from qrvey_iac.emulator.faults import ANSWER_KINDS, DELAY_KINDS, LOST_KINDS, REJECT_KINDS, FaultRule, FaultSet


@dataclass
class FaultDecision:
    """What happens to one call."""

    latency_ms: float = 0.0  # latency and late rules: held this long before the handler acts
    outcome: FaultRule | None = None  # a reject or lost rule, or None for a normal answer
    load_fails: bool = False

    @property
    def rejects(self) -> bool:
        return self.outcome is not None and self.outcome.kind in REJECT_KINDS

    @property
    def loses(self) -> bool:
        return self.outcome is not None and self.outcome.kind in LOST_KINDS

    @property
    def garbles(self) -> bool:
        """The handler runs, then its answer is replaced or sent slowly (faults.ANSWER_KINDS)."""
        return self.outcome is not None and self.outcome.kind in ANSWER_KINDS and self.outcome.kind != "endless"

    @property
    def endless(self) -> bool:
        """A listing answered with an empty page and a new cursor, the handler not run."""
        return self.outcome is not None and self.outcome.kind == "endless"


class FaultInjector:
    """Keeps per-rule call counters, the seeded dice and a count of injected faults per kind."""

    def __init__(self, faults: FaultSet | None, seed: int) -> None:
        self.rules = faults.rules if faults is not None else ()
        self.counts: Counter[str] = Counter()
        self._random = random.Random(f"faults/{seed}")
        self._calls = [0] * len(self.rules)

    def decide(self, method: str, path: str) -> FaultDecision:
        decision = FaultDecision()
        for index, rule in enumerate(self.rules):
            if not rule.matches(method, path):
                continue
            if rule.kind == "load-fail" and not _is_load(method, path):
                continue
            if rule.kind == "endless" and not _is_listing(method, path):
                continue
            self._calls[index] += 1
            if self._fires(rule, self._calls[index]):
                self._apply(rule, decision)
        return decision

    def _fires(self, rule: FaultRule, call_number: int) -> bool:
        if rule.first is not None:
            return call_number <= rule.first
        if rule.every is not None:
            return call_number % rule.every == 0
        return rule.probability >= 1.0 or self._random.random() < rule.probability

    def _apply(self, rule: FaultRule, decision: FaultDecision) -> None:
        if rule.kind in DELAY_KINDS:
            jitter = self._random.uniform(-rule.jitter_ms, rule.jitter_ms) if rule.jitter_ms else 0.0
            decision.latency_ms += max(0.0, rule.latency_ms + jitter)
        elif rule.kind == "load-fail":
            decision.load_fails = True
        elif decision.outcome is None:
            decision.outcome = rule
        else:
            return  # an earlier rule already decided this call's outcome
        self.counts[rule.kind] += 1


def _is_load(method: str, path: str) -> bool:
    return method.upper() == "POST" and path.startswith("/qollect/dataset/") and path.endswith("/load")


def _is_listing(method: str, path: str) -> bool:
    return method.upper() == "POST" and path.endswith("/all")
