"""Plans: frozen values built by a pure function, executed level by level.

An action is one of a closed, op-tagged union (``Action``). What each operation is
(how it is shown, whether it changes anything, how apply runs it) is written once, in
``OPERATIONS``; adding one (``import``, ``move``, ``forget``) is a class here and a row there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Field, field_validator

from qrvey_iac.core.diff import FieldChange, canonical_hash
from qrvey_iac.core.graph import topo_levels
from qrvey_iac.core.kinds import KINDS
from qrvey_iac.core.kinds.base import Frozen

PLAN_FORMAT_VERSION = 2      # 2: each field change says its origin (drift, state_only); 1: per action only
ABSENT = "absent"


@dataclass(frozen=True)
class Operation:
    """What one op means, for renderers (symbol, phrase), apply (steps, verbs) and counts."""

    symbol: str                    # in the text plan: "+", "~", "-/+", "-"
    phrase: str                    # "will be created"
    steps: tuple[str, ...]         # the call-level steps apply runs for it, in order
    progress: tuple[str, str] = ("", "")   # ("Creating", "created") for each step's lines
    destructive: bool = False      # deletes something (a replace deletes first)
    refused: bool = False          # apply refuses a plan holding it (no steps): fix it or --exclude it
    counted_when_none: bool = True   # the PR comment's table has its column even at 0


# The list of operations, written down once. A no-op changes nothing and is not counted.
OPERATIONS: dict[str, Operation] = {
    "create": Operation("+", "will be created", ("create",), ("Creating", "created")),
    "update": Operation("~", "will be updated in place", ("update",), ("Updating", "updated")),
    "replace": Operation("-/+", "must be replaced", ("delete", "create"), destructive=True),
    "delete": Operation("-", "will be destroyed", ("delete",), ("Destroying", "destroyed"), destructive=True),
    "share": Operation("~", "will be shared", ("share",), ("Sharing", "shared")),
    "unshare": Operation("~", "will be unshared", ("unshare",), ("Unsharing", "unshared")),
    # a dataset that needs only a load (not loaded, its load failed, or one still running to
    # wait for); a create or update that needs one runs a "load" step after its own (load_steps)
    "load": Operation("↻", "will be loaded", ("load",), ("Loading", "loaded"), counted_when_none=False),
    # a view whose unmanaged source is gone or no longer shared: reported, never applied
    "blocked": Operation("!", "cannot be planned", (), refused=True),
    # kind: Moved: the state entry renamed, then the object updated (its marker names the new
    # address) in the same step; kind: Removed: the marker taken off, the state entry dropped
    "move": Operation("->", "has moved", ("move",), ("Moving", "moved"), counted_when_none=False),
    "forget": Operation(".", "will no longer be managed, and stays in Qrvey", ("forget",),
                        ("Forgetting", "forgotten"), counted_when_none=False),
    # adopt an existing object: recorded in the state with no call, then updated when it differs
    "import": Operation("<=", "will be imported", ("import", "update"), ("Importing", "imported"),
                        counted_when_none=False),
}
CHANGING_OPS = tuple(OPERATIONS)
STEP_PROGRESS = {op: OPERATIONS[op].progress
                 for op in ("create", "update", "delete", "share", "unshare", "load", "move", "forget",
                            "import")}


class AppTarget(Frozen):
    alias: str
    userId: str
    appId: str


class ActionBase(Frozen):
    """What every action says: which resource, why, and whether it puts back a change made
    outside qrvey-iac (drift) or comes from the manifests."""

    changing: ClassVar[bool] = True
    address: str
    kind: str
    reason: str
    drift: bool = False
    changes: tuple[FieldChange, ...] = ()
    app: AppTarget | None = None
    dataset_id: str | None = None
    desired: dict[str, Any] | None = None       # the managed document to converge to
    source: dict[str, str] | None = None        # {"address"} or {appId, userId, datasetId}
    depends_on: tuple[str, ...] = ()
    protect: bool = False
    status: str | None = None                   # a dataset's status in Qrvey (DRAFT, LOADED, ...), as read
    load: bool = False                          # apply loads it after this action's own steps (load_steps)
    load_reason: str = ""                       # why it is loaded (a "load" op's reason says it)

    @field_validator("kind")
    @classmethod
    def _registered(cls, value: str) -> str:
        return KINDS.known(value)

    @property
    def state_only(self) -> bool:
        """An update that changes only what the state records (protect): no API call."""
        return bool(self.changes) and all(change.state_only for change in self.changes)

    @property
    def mixed(self) -> bool:
        """Its changes come from more than one origin: each field is then labelled."""
        return len({change.origin for change in self.changes}) > 1

    @property
    def phrase(self) -> str:
        return STATE_ONLY_PHRASE if self.state_only else OPERATIONS[self.op].phrase

    @property
    def previous_address(self) -> str | None:
        """The address the state recorded it under before this plan (a move's spec.from)."""
        return None

    @property
    def subject(self) -> str:
        """What the text plan's heading names: the address, or for a move its old one."""
        return self.previous_address or self.address

    def steps(self) -> tuple[str, ...]:
        """The call-level steps apply runs for this action (its op's, in order)."""
        return OPERATIONS[self.op].steps


STATE_ONLY_PHRASE = "will be updated in the state only"
DRIFT = "changed outside qrvey-iac"
STATE_ONLY = "no API call"


def update_reason(changes: tuple[FieldChange, ...], protect: bool) -> str:
    """Why an update, from where its changes come from."""
    origins = {change.origin for change in changes}
    if origins == {"state only"}:
        return f"protect: {str(protect).lower()} in the manifests; {STATE_ONLY}"
    if origins == {"drift"}:
        return DRIFT
    if "drift" in origins:
        return f"changed in the manifests and {DRIFT}"
    return "changed in the manifests"


def drift_part(action: ActionBase) -> ActionBase | None:
    """What of ``action`` puts back changes made outside qrvey-iac (None: nothing)."""
    if not action.drift:
        return None
    if all(change.drift for change in action.changes):
        return action
    return action.model_copy(update={"changes": tuple(c for c in action.changes if c.drift), "reason": DRIFT})


def manifest_part(action: ActionBase) -> ActionBase | None:
    """What of ``action`` comes from the manifests (None: nothing, it is all drift)."""
    if not action.drift:
        return action
    rest = tuple(change for change in action.changes if not change.drift)
    if not rest:
        return None
    return action.model_copy(update={"changes": rest, "drift": False, "reason": update_reason(rest, action.protect)})


class Create(ActionBase):
    op: Literal["create"] = "create"


class Update(ActionBase):
    op: Literal["update"] = "update"


class Replace(ActionBase):
    op: Literal["replace"] = "replace"


class Delete(ActionBase):
    op: Literal["delete"] = "delete"


class Share(ActionBase):
    op: Literal["share"] = "share"


class Unshare(ActionBase):
    op: Literal["unshare"] = "unshare"


class Load(ActionBase):
    """A dataset that asks to be loaded and needs nothing but a load (or a wait for one running)."""

    op: Literal["load"] = "load"


class Blocked(ActionBase):
    """A resource that cannot be planned (its unmanaged source is gone, unshared, or lacks a
    column it overrides, in Qrvey);
    the rest of the plan goes on, and apply refuses until it is fixed or excluded."""

    op: Literal["blocked"] = "blocked"


class Import(ActionBase):
    """Adopt an object that exists in Qrvey (``dataset_id``): apply records it in the state with
    no call, then updates it when ``changes`` (the live object against the manifests, as an
    update shows them, the ownership marker included) are not empty."""

    op: Literal["import"] = "import"

    @property
    def state_only(self) -> bool:
        return False

    def steps(self) -> tuple[str, ...]:
        return OPERATIONS[self.op].steps if self.changes else ("import",)


class NoOp(ActionBase):
    changing: ClassVar[bool] = False
    op: Literal["no-op"] = "no-op"


class Move(ActionBase):
    """``kind: Moved``: the object recorded at ``moved_from`` is now ``address``. Apply renames
    its state entry (and the recorded source of its views), then updates it in place with
    ``changes`` (the ownership marker, and whatever else the manifests changed); never a
    delete and a create."""

    op: Literal["move"] = "move"
    moved_from: str

    @property
    def phrase(self) -> str:
        return f"has moved to {self.address}"

    @property
    def previous_address(self) -> str | None:
        return self.moved_from


class Forget(ActionBase):
    """``kind: Removed``: qrvey-iac stops managing ``address``: apply takes the ownership
    marker off the object (so nothing adopts it again) and drops its state entry. Nothing is
    deleted, so a protected resource may be forgotten."""

    op: Literal["forget"] = "forget"


Action = Annotated[Union[Create, Update, Replace, Delete, Share, Unshare, Load, Blocked, Import, NoOp, Move, Forget],
                   Field(discriminator="op")]


class Plan(Frozen):
    format_version: Literal[2] = PLAN_FORMAT_VERSION
    environment: str = ""
    lineage: str = ""
    serial: int = 0
    manifest_digest: str = ""
    fingerprints: dict[str, str] = {}
    refresh_only: bool = False
    notes: tuple[str, ...] = ()                 # what --target/--exclude pulled in or left out
    seals: dict[str, str] = {}                  # address -> keyed digest of a secret-bearing document
    seal_nonce: str = ""                        # always "": older plan files stored the seals' salt here
    targets: tuple[str, ...] = ()               # the --target / --exclude the plan was narrowed by:
    excludes: tuple[str, ...] = ()              # apply FILE plans again with the same ones
    untracked: tuple[str, ...] = ()             # this environment's marked objects no state records
    actions: tuple[Action, ...] = ()

    @property
    def changes(self) -> tuple[ActionBase, ...]:
        return tuple(a for a in self.actions if a.changing)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    @property
    def refused(self) -> tuple[ActionBase, ...]:
        """The actions apply refuses (``blocked``): fixed in Qrvey or the manifests, or excluded."""
        return tuple(a for a in self.changes if OPERATIONS[a.op].refused)

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

    phase: int          # teardown phases first (each kind's teardown_phase), then BUILD
    op: str
    address: str
    action_index: int = field(compare=False, default=0)

    @property
    def key(self) -> str:
        return f"{self.op}:{self.address}"


TEARDOWN_STEPS = ("delete", "unshare")


def _build_phase() -> int:
    return max(kind.teardown_phase for kind in KINDS) + 1


def plan_steps(plan: Plan) -> list[Step]:
    build = _build_phase()
    steps: list[Step] = []
    for index, action in enumerate(plan.actions):
        if not action.changing:
            continue
        teardown = KINDS[action.kind].teardown_phase
        for op in action_steps(action):
            steps.append(Step(teardown if op in TEARDOWN_STEPS else build, op, action.address, index))
    return steps


def action_steps(action: ActionBase) -> tuple[str, ...]:
    """The steps apply runs for ``action``: its op's, then a load when the action asks for one."""
    steps = action.steps()
    return (*steps, "load") if action.load and "load" not in steps else steps


def execution_levels(plan: Plan) -> list[list[Step]]:
    """Teardown by kind phase (dependents first), then the build (dependencies first)."""
    build = _build_phase()
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
    for phase in sorted({s.phase for s in steps}):
        edges = {}
        for step in steps:
            if step.phase != phase:
                continue
            related = set(depends.get(step.address, ())) if phase == build else dependents[step.address]
            edges[step.key] = {o.key for a in related for o in by_address[a] if o.phase == phase}
            if step.op == "update":  # an import's update runs once the import is recorded
                edges[step.key] |= {o.key for o in by_address[step.address] if o.op == "import"}
            if step.op == "share":   # share what exists, is current and loaded
                edges[step.key] |= {
                    o.key for o in by_address[step.address] if o.phase == build and o.op != "share"
                }
            if step.op == "load":    # load what exists and is current
                edges[step.key] |= {
                    o.key for o in by_address[step.address] if o.phase == build and o.op not in ("share", "load")
                }
        levels.extend([by_key[k] for k in level] for level in topo_levels(edges))
    return levels


ACTION_TYPES: dict[str, type[ActionBase]] = {
    cls.model_fields["op"].default: cls
    for cls in (Create, Update, Replace, Delete, Share, Unshare, Load, Blocked, Import, NoOp, Move, Forget)
}


def make_action(op: str, **fields: Any) -> ActionBase:
    """The action class for ``op`` (e.g. ``"share"`` or ``"unshare"`` chosen from data)."""
    return ACTION_TYPES[op](**fields)
