import asyncio
import sqlite3
from pathlib import Path

import pytest

from edgegw.store.db import BatchAborted, Database, StoreError
from edgegw.store.schema import MIGRATIONS
from edgegw.store.store import Store
from edgegw.tasks import TaskOwner


async def test_fresh_database_is_migrated_private_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "edgegw.db"
    store = await Store.open(path)
    try:
        version = await (await store.db.conn.execute("PRAGMA user_version")).fetchone()
        mode = await (await store.db.conn.execute("PRAGMA journal_mode")).fetchone()
        assert version == (len(MIGRATIONS),)
        assert mode == ("wal",)
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        await store.close()


async def test_reopen_keeps_data_and_resets_connected(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.db"
    store = await Store.open(path)
    await store.charger_seen("CP1", "10.0.0.5", connected=True)
    await store.record_boot("CP1", {"chargePointVendor": "V", "chargePointModel": "M"})
    await store.db.conn.close()  # a crash: no clean close
    store = await Store.open(path)
    try:
        (row,) = await store.chargers()
        assert (row.id, row.vendor, row.model, row.connected) == ("CP1", "V", "M", False)
    finally:
        await store.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="newer than this edgegw"):
        await Database.open(path)


async def test_corrupt_file_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="move it aside"):
        await Database.open(path)


async def test_transactions_and_counters(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "edgegw.db")
    try:
        start = {"connectorId": 1, "idTag": "ABC", "meterStart": 10, "timestamp": "t0"}
        await store.transaction_started("CP1", start, 7, origin="cloud")
        # Ids repeat across chargers (CSMSs number per charger): keyed by charger.
        await store.transaction_started("CP2", start, 7, origin="cloud")
        stop = {"transactionId": 7, "meterStop": 99, "timestamp": "t1", "reason": "Local"}
        assert await store.transaction_stopped("CP2", stop)
        assert not await store.transaction_stopped("CP2", stop)  # already stopped
        rows = await store.transactions()
        assert [(r.charger_id, r.meter_stop) for r in rows] == [("CP1", None), ("CP2", 99)]
        assert [await store.next_counter("x") for _ in range(3)] == [1, 2, 3]
    finally:
        await store.close()


async def test_message_log_is_bounded_and_in_memory(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "edgegw.db", message_log_size=5)
    try:
        for i in range(12):
            store.log_frame("CP1", "charger>", f'[2,"{i}","Heartbeat",{{}}]')
        rows = store.message_log(limit=100)
        assert len(rows) == 5
        assert rows[0].frame == '[2,"11","Heartbeat",{}]'
        tables = await store.db.conn.execute_fetchall(
            "SELECT name FROM sqlite_master WHERE name = 'message_log'"
        )
        assert list(tables) == []  # never written to the database
    finally:
        await store.close()


async def test_refused_identities_are_remembered(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "edgegw.db")
    try:
        await store.charger_refused("NEW1", "10.0.0.9", "unknown identity")
        await store.charger_refused("NEW1", "10.0.0.9", "unknown identity")
        (row,) = await store.chargers()
        assert (row.state, row.refused_count) == ("pending", 2)
    finally:
        await store.close()


async def test_a_write_from_a_task_started_inside_a_batch_fails_instead_of_hanging(
    tmp_path: Path,
) -> None:
    """The batch holds the write lock until its task leaves it: a task it starts and waits
    for (``asyncio.wait_for`` on Python 3.11 starts one) would wait for that lock for ever.
    Another task, started elsewhere, waits for the batch's commit as before."""
    db = await Database.open(tmp_path / "db")
    tasks = TaskOwner("test")

    async def write(message: str) -> None:
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO events (at, kind, message) VALUES (0, 'test', ?)", (message,)
            )

    try:
        started = asyncio.Event()

        async def elsewhere() -> None:
            await started.wait()
            await write("elsewhere")

        other = tasks.spawn(elsewhere(), "elsewhere")
        async with db.batch():
            await write("batched")
            started.set()
            with pytest.raises(RuntimeError, match="inside a batch"):
                await asyncio.wait_for(write("from a child task"), 5)
        await other
        rows = await (await db.conn.execute("SELECT message FROM events")).fetchall()
        assert sorted(r[0] for r in rows) == ["batched", "elsewhere"]
    finally:
        await tasks.close()
        await db.close()


async def test_a_batch_whose_transaction_sqlite_rolled_back_writes_nothing_more(
    tmp_path: Path,
) -> None:
    """After SQLite abandons a batch's transaction (disk full, I/O error), even when the write
    that met it hid the error: no later write of the batch runs outside a transaction (a
    SAVEPOINT there starts one, and its RELEASE commits it), and leaving the batch says so."""
    path = tmp_path / "db"
    db = await Database.open(path)

    async def write(message: str) -> None:
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO events (at, kind, message) VALUES (0, 'test', ?)", (message,)
            )

    try:
        with pytest.raises(BatchAborted, match="rolled back with its batch"):
            async with db.batch():
                await write("first")
                with pytest.raises(BatchAborted):
                    async with db.transaction() as conn:
                        await conn.execute("ROLLBACK")  # SQLITE_FULL, its error swallowed
                with pytest.raises(BatchAborted):
                    await write("after the loss")
        await write("next transaction")  # the database works on
        with sqlite3.connect(path) as other:
            rows = other.execute("SELECT message FROM events WHERE kind = 'test'").fetchall()
        assert rows == [("next transaction",)]
    finally:
        await db.close()
