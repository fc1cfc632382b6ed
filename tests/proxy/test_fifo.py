"""The sessions' command queue: order, wake-ups, and asyncio.Queue's join() meaning."""

from __future__ import annotations

import asyncio

import pytest

from edgegw.proxy.fifo import Fifo


async def test_items_come_out_in_order_and_wake_the_waiting_consumer() -> None:
    fifo: Fifo[int] = Fifo()
    consumer = asyncio.ensure_future(fifo.get())  # noqa: TID251 - a test's own short task
    await asyncio.sleep(0)
    assert not consumer.done()
    fifo.put(1)
    fifo.put(2)
    assert await consumer == 1
    assert await fifo.get() == 2
    assert len(fifo) == 0


async def test_join_waits_for_every_item_to_be_done() -> None:
    fifo: Fifo[str] = Fifo()
    await fifo.join()  # nothing put: returns at once
    fifo.put("a")
    fifo.put("b")
    joined = asyncio.ensure_future(fifo.join())  # noqa: TID251
    assert await fifo.get() == "a"
    fifo.task_done()
    assert await fifo.get() == "b"
    await asyncio.sleep(0)
    assert not joined.done()  # taken, not done yet
    fifo.task_done()
    await asyncio.wait_for(joined, 1)
    with pytest.raises(ValueError, match="more times"):
        fifo.task_done()


async def test_a_cancelled_consumer_leaves_the_queue_usable() -> None:
    fifo: Fifo[int] = Fifo()
    consumer = asyncio.ensure_future(fifo.get())  # noqa: TID251
    await asyncio.sleep(0)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    fifo.put(7)
    assert await fifo.get() == 7


async def test_two_consumers_at_once_are_refused() -> None:
    fifo: Fifo[int] = Fifo()
    first = asyncio.ensure_future(fifo.get())  # noqa: TID251
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="two tasks"):
        await fifo.get()
    fifo.put(1)
    assert await first == 1
