"""Owned, named asyncio tasks.

Every background task in edgegw belongs to a :class:`TaskOwner`. The owner keeps a strong
reference (the event loop only keeps weak ones), names the task so it shows up in logs and
debuggers, logs a crash once with its traceback, and cancels and awaits everything it owns
on :meth:`TaskOwner.close`. Bare ``asyncio.create_task`` is banned by ruff (TID251).

A long-lived loop (a writer, a poller) must never die for good: :meth:`TaskOwner.supervise`
runs it and, when it crashes, logs the crash once and starts a fresh one after a backoff that
doubles up to a minute, for as long as the owner lives. A loop that ends by returning is done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)

RESTART_DELAY: Final = 1.0
"""Seconds before a crashed supervised task is started again; doubled per crash in a row."""
MAX_RESTART_DELAY: Final = 60.0
"""The longest wait between restarts; a run this long without a crash ends a crash streak."""


class TaskOwner:
    """Owns a set of named tasks and cancels them together."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Start ``coro`` as a task named ``<owner>/<name>`` and keep it until it ends."""
        if self._closing:
            coro.close()
            raise RuntimeError(f"{self.name} is closing; cannot start {name}")
        task = asyncio.create_task(coro, name=f"{self.name}/{name}")  # noqa: TID251
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def supervise(
        self,
        factory: Callable[[], Coroutine[Any, Any, None]],
        name: str,
        *,
        delay: float = RESTART_DELAY,
        max_delay: float = MAX_RESTART_DELAY,
    ) -> asyncio.Task[None]:
        """Run ``factory()`` as ``<owner>/<name>`` and start it again whenever it crashes.

        The first crash of a streak is logged with its traceback; the restarts of a loop that
        keeps crashing are logged at debug, so a broken disk does not flood the journal. A
        run that lasts ``max_delay`` seconds ends the streak (the next crash is logged again
        and restarted after ``delay``). Cancelling the task (:meth:`close`) stops it.
        """
        return self.spawn(self._supervised(factory, name, delay, max_delay), name)

    async def _supervised(
        self,
        factory: Callable[[], Coroutine[Any, Any, None]],
        name: str,
        delay: float,
        max_delay: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        wait = delay
        streak = 0
        while True:
            started = loop.time()
            try:
                await factory()
            except Exception as exc:
                if loop.time() - started >= max_delay:
                    wait, streak = delay, 0
                streak += 1
                task = f"{self.name}/{name}"
                if streak == 1:
                    log.error("task %s crashed; restarting it in %.0f s", task, wait, exc_info=exc)
                else:
                    log.debug("task %s crashed again (%d in a row): %r", task, streak, exc)
                await asyncio.sleep(wait)
                wait = min(wait * 2, max_delay)
            else:
                return

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("task %s crashed", task.get_name(), exc_info=exc)

    @property
    def tasks(self) -> frozenset[asyncio.Task[Any]]:
        return frozenset(self._tasks)

    async def close(self, reason: str = "shutdown") -> None:
        """Cancel every owned task and wait until all of them have ended."""
        self._closing = True
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel(reason)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
