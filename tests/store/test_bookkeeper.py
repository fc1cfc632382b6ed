"""The bookkeeping writer: one task, one order, nobody waits who need not."""

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

from edgegw.store.bookkeeper import Bookkeeper
from edgegw.store.store import Store
from edgegw.tasks import TaskOwner

START = {"connectorId": 1, "idTag": "AABB", "meterStart": 100, "timestamp": "2026-01-01T10:00:00Z"}
STOP = {"transactionId": 7, "meterStop": 900, "timestamp": "2026-01-01T11:00:00Z"}


async def test_jobs_run_in_the_order_they_were_handed_in() -> None:
    keeper = Bookkeeper("test", clock=lambda: 0.0)
    tasks = TaskOwner("test")
    gate = asyncio.Event()
    done: list[str] = []

    async def blocked() -> None:
        await gate.wait()
        done.append("first")

    async def job(name: str) -> str:
        done.append(name)
        return name

    try:
        first = keeper.post(blocked, "a blocked job")
        keeper.post(lambda: job("second"), "a job")
        assert done == [] and not first.done()  # posting never waits for the write
        third = tasks.spawn(keeper.run(lambda: job("third")), "third")
        await asyncio.sleep(0)
        assert not third.done()  # behind the blocked one
        gate.set()
        assert await third == "third"
        assert first.done() and done == ["first", "second", "third"]
    finally:
        await tasks.close()
        await keeper.close()


async def test_a_failed_posted_job_is_logged_and_the_next_ones_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    keeper = Bookkeeper("test", clock=lambda: 0.0)

    async def fails() -> None:
        raise OSError("disk full")

    async def fine() -> int:
        return 3

    try:
        with caplog.at_level(logging.WARNING):
            posted = keeper.post(fails, "a boot")
            keeper.post(fails, "a boot")
            assert await keeper.run(fine) == 3
        assert posted.done() and posted.exception() is None  # the poster is not raised to
        assert keeper.failed == 2
        warnings = [r.getMessage() for r in caplog.records if "not recorded" in r.getMessage()]
        assert warnings == ["a boot not recorded: disk full (1 record(s) failed so far)"]
        with pytest.raises(OSError, match="disk full"):
            await keeper.run(fails)  # a waiting caller gets its own error
    finally:
        await keeper.close()


async def test_close_runs_what_is_queued_and_refuses_more() -> None:
    keeper = Bookkeeper("test", clock=lambda: 0.0)
    done: list[int] = []

    async def job(n: int) -> None:
        await asyncio.sleep(0)
        done.append(n)

    for n in range(5):
        keeper.post(lambda n=n: job(n), "a job")  # type: ignore[misc]
    await keeper.close()
    assert done == [0, 1, 2, 3, 4]
    with pytest.raises(RuntimeError):
        keeper.post(lambda: job(9), "a job")


async def test_a_relayed_start_handed_in_is_found_by_the_stop_that_follows(
    tmp_path: Path,
) -> None:
    """The relay posts a start the cloud accepted; the cloud then goes away and the gateway
    records the stop itself at once: the stop must find the start, never overtake it."""
    store = await Store.open(tmp_path / "db")
    try:
        posted = store.post_transaction_started("CP1", START, 7)
        assert await store.transaction_open("CP1", 7)  # reads see what was handed in
        assert await store.transaction_stopped("CP1", STOP)
        assert posted.done()
        [row] = await store.transactions("CP1")
        assert (row.transaction_id, row.origin, row.meter_stop) == (7, "cloud", 900)
        store.post_transaction_started("CP1", {**START, "connectorId": 2}, 8)
        store.post_transaction_stopped("CP1", {**STOP, "transactionId": 8})
        assert not await store.transaction_open("CP1", 8)
    finally:
        await store.close()


