"""TaskOwner: supervised long-lived tasks come back after a crash and are logged once."""

from __future__ import annotations

import asyncio
import logging

import pytest

from edgegw.tasks import TaskOwner


async def test_a_crashed_supervised_task_is_started_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner = TaskOwner("test")
    runs: list[int] = []
    serving = asyncio.Event()

    async def loop() -> None:
        runs.append(len(runs))
        if len(runs) <= 3:
            raise OSError("database or disk is full")
        serving.set()
        await asyncio.Event().wait()

    with caplog.at_level(logging.DEBUG, logger="edgegw.tasks"):
        task = owner.supervise(loop, "writer", delay=0.001, max_delay=0.01)
        async with asyncio.timeout(10):
            await serving.wait()
    assert len(runs) == 4 and not task.done()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1  # the first crash of a streak, with its traceback
    assert errors[0].getMessage().startswith("task test/writer crashed; restarting it")
    assert errors[0].exc_info is not None
    await owner.close()
    assert task.cancelled()


async def test_a_supervised_task_that_returns_is_done() -> None:
    owner = TaskOwner("test")
    runs: list[int] = []

    async def once() -> None:
        runs.append(1)

    task = owner.supervise(once, "once")
    await task
    assert runs == [1] and not owner.tasks
