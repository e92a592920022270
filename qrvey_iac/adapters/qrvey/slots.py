"""The sender's ``parallelism`` slots: at most that many attempts in flight, waiters in order,
and a listing's pages let in before single calls.

A listing is a chain: each page names the one after it, so its pages go out one at a time.
Queued behind a refresh's thousand independent reads, as a plain semaphore queues them, a
listing's first page went out at the end and the rest followed one by one with most slots idle:
a tail of a few round trips that no parallelism shortens (docs/performance.md, "Issue 11, the
listings' tail"). Let in first, a listing's pages go out alongside the reads, and the last
calls of a refresh are independent ones that fill every slot.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Slots:
    """``size`` slots shared by the tasks of one event loop. ``async with slots.taken(ahead)``
    holds one for the block; waiters with ``ahead`` get a freed slot before those without, each
    group in the order it came. A waiter cancelled after a slot was handed to it passes the slot
    on, so cancellation never loses one."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("there must be at least one slot")
        self._free = size
        self._ahead: deque[asyncio.Future[None]] = deque()
        self._behind: deque[asyncio.Future[None]] = deque()

    @property
    def free(self) -> int:
        """Slots no one holds or has been handed."""
        return self._free

    def taken(self, ahead: bool = False) -> _Taken:
        return _Taken(self, ahead)

    async def acquire(self, ahead: bool = False) -> None:
        if self._free and not self._ahead and not self._behind:
            self._free -= 1
            return
        handed = asyncio.get_running_loop().create_future()
        queue = self._ahead if ahead else self._behind
        queue.append(handed)
        try:
            await handed
        except asyncio.CancelledError:
            if handed.done() and not handed.cancelled():
                self.release()           # handed a slot and cancelled before it ran: pass it on
            elif handed in queue:        # (release drops a cancelled waiter it comes across)
                queue.remove(handed)
            raise

    def release(self) -> None:
        for queue in (self._ahead, self._behind):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._free += 1


class _Taken:
    def __init__(self, slots: Slots, ahead: bool) -> None:
        self._slots, self._ahead = slots, ahead

    async def __aenter__(self) -> None:
        await self._slots.acquire(self._ahead)

    async def __aexit__(self, *exc_info: object) -> None:
        self._slots.release()