async def test_records_handed_in_are_written_by_close(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = await Store.open(path)
    store.post_transaction_started("CP1", START, 7)
    store.record_boot("CP1", {"chargePointVendor": "V", "chargePointModel": "M"})
    await store.close()
    store = await Store.open(path)
    try:
        assert [t.transaction_id for t in await store.transactions("CP1")] == [7]
    finally:
        await store.close()


async def test_a_job_that_waits_for_the_bookkeeper_is_refused_not_hung() -> None:
    keeper = Bookkeeper("test", clock=lambda: 0.0)

    async def inner() -> None:
        return None

    async def waits() -> None:
        await keeper.run(inner)

    try:
        with pytest.raises(RuntimeError, match="cannot wait"):
            await keeper.run(waits)
    finally:
        await keeper.close()


def _wal_frames(db_path: Path) -> int:
    """Pages appended to the write-ahead log so far (each commit appends the pages it changed)."""
    wal = db_path.with_name(db_path.name + "-wal")
    return max(0, (wal.stat().st_size - 32) // (4096 + 24)) if wal.exists() else 0


async def test_jobs_queued_together_are_committed_together(tmp_path: Path) -> None:
    """One commit for what was queued, not one per job: the page is written once (SD card)."""
    path = tmp_path / "db"
    store = await Store.open(path)
    try:
        await store.event("test.first", "before")
        await store.bookkeeping.settled()
        frames = _wal_frames(path)
        for n in range(20):
            store.bookkeeping.post(lambda n=n: store.event("test.n", f"event {n}"), "an event")
        await store.bookkeeping.settled()
        written = _wal_frames(path) - frames
        assert [e[3] for e in await store.events(21)][:20] == [
            f"event {n}" for n in range(19, -1, -1)
        ]
        assert 0 < written <= 4  # twenty commits wrote the events page twenty times
    finally:
        await store.close()


async def test_a_failing_job_of_a_batch_leaves_nothing_and_sinks_no_other(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = await Store.open(path)
    keeper = store.bookkeeping
    tasks = TaskOwner("test")

    async def insert(message: str, *, fail: bool = False) -> str:
        async with store.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO events (at, kind, message) VALUES (0, 'test', ?)", (message,)
            )
            if fail:
                raise OSError("the job failed after its insert")
        return message

    gate = asyncio.Event()
    try:
        keeper.post(gate.wait, "the gate")  # what is posted with it shares its transaction
        keeper.post(lambda: insert("kept 1"), "a test record")
        keeper.post(lambda: insert("posted, failed", fail=True), "a test record")
        waited = tasks.spawn(keeper.run(lambda: insert("waited, failed", fail=True)), "waited")
        last = tasks.spawn(keeper.run(lambda: insert("kept 2")), "last")
        await asyncio.sleep(0)
        gate.set()
        assert await last == "kept 2"
        with pytest.raises(OSError, match="after its insert"):
            await waited  # a waiting caller gets its own error
        assert keeper.failed == 1  # the posted one: logged, not raised
        # Committed once the waiting caller has its answer: another connection sees it.
        with sqlite3.connect(path) as other:
            rows = other.execute("SELECT message FROM events WHERE kind = 'test'").fetchall()
        assert [r[0] for r in rows] == ["kept 1", "kept 2"]
    finally:
        await tasks.close()
        await store.close()


async def test_a_job_that_loses_the_batch_transaction_tells_each_caller_what_is_on_disk(
    tmp_path: Path,
) -> None:
    """Disk full or an I/O error makes SQLite roll back the whole transaction, not only the
    failing job's savepoint: the jobs before it in the batch were rolled back with it (their
    callers are told so), the jobs after it run in a transaction of their own, never outside
    one, and no caller is told a record failed that is on disk."""
    path = tmp_path / "db"
    store = await Store.open(path)
    keeper = store.bookkeeping
    tasks = TaskOwner("test")

    async def insert(message: str, *, abort: bool = False) -> str:
        async with store.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO events (at, kind, message) VALUES (0, 'test', ?)", (message,)
            )
            if abort:  # what SQLite does on SQLITE_FULL / SQLITE_IOERR
                await conn.execute("ROLLBACK")
                raise sqlite3.OperationalError("database or disk is full")
        return message

    entered, gate = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        entered.set()
        await gate.wait()

    try:
        keeper.post(hold, "the gate")  # what is queued while it waits shares one batch
        await entered.wait()
        before = tasks.spawn(keeper.run(lambda: insert("before")), "before")
        await asyncio.sleep(0)
        keeper.post(lambda: insert("posted before"), "a test record")
        bad = tasks.spawn(keeper.run(lambda: insert("bad", abort=True)), "bad")
        after = tasks.spawn(keeper.run(lambda: insert("after")), "after")
        await asyncio.sleep(0)
        keeper.post(lambda: insert("posted after"), "a test record")
        gate.set()
        assert await after == "after"
        with pytest.raises(sqlite3.OperationalError, match="disk is full"):
            await bad  # its own error
        with pytest.raises(sqlite3.OperationalError, match="rolled back"):
            await before  # committed nowhere: its batch was rolled back
        assert keeper.failed == 1  # "posted before", rolled back with the batch: logged
        await keeper.settled()
        with sqlite3.connect(path) as other:
            rows = other.execute("SELECT message FROM events WHERE kind = 'test'").fetchall()
        assert sorted(r[0] for r in rows) == ["after", "posted after"]
    finally:
        await tasks.close()
        await store.close()
