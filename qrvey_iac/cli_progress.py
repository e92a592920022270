"""Progress on stderr, suited to where it goes: a live counter line on a terminal, plain
periodic lines in CI logs and pipes.

The use cases report structured events (flows.UI: ``started(total, what)``, ``advanced(n)``,
``finished()``) and message lines (``line``); a meter turns them into text:

- ``PlainMeter`` (not a terminal, ``TERM=dumb``, ``NO_COLOR``, ``--debug``): every message on
  its own line, and at most one count line every ``PLAIN_EVERY`` seconds while a long
  operation runs (``412 of 1000 objects refreshed (41%, 230/s)``): a CI log gets a heartbeat
  without a wall of counters.
- ``LiveMeter`` (a terminal): the same message lines, with one counter line at the bottom,
  redrawn in place (``\\r``) at most every ``LIVE_EVERY`` seconds, with a bar, the count, the
  rate and the time left. Before a message line is written the counter line is blanked, so
  the two never mix. Only ``\\r`` and spaces are written: no colour, no escape sequence.

Why hand-written rather than a library (rich, tqdm): what is drawn is one line of counts
that must interleave with our own stderr lines and the signal handler's; that is some forty
lines here, against a dependency tree (rich brings markdown-it-py, mdurl and pygments), its
start-up cost on every command, and a refresh thread writing to the terminal while a signal
handler does.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import click

PLAIN_EVERY = 5.0        # seconds between count lines in a log
LIVE_EVERY = 0.1         # seconds between redraws on a terminal
BAR_WIDTH = 24
RATE_AFTER = 1.0         # seconds before a rate (and the time left) is worth showing

Clock = Callable[[], float]
Write = Callable[[str], None]


def to_stderr(text: str) -> None:
    click.echo(text, nl=False, err=True)     # click: flushed, and encoded as the terminal can take


class Count:
    """One long operation: its total, what it counts, how far it is and since when."""

    def __init__(self, total: int, what: str, now: float) -> None:
        self.total, self.what, self.done, self.since = total, what, 0, now

    def rate(self, now: float) -> float:
        """Per second since the start; 0 until RATE_AFTER (a first answer is no rate)."""
        elapsed = now - self.since
        return self.done / elapsed if elapsed >= RATE_AFTER else 0.0

    def percent(self) -> int:
        return 100 * self.done // self.total if self.total else 100


class PlainMeter:
    """Lines only: messages as they come, a count line at most every ``every`` seconds."""

    def __init__(self, write: Write = to_stderr, clock: Clock = time.monotonic, every: float = PLAIN_EVERY) -> None:
        self.write, self.clock, self.every = write, clock, every
        self.count: Count | None = None
        self.said = 0.0

    def line(self, text: str) -> None:
        self.write(text + "\n")

    def started(self, total: int, what: str) -> None:
        self.count = Count(total, what, self.clock())
        self.said = self.count.since

    def advanced(self, count: int = 1) -> None:
        if self.count is None:
            return                  # after finished(): a late completion counts for nothing
        self.count.done += count
        now = self.clock()
        if now - self.said >= self.every and self.count.done < self.count.total:
            self.said = now
            c = self.count
            self.line(f"  {c.done} of {c.total} {c.what} ({c.percent()}%, {c.rate(now):.0f}/s)")

    def finished(self) -> None:
        self.count = None


class LiveMeter(PlainMeter):
    """Messages as lines, and one counter line below them, redrawn in place."""

    def __init__(self, write: Write = to_stderr, clock: Clock = time.monotonic, every: float = LIVE_EVERY,
                 width: Callable[[], int] | None = None) -> None:
        super().__init__(write, clock, every)
        self.width = width or stderr_columns
        self.shown = ""            # the counter line on screen, "" when none

    def line(self, text: str) -> None:
        self._blank()
        super().line(text)
        if self.count is not None:
            self._draw(self.clock())

    def started(self, total: int, what: str) -> None:
        super().started(total, what)
        self._draw(self.count.since)

    def advanced(self, count: int = 1) -> None:
        if self.count is None:
            return
        self.count.done += count
        now = self.clock()
        if now - self.said >= self.every or self.count.done >= self.count.total:
            self._draw(now)

    def finished(self) -> None:
        self._blank()
        super().finished()

    def _draw(self, now: float) -> None:
        self.said = now
        text = counter_line(self.count, now)[: max(self.width() - 1, 10)]
        self.write("\r" + text.ljust(len(self.shown)))
        self.shown = text

    def _blank(self) -> None:
        if self.shown:
            self.write("\r" + " " * len(self.shown) + "\r")
            self.shown = ""


def stderr_columns() -> int:
    """The width of the terminal stderr is on (stdout is often a file: ``plan > plan.md``)."""
    try:
        columns = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        columns = 0
    return columns or 80


def counter_line(count: Count, now: float) -> str:
    """``objects refreshed [#########---------------]  412/1000  41%  230/s  3s left``"""
    filled = BAR_WIDTH * count.done // count.total if count.total else BAR_WIDTH
    rate = count.rate(now)
    speed = f"  {rate:.0f}/s" if rate > 0 else ""
    left = f"  {(count.total - count.done) / rate:.0f}s left" if rate > 0 and count.done < count.total else ""
    return (f"{count.what} [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {count.done:>{len(str(count.total))}}/"
            f"{count.total}  {count.percent()}%{speed}{left}")


def make_meter(debug: bool = False) -> PlainMeter:
    """A live meter on stderr when it is a terminal that can take it; plain lines anywhere
    else (a pipe, a CI log, ``TERM=dumb``, ``NO_COLOR``), and with ``--debug`` (its log lines
    would break the counter line)."""
    return LiveMeter() if wants_live(sys.stderr.isatty(), os.environ, debug) else PlainMeter()


def wants_live(terminal: bool, environ: dict[str, str], debug: bool) -> bool:
    return terminal and not debug and environ.get("TERM", "") != "dumb" and not environ.get("NO_COLOR")
