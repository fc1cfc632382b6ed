"""The per-minute load history: highest of each minute, bounded, and read back from the
decision log after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgegw.energy.loadhistory import LoadPoint, LoadRecorder, sample_decision_log
from edgegw.store.db import Database
from edgegw.store.decisions import DecisionLog

T0 = 1_700_000_040.0  # the start of a minute


def test_each_minute_keeps_its_highest_current_per_phase() -> None:
    recorder = LoadRecorder()
    recorder.add(T0 + 1, (10.0, 5.0, 5.0), (6.0, 0.0, 0.0), (4.0, 5.0, 5.0))
    recorder.add(T0 + 30, (8.0, 9.0, 5.0), (6.0, 6.0, 0.0), None)
    recorder.add(T0 + 61, (1.0, 1.0, 1.0), None, (1.0, 1.0, 1.0))
    first, second = recorder.points()
    assert first == LoadPoint(T0, (10.0, 9.0, 5.0), (6.0, 6.0, 0.0), (4.0, 5.0, 5.0), 2, "live")
    assert (second.at, second.grid_a, second.ev_a, second.samples) == (
        T0 + 60,
        (1.0, 1.0, 1.0),
        None,
        1,
    )
    assert recorder.started_at == T0 + 1
    assert [p.at for p in recorder.points(since=T0 + 60)] == [T0 + 60]


def test_the_ring_keeps_the_last_day_only() -> None:
    recorder = LoadRecorder(points=1440)
    for minute in range(1500):
        recorder.add(T0 + minute * 60, (float(minute), 0.0, 0.0), None, None)
    points = recorder.points()
    assert len(points) == 1441  # 1,440 closed minutes and the one still open
    assert points[0].at == T0 + 59 * 60
    assert points[-1].grid_a == (1499.0, 0.0, 0.0)


def test_backfilled_minutes_fill_only_the_time_before_recording() -> None:
    recorder = LoadRecorder()
    recorder.add(T0 + 120, (3.0, 3.0, 3.0), None, None)
    sampled = [
        LoadPoint(T0 + 60 * m, (9.0, 9.0, 9.0), None, None, 1, "decision_log") for m in range(4)
    ]
    assert recorder.backfill(sampled) == 2  # the minutes at and after T0+120 are live
    assert [(p.at, p.source) for p in recorder.points()] == [
        (T0, "decision_log"),
        (T0 + 60, "decision_log"),
        (T0 + 120, "live"),
    ]


async def test_the_decision_log_is_read_back_one_round_a_minute(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "edgegw.db")
    log = DecisionLog(db, size=100_000)
    for second in range(3 * 3600):  # three hours of rounds, one a second
        amps = float(second // 60)
        log.record(
            T0 + second,
            "normal",
            {
                "grid_a": [amps + 10, 10.0, 10.0],
                "non_ev_a": [10.0, 10.0, 10.0],
                "meter_role": "grid",
                "sessions": [{"charger": "CP1", "measured_a": [amps, 0.0, 0.0]}],
            },
            {},
        )
        if second % 3600 == 3599:
            await log.flush()
    since, until = T0 + 3600, T0 + 2 * 3600
    points = await sample_decision_log(db, since, until)
    assert [p.at for p in points] == [since + 60 * m for m in range(60)]
    assert points[5].grid_a == (75.0, 10.0, 10.0)  # minute 65: the car drew 65 A
    assert points[5].ev_a == (65.0, 0.0, 0.0)
    assert points[5].non_ev_a == (10.0, 10.0, 10.0)
    assert {p.source for p in points} == {"decision_log"}
    coarse = await sample_decision_log(db, since, until, max_points=10)
    assert 1 <= len(coarse) <= 10
    assert await sample_decision_log(db, T0 - 7200, T0 - 3600) == []
    await db.close()


def test_a_recorder_needs_room() -> None:
    with pytest.raises(ValueError):
        LoadRecorder(points=0)
