"""The sender's slots (adapters/qrvey/slots.py): a bound on attempts in flight, waiters in
order, waiters marked ``ahead`` first, and no slot lost to a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from qrvey_iac.adapters.qrvey.slots import Slots

pytestmark = pytest.mark.anyio


async def _hold(slots: Slots, name: str, order: list[str], release: asyncio.Event, ahead: bool = False) -> None:
    async with slots.taken(ahead):
        order.append(name)
        await release.wait()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_no_more_than_size_hold_a_slot_and_the_rest_go_in_arrival_order():
    slots, order, release = Slots(2), [], asyncio.Event()
    tasks = [asyncio.create_task(_hold(slots, f"t{i}", order, release)) for i in range(5)]
    await _settle()
    assert order == ["t0", "t1"] and slots.free == 0
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["t0", "t1", "t2", "t3", "t4"]
    assert slots.free == 2


async def test_a_waiter_marked_ahead_gets_the_next_slot_before_earlier_waiters():
    slots, order = Slots(1), []
    gate = asyncio.Event()
    holder = asyncio.create_task(_hold(slots, "holder", order, gate))
    await _settle()
    done = asyncio.Event()
    done.set()
    behind = [asyncio.create_task(_hold(slots, f"read{i}", order, done)) for i in range(3)]
    await _settle()
    first_page = asyncio.create_task(_hold(slots, "page1", order, done, ahead=True))
    second_page = asyncio.create_task(_hold(slots, "page2", order, done, ahead=True))
    await _settle()
    gate.set()
    await asyncio.gather(holder, *behind, first_page, second_page)
    assert order == ["holder", "page1", "page2", "read0", "read1", "read2"]
    assert slots.free == 1


async def test_a_cancelled_waiter_leaves_the_queue_and_takes_no_slot():
    slots, order, release = Slots(1), [], asyncio.Event()
    holder = asyncio.create_task(_hold(slots, "holder", order, release))
    await _settle()
    waiter = asyncio.create_task(_hold(slots, "waiter", order, release))
    await _settle()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    await holder
    assert slots.free == 1
    await asyncio.wait_for(_hold(slots, "later", order, release), 1)   # nothing left queued blocks it
    assert order == ["holder", "later"]


async def test_a_waiter_cancelled_after_it_was_handed_a_slot_passes_the_slot_on():
    slots = Slots(1)
    await slots.acquire()
    handed = asyncio.create_task(slots.acquire())
    next_one = asyncio.create_task(slots.acquire())
    await _settle()
    slots.release()           # the slot goes to ``handed``, which has not run since
    handed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handed
    await asyncio.wait_for(next_one, 1)
    assert slots.free == 0    # ``next_one`` holds it
    slots.release()
    assert slots.free == 1


def test_at_least_one_slot():
    with pytest.raises(ValueError):
        Slots(0)
