"""A first-in first-out queue for exactly one consumer task, lighter than :class:`asyncio.Queue`.

Every connected charger has one (its session's commands). ``asyncio.Queue`` carries machinery
this use never needs (a bound, waiting producers, many consumers): three deques and an Event per
queue, and a round of bookkeeping per item. At 2,000 chargers this one is a list (56 bytes empty
against an empty deque's ~770: it holds a command or two, so taking its head is cheap) and,
while the consumer waits, one future. ``task_done``/``join`` keep ``asyncio.Queue``'s meaning:
``join`` returns once every item put has been taken *and* marked done.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class Fifo(Generic[T]):
    """Unbounded; :meth:`get` must only ever be awaited by one task at a time."""

    __slots__ = ("_items", "_joiners", "_unfinished", "_waiter")

    def __init__(self) -> None:
        self._items: list[T] = []
        self._waiter: asyncio.Future[None] | None = None
        self._unfinished = 0
        self._joiners: list[asyncio.Future[None]] = []

    def __len__(self) -> int:
        return len(self._items)

    @property
    def idle(self) -> bool:
        """Every item put was taken and marked done: nothing waits, nothing is being dealt with."""
        return self._unfinished == 0

    def take(self) -> T:
        """The first item, without waiting (:exc:`IndexError` when there is none)."""
        return self._items.pop(0)

    def put(self, item: T) -> None:
        self._items.append(item)
        self._unfinished += 1
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> T:
        while not self._items:
            if self._waiter is not None:
                raise RuntimeError("Fifo.get() awaited by two tasks at once")
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def task_done(self) -> None:
        """The item last taken was dealt with."""
        if self._unfinished <= 0:
            raise ValueError("task_done() called more times than items were put")
        self._unfinished -= 1
        if self._unfinished == 0:
            joiners, self._joiners = self._joiners, []
            for joiner in joiners:
                if not joiner.done():
                    joiner.set_result(None)

    async def join(self) -> None:
        """Wait until every item put was taken and marked done."""
        if self._unfinished == 0:
            return
        joiner = asyncio.get_running_loop().create_future()
        self._joiners.append(joiner)
        await joiner
