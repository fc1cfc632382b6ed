"""Bookkeeper batch benchmark: how long a batch of BATCH_MAX jobs holds the write lock, and so
how long a durable outbox commit queued behind it waits.

Run:  .venv/bin/python tests/bench/bookkeeper_batch.py --rounds 20 [--dir /path/on/the/disk]

Each round queues BATCH_MAX session starts (waited for, as the gateway's own answers are),
then BATCH_MAX stops of those sessions, on a real database in ``--dir`` (a temporary directory
by default: put it on the file system you care about). While each batch runs, a durable
transaction (``synchronous=FULL``, as the outbox commits) is started from another task, and
its wait is measured. Printed: p50 and max of a batch's duration (first job to commit) and of
the durable write's wait. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from edgegw.store.bookkeeper import BATCH_MAX
from edgegw.store.store import Store
from edgegw.tasks import TaskOwner


async def _round(store: Store, tasks: TaskOwner, n: int, stop: bool) -> tuple[float, float]:
    keeper = store.bookkeeping
    entered, gate = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        entered.set()
        await gate.wait()

    keeper.post(hold, "the gate")  # everything queued behind it runs as one batch
    await entered.wait()
    calls = []
    for i in range(BATCH_MAX):
        tx = n * BATCH_MAX + i + 1
        if stop:
            payload = {"transactionId": tx, "meterStop": 900, "timestamp": "2026-01-01T11:00:00Z"}
            call = store.transaction_stopped(f"CP{i}", payload)
        else:
            payload = {
                "connectorId": 1,
                "idTag": f"TAG{i}",
                "meterStart": 100,
                "timestamp": "2026-01-01T10:00:00Z",
            }
            call = store.transaction_started(f"CP{i}", payload, tx, origin="gateway")
        calls.append(tasks.spawn(call, f"job {i}"))
    await asyncio.sleep(0)  # every job queued
    gate.set()
    began = time.perf_counter()
    await asyncio.sleep(0)  # the writer takes the batch (and the lock) first

    async def durable() -> float:
        asked = time.perf_counter()
        async with store.db.transaction(durable=True) as conn:
            waited = time.perf_counter() - asked
            await conn.execute("INSERT INTO events (at, kind, message) VALUES (0, 'bench', 'x')")
        return waited

    outbox = tasks.spawn(durable(), "durable write")
    await asyncio.gather(*calls)
    took = time.perf_counter() - began
    return took, await outbox


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        store = await Store.open(Path(tmp) / "edgegw.db")
        tasks = TaskOwner("bench")
        batches: list[float] = []
        waits: list[float] = []
        try:
            for n in range(args.rounds):
                for stop in (False, True):
                    took, waited = await _round(store, tasks, n, stop)
                    batches.append(took)
                    waits.append(waited)
        finally:
            await tasks.close()
            await store.close()
    ms = [t * 1000 for t in batches]
    wait_ms = [w * 1000 for w in waits]
    print(f"{len(ms)} batches of {BATCH_MAX} session starts or stops (waited for)")
    print(f"batch duration: p50 {statistics.median(ms):.1f} ms, max {max(ms):.1f} ms")
    print(
        f"durable write's wait behind it: p50 {statistics.median(wait_ms):.1f} ms, "
        f"max {max(wait_ms):.1f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
