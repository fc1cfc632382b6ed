"""The decision log: batched writes, a bounded table, time-window queries and CSV export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgegw.store.db import Database
from edgegw.store.decisions import CSV_COLUMNS, DecisionLog, first_id_at, id_bounds, inputs_of

T0 = 1_700_000_000.0


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "edgegw.db")
    yield database
    await database.close()


async def stored(db: Database) -> int:
    row = await (await db.conn.execute("SELECT COUNT(*) FROM decisions")).fetchone()
    assert row is not None
    return int(row[0])


def inputs(i: int) -> dict[str, object]:
    return {"grid_a": [10.0 + i, 11.0, 12.0], "sessions": [{"charger": "CP1", "offered_a": 6.0}]}


def outputs(i: int) -> dict[str, object]:
    return {"allocations": [{"charger": "CP1", "limit_a": 6.0 + i}], "notes": ['x, "quoted"']}


async def test_records_wait_in_memory_until_a_flush(db: Database) -> None:
    log = DecisionLog(db, size=100)
    log.record(T0, "normal", inputs(0), outputs(0))
    assert await stored(db) == 0  # recording never touches the disk
    await log.flush()
    assert await stored(db) == 1
    [decision] = await log.decisions()
    assert (decision.at, decision.mode) == (T0, "normal")
    assert decision.inputs == json.loads(json.dumps(inputs(0)))
    assert decision.outputs["allocations"][0]["limit_a"] == 6.0


async def test_the_table_keeps_the_newest_rounds_only(db: Database) -> None:
    log = DecisionLog(db, size=5)
    for i in range(12):
        log.record(T0 + i, "normal", inputs(i), outputs(i))
        if i % 4 == 3:
            await log.flush()
    await log.flush()
    rows = await log.decisions()
    assert [d.at for d in rows] == [T0 + i for i in range(7, 12)]


async def test_size_zero_records_nothing(db: Database) -> None:
    log = DecisionLog(db, size=0)
    log.record(T0, "normal", inputs(0), outputs(0))
    await log.flush()
    assert await stored(db) == 0
    with pytest.raises(ValueError, match="size"):
        DecisionLog(db, size=-1)


async def test_start_and_close_write_everything_recorded(db: Database) -> None:
    log = DecisionLog(db, size=100, flush_interval=0.01)
    log.start()
    log.record(T0, "fallback", inputs(0), outputs(0))
    log.record(T0 + 1, "normal", inputs(1), outputs(1))
    await log.close()  # ends the flush task between batches, then writes the rest
    assert await stored(db) == 2
    assert [d.mode for d in await log.decisions()] == ["fallback", "normal"]


async def test_non_finite_numbers_become_null(db: Database) -> None:
    log = DecisionLog(db, size=10)
    log.record(T0, "normal", {"meter_age_s": float("inf"), "x": [float("nan")]}, {})
    [decision] = await log.decisions()
    assert decision.inputs == {"meter_age_s": None, "x": [None]}


async def test_window_queries_and_csv_export(db: Database) -> None:
    log = DecisionLog(db, size=10_000)
    for i in range(2500):  # more than one export page
        log.record(T0 + i, "normal" if i % 2 else "fallback", inputs(i), outputs(i))
    window = await log.decisions(since=T0 + 10, until=T0 + 20)
    assert [d.at for d in window] == [T0 + i for i in range(10, 20)]
    assert len(await log.decisions(limit=3)) == 3

    out = io.StringIO()
    count = await log.export_csv(out, since=T0 + 5, until=T0 + 2005)
    assert count == 2000
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 2001
    first = dict(zip(CSV_COLUMNS, rows[1], strict=True))
    assert first["at"] == f"{T0 + 5:.3f}"
    assert first["time_utc"] == "2023-11-14T22:13:25.000+00:00"
    assert first["mode"] == "normal"
    assert json.loads(first["outputs"]) == json.loads(json.dumps(outputs(5)))
    assert json.loads(first["inputs"])["grid_a"][0] == 15.0

    everything = io.StringIO()
    assert await log.export_csv(everything) == 2500


async def test_the_newest_window_starts_at_the_oldest_of_the_newest_rounds(db: Database) -> None:
    log = DecisionLog(db, size=100)
    assert await log.newest_window_start(5) is None  # an empty log
    for i in range(10):
        log.record(T0 + i, "normal", inputs(i), outputs(i))  # buffered: counted all the same
    assert await log.newest_window_start(3) == T0 + 7
    assert await log.newest_window_start(3, until=T0 + 5) == T0 + 2
    assert await log.newest_window_start(50) == T0


async def test_rounds_are_found_by_time_and_read_by_id(db: Database) -> None:
    log = DecisionLog(db, size=100)
    assert await id_bounds(db) is None
    for i in range(10):
        log.record(T0 + 10 * i, "normal", inputs(i), outputs(i))
    await log.flush()
    bounds = await id_bounds(db)
    assert bounds is not None
    low, high = bounds
    assert high - low == 9
    assert await first_id_at(db, low, high, T0 + 35) == low + 4
    assert await first_id_at(db, low, high, T0) == low
    assert await first_id_at(db, low, high, T0 + 91) is None
    rows = await inputs_of(db, [low + 1, low + 3, high + 5])
    assert [(r[0], r[1]) for r in rows] == [(low + 1, T0 + 10), (low + 3, T0 + 30)]
    assert json.loads(rows[0][2])["grid_a"][0] == 11.0
