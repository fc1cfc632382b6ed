"""The activation log and the peak quarter-hours (edgegw.store.limitlog): kept two years."""

from __future__ import annotations

from pathlib import Path

from edgegw.energy.peak import QuarterResult
from edgegw.store.db import Database
from edgegw.store.limitlog import KEEP_S, LimitLog, activations

NOW = 1_796_659_200.0
YEAR = 365 * 86_400.0


async def test_records_older_than_two_years_are_pruned_and_open_ones_kept(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "gw.db")
    try:
        log = LimitLog(db)

        async def activation(start: float, end: float | None) -> int:
            row = await log.started(
                "dso",
                para14a=True,
                node="steuve",
                at=start,
                limit_a=(6.08,) * 3,
                granted_kw=4.195,
                chargers=1,
            )
            if end is not None:
                await log.ended(row, end)
            return row

        old = await activation(NOW - 3 * YEAR, NOW - 3 * YEAR + 600)
        kept = await activation(NOW - 2 * YEAR + 86_400, NOW - 2 * YEAR + 90_000)
        still_open = await activation(NOW - 3 * YEAR, None)  # in force since: never pruned
        await log.quarter(QuarterResult(NOW - 3 * YEAR, 30.0, 31.0, 60.0, 25.0))
        await log.quarter(QuarterResult(NOW - 900, 20.0, 20.0, 0.0, 25.0))

        assert await log.prune(NOW) == 2
        assert [a.id for a in await activations(db.conn)] == [still_open, kept]
        assert [q[0] for q in await log.quarters_since(0)] == [NOW - 900]
        assert [a.id for a in await log.open_activations()] == [still_open]
        assert old not in [a.id for a in await activations(db.conn)]
        assert KEEP_S >= 2 * 365 * 86_400
    finally:
        await db.close()


async def test_a_quarter_written_twice_keeps_the_last(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "gw.db")
    try:
        log = LimitLog(db)
        await log.quarter(QuarterResult(NOW, 20.0, 21.0, 0.0, 25.0))
        await log.quarter(QuarterResult(NOW, 22.0, 23.0, 10.0, 25.0))
        assert await log.quarters_since(NOW) == [(NOW, 22.0, 23.0, 10.0, 25.0)]
    finally:
        await db.close()
