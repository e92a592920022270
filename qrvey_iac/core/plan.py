"""Plans: frozen values built by a pure function, executed level by level."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from qrvey_iac.core.diff import FieldChange, canonical_hash
from qrvey_iac.core.graph import topo_levels

PLAN_FORMAT_VERSION = 1
Op = Literal["create", "update", "replace", "delete", "share", "unshare", "no-op"]
CHANGING_OPS = ("create", "update", "replace", "delete", "share", "unshare")
ABSENT = "absent"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AppTarget(Frozen):
    alias: str
    userId: str
    appId: str


class Action(Frozen):
    """One thing apply will do to one resource, and why."""

    op: Op
    address: str
    kind: Literal["Dataset", "DatasetView"]
    reason: str
    drift: bool = False
    changes: tuple[FieldChange, ...] = ()
    app: AppTarget | None = None
    dataset_id: str | None = None
    desired: dict[str, Any] | None = None       # the managed document to converge to
    source: dict[str, str] | None = None        # views: {"address"} or {appId, userId, datasetId}
    depends_on: tuple[str, ...] = ()
    protect: bool = False

    @property
    def changing(self) -> bool:
        return self.op in CHANGING_OPS


class Plan(Frozen):
    format_version: Literal[1] = PLAN_FORMAT_VERSION
    environment: str = ""
    lineage: str = ""
    serial: int = 0
    manifest_digest: str = ""
    fingerprints: dict[str, str] = {}
    refresh_only: bool = False
    notes: tuple[str, ...] = ()                 # what --target/--exclude pulled in or left out
    seals: dict[str, str] = {}                  # address -> salted digest of a secret-bearing document
    seal_nonce: str = ""
    actions: tuple[Action, ...] = ()

    @property
    def changes(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.changing)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def summary(self) -> dict[str, int]:
        counts = {op: 0 for op in CHANGING_OPS}
        for action in self.changes:
            counts[action.op] += 1
        return counts


def fingerprint(live: Mapping[str, Any] | None) -> str:
    return ABSENT if live is None else canonical_hash(live)


@dataclass(frozen=True, order=True)
class Step:
    """One call-level unit of apply: a replace is a delete step then a create step."""

    phase: int          # 0: tear down views, 1: tear down datasets (and unshare), 2: build
    op: str
    address: str
    action_index: int = field(compare=False, default=0)

    @property
    def key(self) -> str:
        return f"{self.op}:{self.address}"


BUILD = 2


def plan_steps(plan: Plan) -> list[Step]:
    steps: list[Step] = []
    for index, action in enumerate(plan.actions):
        teardown = 0 if action.kind == "DatasetView" else 1
        if action.op == "replace":
            steps.append(Step(teardown, "delete", action.address, index))
            steps.append(Step(BUILD, "create", action.address, index))
        elif action.op in ("delete", "unshare"):
            steps.append(Step(teardown, action.op, action.address, index))
        elif action.op in ("create", "update", "share"):
            steps.append(Step(BUILD, action.op, action.address, index))
    return steps


def execution_levels(plan: Plan) -> list[list[Step]]:
    """Views torn down, then datasets (dependents first), then the build (dependencies first)."""
    steps = plan_steps(plan)
    by_address: dict[str, list[Step]] = defaultdict(list)
    for step in steps:
        by_address[step.address].append(step)
    depends = {a.address: a.depends_on for a in plan.actions}
    dependents: dict[str, set[str]] = defaultdict(set)
    for address, needs in depends.items():
        for need in needs:
            dependents[need].add(address)
    by_key = {s.key: s for s in steps}
    levels: list[list[Step]] = []
    for phase in (0, 1, BUILD):
        edges = {}
        for step in steps:
            if step.phase != phase:
                continue
            related = set(depends.get(step.address, ())) if phase == BUILD else dependents[step.address]
            edges[step.key] = {o.key for a in related for o in by_address[a] if o.phase == phase}
            if step.op == "share":   # share what exists and is current
                edges[step.key] |= {
                    o.key for o in by_address[step.address] if o.phase == BUILD and o.op != "share"
                }
        levels.extend([by_key[k] for k in level] for level in topo_levels(edges))
    return levels
