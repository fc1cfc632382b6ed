"""Peak shaving across a site-meter gap: the quarter-hours it leaves unmeasured are never made
up from interpolated power, so they can never become the month's peak (which would raise the
effective target for the rest of the month although the grid meter never measured it).

Before the fix the first sample after an hour's gap closed every quarter in between with power
interpolated between the last sample and that one, and the highest became the month's peak."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from edgegw.config import parse_config
from edgegw.energy.meterreading import Reading
from edgegw.energy.peak import QUARTER_S, PeakShaver
from edgegw.energy.peakservice import PeakService, max_gap_s

T0 = datetime(2026, 3, 10, 10, 0, tzinfo=UTC).timestamp()
SITE = (63.0, 63.0, 63.0)


def _one_quarter_at(shaver: PeakShaver, start: float, watts: float, every: float = 5) -> None:
    t = start
    while t < start + QUARTER_S:
        shaver.observe(t, watts)
        t += every


def test_a_meter_gap_does_not_raise_the_months_target() -> None:
    shaver = PeakShaver(20.0, site_limit_a=SITE)
    _one_quarter_at(shaver, T0, 12_000.0)
    # no sample from 10:14:55 to 11:30; at 11:30 the site draws 28 kW for a moment
    finished = shaver.observe(T0 + 5400, 28_000.0)
    assert finished == []  # 10:00 (its last 5 s unmeasured) to 11:15: none kept
    assert shaver.gap == (T0, T0 + 5400)
    assert shaver.month_peak(T0 + 5400) == (0.0, None)
    assert shaver.effective_target_kw(T0 + 5400) == 20.0
    status = shaver.status()
    assert status.quarter_start == T0 + 5400  # the new quarter, by the first-sample rule
    assert status.quarter_energy_kwh == 0.0
    # the quarters after the gap are measured and kept again
    for t in range(5, 900, 5):
        shaver.observe(T0 + 5400 + t, 15_000.0)
    finished = shaver.observe(T0 + 6300, 15_000.0)
    assert [q.start for q in finished] == [T0 + 5400]
    assert shaver.gap is None
    assert shaver.month_peak(T0 + 6300)[0] == pytest.approx(15.0, abs=0.1)


def test_a_gap_inside_a_quarter_keeps_what_was_measured() -> None:
    shaver = PeakShaver(20.0, site_limit_a=SITE)
    shaver.observe(T0, 10_000.0)
    shaver.observe(T0 + 100, 10_000.0)
    shaver.observe(T0 + 400, 30_000.0)  # 300 s gap: taken at the first sample's power after it
    assert shaver.gap is None
    expected_kwh = (10.0 * 100 + 30.0 * 300) / 3600
    assert shaver.status().quarter_energy_kwh == pytest.approx(expected_kwh)


def test_the_bound_is_a_parameter() -> None:
    shaver = PeakShaver(20.0, site_limit_a=SITE, max_gap_s=3600)
    shaver.observe(T0, 12_000.0)
    finished = shaver.observe(T0 + 1800, 12_000.0)  # interpolated, as asked
    assert [q.start for q in finished] == [T0, T0 + 900]


class _Sink:
    def __init__(self) -> None:
        self.lowered: list[object] = []

    def lower_limit(self, source: str, node: str | None, limit_a: object) -> None:
        self.lowered.append(limit_a)


def test_the_service_says_which_quarter_hours_a_gap_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = parse_config(
        {
            "site": {"limit_a": 63, "margin_a": 2},
            "buses": {"main": {"transport": "tcp", "host": "127.0.0.1"}},
            "meters": [{"profile": "eastron-sdm630"}],
            "peak": {"target_kw": 20.0, "margin_kw": 0},
        }
    )
    now = [T0]
    service = PeakService(config, _Sink(), wall_clock=lambda: now[0])
    reading = Reading(current_l1_a=17.0, current_l2_a=17.0, current_l3_a=17.0, power_w=12_000.0)
    for t in range(0, 900, 5):
        now[0] = T0 + t
        service.sample(reading)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    now[0] = T0 + 5400
    service.sample(reading)
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "not counted" in warning.getMessage()
    assert service.status()["month_peak_kw"] == 0.0


def test_a_slowly_polled_meter_is_no_gap() -> None:
    config = parse_config(
        {
            "site": {"limit_a": 63},
            "buses": {"main": {"transport": "tcp", "host": "127.0.0.1"}},
            "meters": [{"profile": "eastron-sdm630", "poll_interval": 120}],
            "peak": {"target_kw": 20.0},
        }
    )
    assert max_gap_s(config) == 360.0
