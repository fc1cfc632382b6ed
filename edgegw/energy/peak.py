"""Capacity-peak shaving: keep the quarter-hour average of grid import under a monthly target.

Pure, no I/O, no clock of its own: the caller gives each meter sample's POSIX time.

Flanders (and other capacity tariffs) bills the month's highest **15-minute average** of grid
import, the quarter-hours aligned to the clock as the grid operator's meter has them (…:00,
:15, :30, :45). Every UTC offset in use is a whole number of quarter-hours, so a quarter-hour
starts at a multiple of 900 s of POSIX time in every time zone.

:class:`PeakShaver` follows the running quarter-hour from the site meter's import power
(:meth:`PeakShaver.observe`, integrated linearly between samples; before the first sample of a
quarter, e.g. after a restart, the first sample's power is assumed for the part already gone,
which can only overstate it) and answers, each round, the site limit per phase that keeps the
average under the target (:meth:`PeakShaver.cap_a`):

* the **projection**: the energy so far plus the present import for the rest of the quarter;
* the **allowed power** for the rest of the quarter: ``(target x 900 s - energy so far) /
  remaining s``; the chargers' share is lowered by what the present import exceeds it, spread
  over the phases (``cap_p = grid_p + (allowed - import) / (phases x V)``, never below 0), so
  the allocator, which keeps every phase under the site limit, takes it from the chargers;
* the **effective target** is the month's peak once that exceeds the target: the tariff bills
  the month's highest quarter-hour, so holding later quarter-hours below it gains nothing.

Across a meter gap (no sample for over ``max_gap_s``: 60 s, or three of the site meter's poll
intervals if longer) nothing is interpolated: the quarter-hours it leaves unmeasured are
dropped (never kept, exported or counted toward the month's peak) and the quarter after it
starts by the first-sample rule; a gap inside one quarter takes the first sample's power after
it for the time it lasted.

A quarter-hour that ends is returned by :meth:`observe` (:class:`QuarterResult`) for the
caller to keep; what was shaved is reported per quarter as the highest projection seen minus
the average reached, for quarters during which the cap was below the site's limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

PerPhase = tuple[float, float, float]

QUARTER_S = 900.0

MAX_GAP_S = 60.0
"""A longer time between two meter samples is a gap: nothing is interpolated across it."""


def quarter_start(wall: float) -> float:
    """The start (POSIX s) of the clock quarter-hour holding ``wall``."""
    return math.floor(wall / QUARTER_S) * QUARTER_S


@dataclass(frozen=True, slots=True)
class QuarterResult:
    """One finished quarter-hour."""

    start: float
    """POSIX seconds, a multiple of 900."""
    average_kw: float
    projected_max_kw: float
    """The highest projection of its average seen during it."""
    limited_s: float
    """Seconds during which the cap held the chargers below the site's limit."""
    target_kw: float
    """The effective target it was held to."""

    @property
    def shaved_kw(self) -> float:
        """How much lower the average ended than it was heading for, where the cap acted."""
        if self.limited_s <= 0:
            return 0.0
        return max(0.0, self.projected_max_kw - self.average_kw)


@dataclass(frozen=True, slots=True)
class PeakStatus:
    """The month so far and the running quarter-hour, for the views."""

    month: str
    """``YYYY-MM`` in the shaver's time zone."""
    target_kw: float
    effective_target_kw: float
    month_peak_kw: float
    month_peak_at: float | None
    quarter_start: float | None
    quarter_energy_kwh: float
    projected_kw: float | None
    allowed_kw: float | None
    limiting: bool
    shaved_quarters: int
    """Quarter-hours of the month during which the cap acted."""
    shaved_kw_max: float
    """The most a quarter-hour's average was brought down this month."""

    def as_dict(self) -> dict[str, object]:
        return {
            "month": self.month,
            "target_kw": self.target_kw,
            "effective_target_kw": self.effective_target_kw,
            "month_peak_kw": round(self.month_peak_kw, 3),
            "month_peak_at": self.month_peak_at,
            "quarter_start": self.quarter_start,
            "quarter_energy_kwh": round(self.quarter_energy_kwh, 4),
            "projected_kw": None if self.projected_kw is None else round(self.projected_kw, 3),
            "allowed_kw": None if self.allowed_kw is None else round(self.allowed_kw, 3),
            "limiting": self.limiting,
            "shaved_quarters": self.shaved_quarters,
            "shaved_kw_max": round(self.shaved_kw_max, 3),
        }


