"""Large manifests parsed in a second process while this one reads Qrvey.

A plan reads its manifests while its refresh waits for Qrvey's answers; in one process the
two take turns on one core, and for a large project the YAML parse (libyaml composing the
nodes, then the walk that records each value's line) is about a quarter of the plan's CPU.
Above ``PARSE_AHEAD_BYTES`` of manifest text, the texts go to one worker process that
returns exactly what ``yaml_source.parse_documents`` returns, in batches, so the parse runs
on another core while the refresh runs here (what it saves: docs/performance.md, "Issue 11,
parsing on the second core"). Validation, interpolation and every check between documents
stay in this process.

The worker is spawned, not forked (nothing of this process, its threads or its sockets is
copied into it), ignores Ctrl-C (the command decides what an interrupt does), and is only
an optimisation: when it cannot start or dies, or its answer cannot be used, the batch is
parsed here instead, with the same result.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

from qrvey_iac.adapters.yaml_source import Parsed, parse_documents

logger = logging.getLogger("qrvey_iac.manifests")

PARSE_AHEAD_BYTES = 1024 * 1024      # below this much manifest text, parsing here costs less than a worker
BATCH_BYTES = 256 * 1024             # texts per round trip to the worker


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _parse_batch(texts: Sequence[tuple[str, str]]) -> list[Parsed]:
    return [parse_documents(text, shown) for text, shown in texts]


class ParseAhead:
    """The parse of ``texts`` ((text, shown name) per file, in order) in the worker."""

    def __init__(self, texts: Sequence[tuple[str, str]]) -> None:
        self._texts = list(texts)
        self._executor: ProcessPoolExecutor | None = None
        self._batches: list[tuple[list[tuple[str, str]], Future]] = []

    @classmethod
    def start(cls, texts: Sequence[tuple[str, str]], threshold: int | None = None) -> ParseAhead | None:
        """The parse of ``texts`` under way in the worker; None when they are too small to be
        worth it (below ``threshold``, default PARSE_AHEAD_BYTES) or no worker can start."""
        limit = PARSE_AHEAD_BYTES if threshold is None else threshold
        if not texts or sum(len(text) for text, _ in texts) < limit:
            return None
        ahead = cls(texts)
        return ahead if ahead._start() else None

    def _start(self) -> bool:
        try:
            self._executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_ignore_interrupts)
            for batch in _batches(self._texts, BATCH_BYTES):
                self._batches.append((batch, self._executor.submit(_parse_batch, batch)))
        except (OSError, RuntimeError) as exc:       # no processes here (a sandbox): parse in this one
            logger.debug("manifests parsed in this process: no worker (%s)", exc)
            self.close()
            return False
        return True

    def parsed(self) -> Iterator[Parsed | Future]:
        """Per file, in order, its result; before each batch's first, the Future of that batch
        (the caller waits for it as it likes: blocking, or awaiting it in an event loop)."""
        for batch, future in self._batches:
            yield future
            yield from self._results(batch, future)

    def _results(self, batch: list[tuple[str, str]], future: Future) -> list[Parsed]:
        try:
            return future.result()
        except Exception as exc:        # a dead worker, an answer that would not unpickle: parse here
            logger.debug("manifests parsed in this process: the worker failed (%s)", exc)
            return _parse_batch(batch)

    def close(self) -> None:
        """Stop the worker without waiting for it (what it was still parsing is not needed)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def _batches(texts: list[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    batch: list[tuple[str, str]] = []
    total = 0
    for item in texts:
        batch.append(item)
        total += len(item[0])
        if total >= size:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch
