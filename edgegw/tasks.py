"""Owned, named asyncio tasks.

Every background task in edgegw belongs to a :class:`TaskOwner`. The owner keeps a strong
reference (the event loop only keeps weak ones), names the task so it shows up in logs and
debuggers, logs a crash once with its traceback, and cancels and awaits everything it owns
on :meth:`TaskOwner.close`. Bare ``asyncio.create_task`` is banned by ruff (TID251).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


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