class PeakShaver:
    """The running quarter-hour and the month's peak (see the module's text).

    ``site_limit_a`` is the site's configured limit per phase (only to tell whether the cap
    acts); ``history`` the quarter-hours already kept (the month's peak survives a restart);
    ``tz`` the time zone whose calendar month the tariff uses.
    """

    def __init__(
        self,
        target_kw: float,
        *,
        site_limit_a: PerPhase,
        margin_kw: float = 0.0,
        voltage_v: float = 230.0,
        phases: int = 3,
        tz: tzinfo = UTC,
        history: Iterable[QuarterResult] = (),
        max_gap_s: float = MAX_GAP_S,
    ) -> None:
        if not math.isfinite(target_kw) or target_kw <= 0:
            raise ValueError("the peak target must be a positive number of kW")
        self.max_gap_s = max_gap_s
        self.gap: tuple[float, float] | None = None
        """Set by the last :meth:`observe` that followed a gap: the start of the first
        quarter-hour it dropped and the end of the last (see :meth:`_across_gap`)."""
        self.target_kw = target_kw
        self._limit = site_limit_a
        self._margin_w = margin_kw * 1000.0
        self._volts = voltage_v
        self._phases = phases
        self._tz = tz
        self._quarters: list[QuarterResult] = []
        """The running month's quarter-hours (``_month``), and its highest (``_top``)."""
        self._month: str | None = None
        self._top: QuarterResult | None = None
        self._start: float | None = None
        self._energy_j = 0.0
        self._last: tuple[float, float] | None = None
        self._projected_max_w = 0.0
        self._limited_s = 0.0
        self._limiting = False
        for quarter in sorted(history, key=lambda q: q.start):
            self._keep(quarter)

    # ------------------------------------------------------------------ the month

    def month_of(self, wall: float) -> str:
        return datetime.fromtimestamp(wall, self._tz).strftime("%Y-%m")

    def _month_quarters(self, month: str) -> list[QuarterResult]:
        return self._quarters if month == self._month else []

    def _keep(self, quarter: QuarterResult) -> None:
        month = self.month_of(quarter.start)
        if month != self._month:  # only the running month matters for the target
            self._month, self._quarters, self._top = month, [], None
        self._quarters.append(quarter)
        if self._top is None or quarter.average_kw > self._top.average_kw:
            self._top = quarter

    def month_peak(self, wall: float) -> tuple[float, float | None]:
        """The month's highest quarter-hour average (kW) and its start, for ``wall``'s month."""
        top = self._top
        if top is None or self.month_of(wall) != self._month:
            return 0.0, None
        return top.average_kw, top.start

    @property
    def limiting(self) -> bool:
        """Whether the last cap was below the site's limit."""
        return self._limiting

    def effective_target_kw(self, wall: float) -> float:
        return max(self.target_kw, self.month_peak(wall)[0])

    # ------------------------------------------------------------------ samples

    def observe(self, wall: float, import_w: float) -> list[QuarterResult]:
        """A meter sample at ``wall``: import power in W (export negative). Returns the
        quarter-hours it finished (usually none, one at a boundary; more after a gap)."""
        if not math.isfinite(wall) or not math.isfinite(import_w):
            return []
        last = self._last
        if last is not None and wall <= last[0]:
            return []  # a sample out of order changes nothing
        finished: list[QuarterResult] = []
        self.gap = None
        if last is None or self._start is None:
            self._begin(wall, import_w)
        elif wall - last[0] > self.max_gap_s:
            self._across_gap(last[0], wall, import_w)
        else:
            t0, p0 = last
            while self._start + QUARTER_S <= wall:
                end = self._start + QUARTER_S
                p_end = p0 + (import_w - p0) * (end - t0) / (wall - t0)
                self._energy_j += (p0 + p_end) / 2 * (end - t0)
                if self._limiting:
                    self._limited_s += end - t0
                finished.append(self._close(end))
                t0, p0 = end, p_end
            self._energy_j += (p0 + import_w) / 2 * (wall - t0)
            if self._limiting:
                self._limited_s += wall - t0
        self._last = (wall, import_w)
        self._projected_max_w = max(self._projected_max_w, self._projection_w(wall, import_w))
        return finished

    def _begin(self, wall: float, import_w: float) -> None:
        """The first-sample rule: the part of ``wall``'s quarter already gone is taken at
        ``import_w``."""
        self._start = quarter_start(wall)
        self._energy_j = import_w * (wall - self._start)
        self._projected_max_w = 0.0
        self._limited_s = 0.0

    def _across_gap(self, since: float, wall: float, import_w: float) -> None:
        """No sample from ``since`` to ``wall`` (longer than ``max_gap_s``): nothing is
        interpolated. The quarter-hours the gap ended unmeasured are dropped (never kept, never
        the month's peak, ``gap`` says which); the gap's part of ``wall``'s quarter is taken at
        the first sample's power after it, as after a restart."""
        assert self._start is not None
        if self._start + QUARTER_S > wall:  # the same quarter: its measured part is kept
            self._energy_j += import_w * (wall - since)
            return
        self.gap = (self._start, quarter_start(wall))
        self._begin(wall, import_w)

    def _close(self, end: float) -> QuarterResult:
        assert self._start is not None
        quarter = QuarterResult(
            start=self._start,
            average_kw=self._energy_j / QUARTER_S / 1000.0,
            projected_max_kw=max(self._projected_max_w, self._energy_j / QUARTER_S) / 1000.0,
            limited_s=self._limited_s,
            target_kw=self.effective_target_kw(self._start),
        )
        self._keep(quarter)
        self._start = end
        self._energy_j = 0.0
        self._projected_max_w = 0.0
        self._limited_s = 0.0
        return quarter

    def _remaining(self, wall: float) -> float:
        assert self._start is not None
        return max(1.0, self._start + QUARTER_S - wall)

    def _projection_w(self, wall: float, import_w: float) -> float:
        return (self._energy_j + import_w * self._remaining(wall)) / QUARTER_S

    def _allowed_w(self, wall: float) -> float:
        target_j = (self.effective_target_kw(wall) * 1000.0 - self._margin_w) * QUARTER_S
        return (target_j - self._energy_j) / self._remaining(wall)

    # ------------------------------------------------------------------ the cap

    def cap_a(self, grid_a: PerPhase) -> PerPhase | None:
        """The site limit per phase (A) that keeps the quarter-hour under the target, given
        the latest sample's phase currents; None before the first sample."""
        last = self._last
        if last is None or self._start is None:
            self._limiting = False
            return None
        wall, import_w = last
        headroom_w = self._allowed_w(wall) - import_w
        per_phase = headroom_w / (self._phases * self._volts)
        if self._phases == 1:
            cap = max(0.0, grid_a[0] + per_phase)
            caps: PerPhase = (cap, cap, cap)
        else:
            caps = (
                max(0.0, grid_a[0] + per_phase),
                max(0.0, grid_a[1] + per_phase),
                max(0.0, grid_a[2] + per_phase),
            )
        phases = range(1 if self._phases == 1 else 3)
        self._limiting = any(caps[p] < self._limit[p] for p in phases)
        return caps

    # ------------------------------------------------------------------ report

    def status(self) -> PeakStatus:
        last = self._last
        wall = last[0] if last is not None else None
        month = self.month_of(wall) if wall is not None else ""
        peak, peak_at = self.month_peak(wall) if wall is not None else (0.0, None)
        quarters = self._month_quarters(month) if wall is not None else []
        shaved = [q for q in quarters if q.limited_s > 0]
        projected = allowed = None
        if last is not None and self._start is not None:
            projected = self._projection_w(last[0], last[1]) / 1000.0
            allowed = self._allowed_w(last[0]) / 1000.0
        return PeakStatus(
            month=month,
            target_kw=self.target_kw,
            effective_target_kw=max(self.target_kw, peak),
            month_peak_kw=peak,
            month_peak_at=peak_at,
            quarter_start=self._start,
            quarter_energy_kwh=self._energy_j / 3.6e6,
            projected_kw=projected,
            allowed_kw=allowed,
            limiting=self._limiting,
            shaved_quarters=len(shaved),
            shaved_kw_max=max((q.shaved_kw for q in shaved), default=0.0),
        )
