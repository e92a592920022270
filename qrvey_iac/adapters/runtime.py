"""The interpreter's side of a large command: the one place qrvey-iac touches the garbage
collector. Why, and what it buys against Python's defaults: docs/performance.md, "Fourth
round"."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def large_batch() -> Iterator[None]:
    """The cyclic collector paused for a command that builds many long-lived objects (every
    manifest, live object and planned action lives until the command ends) and leaves no
    cyclic garbage that grows with them: tests/cli/test_no_cycles.py checks that of plan
    and drift. Reference counting still frees everything else as it goes."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
