"""Ordering from the data: dependency levels with graphlib, cycles as paths."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from graphlib import CycleError, TopologicalSorter

from qrvey_iac.core.errors import DependencyCycleError


def topo_levels(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Group nodes into levels: every node comes after all it depends on.

    ``edges`` maps a node to the nodes it depends on. Levels are sorted so
    plans and golden files are stable.
    """
    sorter = TopologicalSorter({node: set(deps) for node, deps in edges.items()})
    try:
        sorter.prepare()
    except CycleError as exc:
        raise DependencyCycleError(list(exc.args[1])) from None
    levels: list[list[str]] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        levels.append(ready)
        sorter.done(*ready)
    return levels


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    try:
        topo_levels(edges)
    except DependencyCycleError as exc:
        return list(exc.path)
    return None
