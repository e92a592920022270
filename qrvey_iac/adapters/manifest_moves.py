"""The documents about addresses, ``kind: Moved`` and ``kind: Removed``, checked against the
addresses the manifests declare and against each other (README, "Moves and removals").

What needs the state (is ``from`` recorded? ``to``?) is the planner's: ``planner.pending_moves``.
Each document gets one problem at most, at the line of the field it is about.
"""

from __future__ import annotations

from collections.abc import Mapping

from qrvey_iac.adapters.yaml_source import YamlDocument
from qrvey_iac.core.errors import Problem, did_you_mean_address
from qrvey_iac.core.kinds import KINDS
from qrvey_iac.core.manifest import Moved, MovedDocument, Removed, RemovedDocument


def declared_addresses(located) -> dict[str, YamlDocument]:
    """Every address the manifests declare (documents that failed validation too), with the
    document that first declares it."""
    declared: dict[str, YamlDocument] = {}
    for parsed, document in located:
        declared.setdefault(KINDS[parsed.kind].address(parsed.metadata.name), document)
    return declared


def checked_instructions(
    instructions: list[tuple[MovedDocument | RemovedDocument, YamlDocument]],
    declared: Mapping[str, YamlDocument], problems: list[Problem],
) -> tuple[tuple[Moved, ...], tuple[Removed, ...]]:
    """The Moved and Removed documents, checked against the declared addresses and each other
    (what needs the state, planner.pending_moves checks): one problem per document at most."""
    moved = [(d.spec.from_, d.spec.to, document) for d, document in instructions if isinstance(d, MovedDocument)]
    removed = [(d.spec.from_, document) for d, document in instructions if isinstance(d, RemovedDocument)]
    first_from: dict[str, YamlDocument] = {}
    first_to: dict[str, YamlDocument] = {}
    for source, target, document in moved:
        first_from.setdefault(source, document)
        first_to.setdefault(target, document)
    targets = {source: target for source, target, _ in reversed(moved)}   # the first move of each
    moves = []
    for source, target, document in moved:
        problem = _move_problem(source, target, document, declared, first_from, first_to, targets)
        if problem:
            problems.append(Problem(document.file, document.line_of(("spec", problem[0])), f"spec.{problem[0]}",
                                    problem[1]))
        else:
            moves.append(Moved(source, target, document.file, document.line_of(("spec", "from")) or 0))
    removals = []
    first_removed: dict[str, YamlDocument] = {}
    for address, document in removed:
        problem = _removal_problem(address, declared, first_from, first_to, first_removed)
        first_removed.setdefault(address, document)
        if problem:
            problems.append(Problem(document.file, document.line_of(("spec", "from")), "spec.from", problem))
        else:
            removals.append(Removed(address, document.file, document.line_of(("spec", "from")) or 0))
    return tuple(moves), tuple(removals)


def _at(document: YamlDocument) -> str:
    return f"{document.file}:{document.line}"


def _move_problem(
    source: str, target: str, document: YamlDocument, declared: Mapping[str, YamlDocument],
    first_from: Mapping[str, YamlDocument], first_to: Mapping[str, YamlDocument], targets: Mapping[str, str],
) -> tuple[str, str] | None:
    """(spec field, message) of what is wrong with moving ``source`` to ``target``, or None."""
    for field, address in (("from", source), ("to", target)):
        if KINDS.of_address(address) is None:
            prefixes = ", ".join(f"{kind.prefix}.<name>" for kind in KINDS)
            return field, f"{address!r} is no kind's address (expected {prefixes})"
    if source == target:
        return "to", f"{target} is spec.from too: a move needs a new address"
    if KINDS.of_address(source) is not KINDS.of_address(target):
        return "to", (f"a move keeps the kind: {source} cannot become {target} "
                      f"(a {KINDS.of_address(source).prefix}.* moves to a {KINDS.of_address(source).prefix}.*)")
    if first_from[source] is not document:
        return "from", f"{source} is moved already at {_at(first_from[source])}: one Moved per address"
    if first_to[target] is not document:
        return "to", f"{target} is the target of a move already at {_at(first_to[target])}: one Moved per address"
    chain = _chain(source, targets)
    if chain[-1] == source:
        return "to", "a cycle of moves: " + " -> ".join(chain) + ": remove the Moved documents that undo others"
    if len(chain) > 2 or source in first_to:
        sources = {t: s for s, t in targets.items()}
        start = source
        while start in sources and sources[start] not in chain:
            start = sources[start]
            chain.insert(0, start)
        return "to", ("a chain of moves: " + " -> ".join(chain) + f": move each address straight to {chain[-1]} "
                      "(spec.from: the address in the state, spec.to: the address in the manifests)")
    if target not in declared and source in declared:
        return "to", (f"{target} is not declared in the manifests and {source} is: spec.from is the old "
                      "address (in the state), spec.to the new one (declared): are they swapped?")
    if target not in declared:
        return "to", (f"{target} is not declared in the manifests{did_you_mean_address(target, declared)}: "
                      "a Moved names the new address of a document (its metadata.name)")
    if source in declared:
        return "from", (f"{source} is still declared (at {_at(declared[source])}): after a move only {target} "
                        "is declared; rename that document's metadata.name, or remove this Moved")
    return None


def _chain(source: str, targets: Mapping[str, str]) -> list[str]:
    """``source`` and the addresses the moves take it to, one after the other (a cycle ends
    where it started)."""
    chain = [source]
    while chain[-1] in targets:
        chain.append(targets[chain[-1]])
        if chain[-1] == source:
            break
    return chain


def _removal_problem(
    address: str, declared: Mapping[str, YamlDocument], first_from: Mapping[str, YamlDocument],
    first_to: Mapping[str, YamlDocument], first_removed: Mapping[str, YamlDocument],
) -> str | None:
    if KINDS.of_address(address) is None:
        prefixes = ", ".join(f"{kind.prefix}.<name>" for kind in KINDS)
        return f"{address!r} is no kind's address (expected {prefixes})"
    if address in first_removed:
        return f"{address} is removed already at {_at(first_removed[address])}: one Removed per address"
    if address in declared:
        return (f"{address} is still declared (at {_at(declared[address])}): remove that document to stop "
                "managing it, or remove this Removed")
    for moves, end in ((first_from, "spec.from"), (first_to, "spec.to")):
        if address in moves:
            return (f"{address} is the {end} of a Moved at {_at(moves[address])}: an address is either moved "
                    "or removed")
    return None
