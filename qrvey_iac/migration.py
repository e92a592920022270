"""Use case: copy one environment's state to another store (``qrvey-iac state migrate``).

A team that moves its state from a local file to PostgreSQL (or back) keeps everything a
state is: the lineage (so a copy is known to be the same state, not a new one), the serial,
every resource and every pending journal entry. Only the owner changes, to the environment
the copy is made for, and only between environments of one Qrvey endpoint: a state names
objects of one instance.

The order makes a failure harmless: the source is read and never written; the copy is
written to a store that holds nothing yet (compare-and-swap on serial 0, so a second
migrate racing this one cannot both succeed), then read back through a second reader and
compared field by field. Until that comparison passes, nothing tells anyone to use the copy;
when it fails, the copy is named as unusable and the source is still the state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from qrvey_iac.core.errors import StateError
from qrvey_iac.core.state import State, StateOwner
from qrvey_iac.ports import StateStore


@dataclass(frozen=True)
class Migration:
    """What ``migrate_state`` did: the state copied (as stored in the target) and whether the
    target already held this very state (a migrate run again after it succeeded)."""

    state: State
    already_there: bool


def migrate_state(
    source: StateStore,
    target: StateStore,
    owner: StateOwner,
    names: tuple[str, str],
    reread: Callable[[], State],
) -> Migration:
    """Copy the state of ``source`` to ``target``, recorded as ``owner``'s.

    ``names`` says what the two stores are in messages (``state file state/dev.json``,
    ``postgres workspace dev``); ``reread`` reads the target again through a new reader, for
    the verification. The caller holds both stores' locks and has checked that the source's
    recorded owner may move to ``owner``.
    """
    source_name, target_name = names
    if not source.exists():
        raise StateError(f"{source_name} does not exist: there is no state to migrate")
    state = source.read()
    copy = state.model_copy(update={"owner": owner})
    if target.exists():
        stored = target.read()
        if _same_state(stored, copy):
            return Migration(stored, already_there=True)
        raise StateError(
            f"{target_name} already holds a state (lineage {stored.lineage}, serial {stored.serial}, "
            f"{len(stored.resources)} resource(s)) that is not this one (lineage {state.lineage}, serial "
            f"{state.serial}): migrate copies into an empty store only. Nothing was changed.")
    target.write(copy, 0)
    target.compact()
    verified = reread()
    if not _same_state(verified, copy):
        raise StateError(
            f"the copy in {target_name} does not read back as the state of {source_name} (lineage "
            f"{verified.lineage}, serial {verified.serial}, {len(verified.resources)} resource(s) read back; "
            f"expected lineage {copy.lineage}, serial {copy.serial}, {len(copy.resources)}): do not use it. "
            f"{source_name} is unchanged and is still the state.")
    return Migration(verified, already_there=False)


def _same_state(left: State, right: State) -> bool:
    """Equal in everything a state records (owner included)."""
    return left.model_dump(mode="json") == right.model_dump(mode="json")
