"""Connector statuses: coalesced in memory, written in batches, never breaking the writer."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

from edgegw.store.store import Store


async def next_round(store: Store) -> None:
    store.status_round.clear()
    async with asyncio.timeout(10):
        await store.status_round.wait()


def on_disk(path: Path) -> dict[tuple[str, int], tuple[str, str | None]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT charger_id, connector_id, status, info FROM connector_status")
        found = {(r[0], r[1]): (r[2], r[3]) for r in rows}
    conn.close()
    return found


async def test_the_latest_status_per_connector_is_read_at_once_and_written_in_a_batch(
    tmp_path: Path,
) -> None:
    path = tmp_path / "edgegw.db"
    store = await Store.open(path, status_interval=0.05)
    try:
        for status in ("Preparing", "Charging", "SuspendedEV"):
            store.record_status("CP1", {"connectorId": 1, "status": status, "errorCode": "NoError"})
        available = {"connectorId": 2, "status": "Available", "errorCode": "NoError"}
        store.record_status("CP1", available)
        assert await store.connector_status("CP1") == {
            1: ("SuspendedEV", "NoError"),
            2: ("Available", "NoError"),
        }
        await next_round(store)
        assert on_disk(path) == {("CP1", 1): ("SuspendedEV", None), ("CP1", 2): ("Available", None)}
    finally:
        await store.close()


async def test_text_sqlite_cannot_encode_never_reaches_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.db"
    store = await Store.open(path, status_interval=0.05)
    try:
        hostile = {"connectorId": 1, "status": "Faulted", "errorCode": "OtherError"}
        store.record_status("CP1", {**hostile, "info": "\ud800", "timestamp": 5})
        await store.record_boot("CP1", {"chargePointVendor": "V\udfff", "chargePointModel": "M"})
        await store.event("test", "a \ud800 b", charger_id="CP1", data={"x": "\ud800"})
        start = {"connectorId": 1, "idTag": "\ud800", "meterStart": 0, "timestamp": "t\ud800"}
        await store.transaction_started("CP1", start, 1, origin="cloud")
        assert await store.started_before("CP1", start) == 1
        await next_round(store)
        store.record_status("CP1", {**hostile, "info": "after"})
        await next_round(store)
        assert on_disk(path) == {("CP1", 1): ("Faulted", "after")}
        (event,) = await store.events()
        assert event[3] == "a \\ud800 b"
    finally:
        await store.close()


async def test_a_full_disk_does_not_stop_the_status_writer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "edgegw.db"
    store = await Store.open(path, status_interval=0.05)
    try:
        pages = await store.db.conn.execute_fetchall("PRAGMA page_count")
        await store.db.conn.execute(f"PRAGMA max_page_count = {next(iter(pages))[0]}")
        for n in range(200):  # more than the free room in the database's pages
            store.record_status("CP1", {"connectorId": n, "status": "Available", "info": "x" * 50})
        await next_round(store)
        await next_round(store)  # failed twice: "database or disk is full", and still running
        (writer,) = store._tasks.tasks
        assert not writer.done()
        warned = [r.getMessage() for r in caplog.records if "not written" in r.getMessage()]
        assert len(warned) == 1 and "database or disk is full" in warned[0], warned
        assert on_disk(path) == {}
        assert len(await store.connector_status("CP1")) == 200  # kept, not lost
        await store.db.conn.execute("PRAGMA max_page_count = 1073741823")  # room again
        await next_round(store)
        assert len(on_disk(path)) == 200
    finally:
        await store.close()


async def test_a_full_disk_drops_connection_and_event_records_instead_of_raising(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edgegw.store.store")
    store = await Store.open(tmp_path / "edgegw.db")
    try:
        pages = await store.db.conn.execute_fetchall("PRAGMA page_count")
        await store.db.conn.execute(f"PRAGMA max_page_count = {next(iter(pages))[0]}")
        for n in range(100):  # would refuse every charger its connection if it raised
            await store.charger_seen(f"CP{n:03d}-{'x' * 200}", "10.0.0.1", connected=True)
            await store.event("test", "y" * 500, charger_id="CP1")
        await store.record_boot("CP000", {"chargePointVendor": "V", "chargePointModel": "M"})
        warned = [r.getMessage() for r in caplog.records if "not recorded" in r.getMessage()]
        assert len(warned) == 1 and "database or disk is full" in warned[0], warned
        await store.db.conn.execute("PRAGMA max_page_count = 1073741823")
        await store.charger_seen("CP-after", None, connected=True)
        assert "CP-after" in [row.id for row in await store.chargers()]
        assert any("takes writes again" in r.getMessage() for r in caplog.records)
    finally:
        await store.close()
