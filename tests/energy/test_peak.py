"""Capacity-peak shaving (edgegw.energy.peak) against a load curve kept as data.

The curve (``data/building_load_curve.csv``) is a building's own load per phase every 10 s for
an hour; two cars that could draw 32 A each on three phases come on top. The loop below is the
controller's arithmetic reduced to what matters here: the grid meter sees building + cars,
the shaver caps the site per phase, the cars get what the cap leaves above the building.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edgegw.energy.peak import QUARTER_S, PeakShaver, QuarterResult, quarter_start

CURVE = Path(__file__).parent / "data" / "building_load_curve.csv"
VOLTS = 230.0
SITE_LIMIT = (100.0, 100.0, 100.0)
EV_MAX_A = 64.0  # two cars at 32 A each, three phases
EV_MIN_A = 6.0


def _curve() -> list[tuple[float, tuple[float, float, float]]]:
    lines = [line for line in CURVE.read_text().splitlines() if not line.startswith("#")]
    return [
        (float(row["t_s"]), (float(row["l1_a"]), float(row["l2_a"]), float(row["l3_a"])))
        for row in csv.DictReader(lines)
    ]


def _run(shaver: PeakShaver | None, *, target_kw: float = 25.0) -> list[QuarterResult]:
    """Drive the curve; without a shaver the cars draw their maximum (and a plain shaver only
    keeps the books)."""
    books = shaver or PeakShaver(target_kw, site_limit_a=SITE_LIMIT)
    ev = EV_MAX_A
    finished: list[QuarterResult] = []
    for wall, building in _curve():
        grid = (building[0] + ev, building[1] + ev, building[2] + ev)
        finished += books.observe(wall, sum(grid) * VOLTS)
        if shaver is None:
            continue
        cap = shaver.cap_a(grid)
        assert cap is not None
        room = min(min(SITE_LIMIT[p], cap[p]) - building[p] for p in range(3))
        ev = max(0.0, min(EV_MAX_A, room))
        if ev < EV_MIN_A:
            ev = 0.0
    return finished


def test_the_curve_covers_four_clock_quarters() -> None:
    rows = _curve()
    assert rows[0][0] % QUARTER_S == 0
    assert rows[-1][0] - rows[0][0] == 3600


def test_without_shaving_the_target_is_exceeded() -> None:
    quarters = _run(None)
    assert len(quarters) == 4
    assert max(q.average_kw for q in quarters) > 25.0 + 5


def test_shaving_keeps_every_quarter_hour_under_the_target() -> None:
    shaver = PeakShaver(25.0, site_limit_a=SITE_LIMIT, margin_kw=0.3)
    quarters = _run(shaver)
    assert [q.start % QUARTER_S for q in quarters] == [0.0] * 4
    assert [datetime.fromtimestamp(q.start, UTC).minute for q in quarters] == [0, 15, 30, 45]
    for q in quarters:
        assert q.average_kw <= 25.0, q
        assert q.average_kw > 20.0, q  # the cars got what was left, not nothing
        assert q.limited_s > 0
        assert q.shaved_kw > 0
    status = shaver.status()
    assert status.month == "2026-12"
    assert status.month_peak_kw <= 25.0
    assert status.shaved_quarters == 4
    assert status.effective_target_kw == 25.0


def test_the_projection_is_energy_so_far_plus_the_present_import() -> None:
    start = 1_796_659_200.0  # 16:00:00 UTC
    shaver = PeakShaver(30.0, site_limit_a=SITE_LIMIT)
    for i in range(31):  # 5 minutes at 12 kW
        shaver.observe(start + 10 * i, 12_000.0)
    shaver.observe(start + 310, 24_000.0)  # a jump: 10 s ramp to 24 kW
    status = shaver.status()
    energy_j = 12_000.0 * 300 + (12_000.0 + 24_000.0) / 2 * 10
    assert status.quarter_energy_kwh == pytest.approx(energy_j / 3.6e6)
    assert status.projected_kw == pytest.approx((energy_j + 24_000.0 * 590) / 900 / 1000)
    allowed_w = (30_000.0 * 900 - energy_j) / 590
    assert status.allowed_kw == pytest.approx(allowed_w / 1000)
    grid = (24_000.0 / 3 / VOLTS,) * 3
    cap = shaver.cap_a(grid)
    assert cap is not None
    headroom = (allowed_w - 24_000.0) / (3 * VOLTS)
    assert cap == pytest.approx((grid[0] + headroom,) * 3)
    assert shaver.status().limiting  # the cap is below the site's 100 A


def test_a_month_peak_above_the_target_becomes_the_target() -> None:
    start = 1_796_659_200.0
    earlier = QuarterResult(start - 86_400, 31.5, 31.5, 0.0, 25.0)
    shaver = PeakShaver(25.0, site_limit_a=SITE_LIMIT, history=[earlier])
    shaver.observe(start, 28_000.0)
    status = shaver.status()
    assert status.month_peak_kw == 31.5
    assert status.effective_target_kw == 31.5
    assert status.allowed_kw == pytest.approx(31.5)  # nothing used yet this quarter


def test_a_new_month_starts_from_the_target_again() -> None:
    brussels = ZoneInfo("Europe/Brussels")
    # 2026-12-31 23:45 local (22:45 UTC) was a high quarter; 2027-01-01 00:00 local starts a month.
    high = QuarterResult(datetime(2026, 12, 31, 22, 45, tzinfo=UTC).timestamp(), 40.0, 40.0, 0, 25)
    shaver = PeakShaver(25.0, site_limit_a=SITE_LIMIT, tz=brussels, history=[high])
    new_year = datetime(2026, 12, 31, 23, 0, 5, tzinfo=UTC).timestamp()
    shaver.observe(new_year, 10_000.0)
    assert shaver.status().month == "2027-01"
    assert shaver.status().effective_target_kw == 25.0
    before = datetime(2026, 12, 31, 22, 59, 0, tzinfo=UTC).timestamp()
    assert shaver.effective_target_kw(before) == 40.0


def test_a_restart_mid_quarter_counts_the_part_already_gone() -> None:
    start = 1_796_659_200.0
    shaver = PeakShaver(25.0, site_limit_a=SITE_LIMIT)
    shaver.observe(start + 450, 20_000.0)  # first sample half-way through the quarter
    assert quarter_start(start + 450) == start
    assert shaver.status().quarter_energy_kwh == pytest.approx(20.0 * 450 / 3600)


def test_a_short_gap_over_a_boundary_closes_the_quarter_with_interpolated_energy() -> None:
    start = 1_796_659_200.0
    shaver = PeakShaver(25.0, site_limit_a=SITE_LIMIT)
    t = start
    while t < start + 880:
        shaver.observe(t, 10_000.0)
        t += 10
    finished = shaver.observe(start + 920, 10_000.0)  # 50 s without samples: still measured
    assert [q.start for q in finished] == [start]
    assert [q.average_kw for q in finished] == pytest.approx([10.0])
    assert shaver.gap is None


def test_bad_numbers_change_nothing() -> None:
    shaver = PeakShaver(25.0, site_limit_a=SITE_LIMIT)
    assert shaver.observe(float("nan"), 1.0) == []
    assert shaver.observe(1_796_659_200.0, float("inf")) == []
    assert shaver.cap_a((1.0, 1.0, 1.0)) is None
    with pytest.raises(ValueError):
        PeakShaver(0.0, site_limit_a=SITE_LIMIT)
