"""One writer for the records the relay keeps as a side effect: sessions, boots, cards, events.

A charger's executor used to await each of these writes before it handled that charger's next
call: one write lock, one SQLite thread, and every charger's next message waiting behind every
other charger's bookkeeping. The :class:`Bookkeeper` is one queue and one task (owned through
:class:`~edgegw.tasks.TaskOwner`) that carries the jobs out in the order they were handed in:

* :meth:`Bookkeeper.post` hands a job in and returns at once: for what no answer to a charger
  depends on (a session the cloud accepted, a card the cloud answered for, a boot, an event).
  A job that fails is logged (once a minute per kind), never raised to the poster;
* :meth:`Bookkeeper.run` hands a job in and waits for it: for what must be written before the
  charger is answered (a session the gateway answers for itself) and for reads that must see
  every record handed in before them (is this transaction still open?).

The order is one order for all jobs, so a stop recorded by the gateway never overtakes the
start the relay handed in a moment earlier.

Given a ``batch`` (:meth:`~edgegw.store.db.Database.batch`), the jobs queued when the writer
turns to them (at most :data:`BATCH_MAX`) run in one database transaction, each job's own
transaction a SAVEPOINT of it: one commit for all of them, each page written once (an SD card
wears by the page), and a job that fails leaves nothing and sinks no other. Futures (posted or
waited for) are settled after the commit, so a caller that waits knows its record is committed;
a commit that fails fails every job of the batch. A job whose error made SQLite roll back the
whole transaction (disk full, I/O error: :class:`~edgegw.store.db.BatchAborted`) fails with the
jobs run before it in the batch (none of them is on disk), and the jobs not yet run go back to
the head of the queue. The durability rule is untouched: outbox commits
(:mod:`edgegw.store.outbox`) never go through here, but they wait for a batch's commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any, Final, TypeVar

from edgegw.store.db import BatchAborted
from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)

T = TypeVar("T")
Job = Callable[[], Awaitable[Any]]

_WARN_EVERY_S = 60.0
BATCH_MAX: Final = 50
"""Jobs per transaction at most: other writers (the outbox) wait for a batch's commit.

A batch holds the database's write lock from its first job to its commit, so a job must only
run SQL (and the little Python around it): no network, no sleeping, no waiting for a charger or
the cloud, and never a task of its own that writes (``asyncio.wait_for`` on Python 3.11 starts
one): the batch would wait for that task and the task for the batch's lock, so such a write is
refused with RuntimeError (:meth:`~edgegw.store.db.Database.batch`). Measured
(tests/bench/bookkeeper_batch.py, 2 shared cores): a batch of 50 session starts or stops takes
9-11 ms (p50, max 17 ms) and a durable outbox commit queued behind it waits as long; a
charger's acknowledgement is late by that at most, far inside its call timeout, so 50 stays.
"""
Batch = Callable[[], AbstractAsyncContextManager[object]]


class Bookkeeper:
    """Runs jobs one at a time, in order, on its own task. :meth:`close` runs what is queued."""

    def __init__(
        self, name: str, *, clock: Callable[[], float], batch: Batch | None = None
    ) -> None:
        self._jobs: deque[tuple[Job, asyncio.Future[Any], str | None]] = deque()
        """Each job, its future and, for a posted job, what to call it in the log."""
        self._batch: Batch = batch or nullcontext
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._clock = clock
        self._warned: dict[str, float] = {}
        self.failed = 0
        """Posted jobs that failed (logged, never raised)."""
        self._tasks = TaskOwner(name)
        self._tasks.supervise(self._loop, "bookkeeping")  # a crash must not stop the records

    def post(self, job: Job, what: str) -> asyncio.Future[None]:
        """Hand in a job and return at once; ``what`` names it in the log if it fails.

        The future returned is done once the job has run (failed or not) and its batch was
        committed: a caller that needs its own later work ordered after this record can wait
        for it, nobody has to.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._put(job, done, what)
        return done

    async def run(self, job: Callable[[], Awaitable[T]]) -> T:
        """Hand in a job after those already queued and wait for its result (or error)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._put(job, future, None)
        return await future

    async def settled(self) -> None:
        """Wait until every job handed in so far has run."""
        if self._stopping:  # closing: nothing more can be handed in
            await self._idle.wait()
            return
        await self.run(_nothing)

    def _put(self, job: Job, future: asyncio.Future[Any], what: str | None) -> None:
        if self._stopping:
            raise RuntimeError("the store is closing")
        if what is None and asyncio.current_task() in self._tasks.tasks:
            # A job waiting for a job queued behind itself would wait for ever.
            raise RuntimeError("a bookkeeping job cannot wait for the bookkeeper")
        self._jobs.append((job, future, what))
        self._idle.clear()
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            while self._jobs:
                await self._drain()
            self._idle.set()
            if self._stopping:
                return
            self._wake.clear()
            await self._wake.wait()

    async def _drain(self) -> None:
        """Run the jobs queued now (up to BATCH_MAX) in one batch, then settle their futures."""
        taken = [self._jobs.popleft() for _ in range(min(len(self._jobs), BATCH_MAX))]
        outcomes: list[tuple[Any, Exception | None]] = []
        lost: BatchAborted | None = None
        # A lone job's own transaction is enough (a batch would add BEGIN and COMMIT to it).
        batch = self._batch() if len(taken) > 1 else nullcontext()
        try:
            async with batch:
                for job, _, _ in taken:
                    try:
                        outcomes.append((await job(), None))
                    except BatchAborted as exc:  # SQLite rolled the whole transaction back
                        outcomes.append((None, exc))
                        lost = exc
                        break
                    except Exception as exc:  # one failing job must not sink the others
                        outcomes.append((None, exc))
        except BatchAborted as exc:  # lost, and a job's own error handling hid it
            lost = lost or exc
        except Exception as exc:  # the batch's transaction (begin or commit) failed
            outcomes = [(None, exc)] * len(taken)
        if lost is not None:
            # What ran before is not on disk: its callers are told so. What did not run yet
            # goes back to the head of the queue, for the next transaction.
            rolled = BatchAborted(f"rolled back with its batch: {lost.__cause__ or lost}")
            outcomes = [(value, rolled if error is None else error) for value, error in outcomes]
            self._jobs.extendleft(reversed(taken[len(outcomes) :]))
            taken = taken[: len(outcomes)]
        for (_, future, what), (value, error) in zip(taken, outcomes, strict=True):
            if future.done():
                continue
            if what is not None:  # posted: logged, never raised to the poster
                if error is not None:
                    self._failed(what, error)
                future.set_result(None)
            elif error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

    def _failed(self, what: str, exc: Exception) -> None:
        self.failed += 1
        now = self._clock()
        last = self._warned.get(what)
        if last is None or now - last >= _WARN_EVERY_S:
            self._warned[what] = now
            log.warning("%s not recorded: %s (%d record(s) failed so far)", what, exc, self.failed)

    async def close(self) -> None:
        """Run what is queued, then stop (no job can be handed in any more)."""
        self._stopping = True
        self._wake.set()
        try:
            await self._idle.wait()
        finally:
            await self._tasks.close()


async def _nothing() -> None:
    return None
