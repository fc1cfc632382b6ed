"""Capacity-peak shaving in the running daemon: the site meter's samples in, a lowered site
limit out (``lower_limit("peak", None, …)``), the finished quarter-hours kept in the store.

The arithmetic is :mod:`edgegw.energy.peak`; this shell feeds it each site-meter sample (import
power: the meter's total active power, else the sum of its phase powers, else the phase
currents times the nominal voltage), applies the cap it answers while it is below the site's
limit, and writes each finished quarter-hour (the month's peak survives a restart: the month's
quarter-hours are read back at start). A cap is passed on when it falls by 0.1 A or more on a
phase, or rises by 1 A or more (cuts at once, raises without a log line a second).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

from edgegw.config import Config
from edgegw.energy.allocator import PerPhase
from edgegw.energy.external import LimitSink
from edgegw.energy.meterreading import Reading
from edgegw.energy.peak import MAX_GAP_S, PeakShaver, QuarterResult
from edgegw.store.limitlog import LimitLog
from edgegw.tasks import TaskOwner

log = logging.getLogger("edgegw.energy.peak")

SOURCE = "peak"
_HISTORY_S = 32 * 86_400.0
"""Quarter-hours read back at start: enough for any calendar month."""


def import_w(reading: Reading, phases: int, voltage_v: float) -> float | None:
    """The site's import power (W) from a reading, or None when it has none."""
    if reading.power_w is not None and math.isfinite(reading.power_w):
        return reading.power_w
    powers = reading.powers_w[:phases]
    if all(p is not None and math.isfinite(p) for p in powers):
        return sum(p for p in powers if p is not None)
    currents = reading.site_currents_a(phases)
    if currents is None:
        return None
    return sum(currents[:phases]) * voltage_v


def max_gap_s(config: Config) -> float:
    """What counts as a site-meter gap: over :data:`~edgegw.energy.peak.MAX_GAP_S` and over
    three of its poll intervals."""
    polls = [m.poll_interval for m in config.meters if m.role == "site"]
    return max([MAX_GAP_S, *(3.0 * p for p in polls)])


class PeakService:
    """Keeps the quarter-hour average of grid import under ``[peak] target_kw``."""

    def __init__(
        self,
        config: Config,
        sink: LimitSink,
        store: LimitLog | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        assert config.peak is not None and config.site is not None
        self._config = config
        self._peak = config.peak
        self._site = config.site
        self._sink = sink
        self._store = store
        self._wall = wall_clock
        self._tasks = TaskOwner("peak")
        self._sent: PerPhase | None = None
        self.shaver = self._shaver(())

    def _shaver(self, history: tuple[QuarterResult, ...]) -> PeakShaver:
        return PeakShaver(
            self._peak.target_kw,
            site_limit_a=self._site.limits(),
            margin_kw=self._peak.margin_kw,
            voltage_v=self._peak.voltage_v,
            phases=self._site.phases,
            tz=ZoneInfo(self._peak.timezone),
            history=history,
            max_gap_s=max_gap_s(self._config),
        )

    async def start(self) -> None:
        """Read back the month's quarter-hours (its peak holds after a restart)."""
        if self._store is None:
            return
        try:
            rows = await self._store.quarters_since(self._wall() - _HISTORY_S)
        except Exception:
            log.exception("peak shaving: the quarter-hours kept cannot be read")
            return
        self.shaver = self._shaver(tuple(QuarterResult(*row) for row in rows))

    async def close(self) -> None:
        await self._tasks.close("peak shaving closing")

    def sample(self, reading: Reading) -> None:
        """A new site-meter sample (a meter listener)."""
        power = import_w(reading, self._site.phases, self._peak.voltage_v)
        grid = reading.site_currents_a(self._site.phases)
        if power is None or grid is None:
            return
        finished = self.shaver.observe(self._wall(), power)
        if self.shaver.gap is not None:
            first, end = self.shaver.gap
            log.warning(
                "peak shaving: no site-meter sample for over %g s: the quarter-hours from %s to "
                "%s are not counted (not measured)",
                self.shaver.max_gap_s,
                time.strftime("%Y-%m-%d %H:%M", time.localtime(first)),
                time.strftime("%H:%M", time.localtime(end)),
            )
        for quarter in finished:
            log.info(
                "quarter-hour from %s: %.2f kW average (target %.2f kW)%s",
                time.strftime("%H:%M", time.localtime(quarter.start)),
                quarter.average_kw,
                quarter.target_kw,
                f", {quarter.shaved_kw:.2f} kW shaved" if quarter.shaved_kw else "",
            )
            if self._store is not None:
                self._tasks.spawn(self._store.quarter(quarter), "quarter")
        cap = self.shaver.cap_a(grid)
        limiting = cap is not None and self.shaver.limiting
        self._apply(cap if limiting else None)

    def _apply(self, cap: PerPhase | None) -> None:
        sent = self._sent
        if cap is None:
            if sent is not None:
                self._sent = None
                self._sink.lower_limit(SOURCE, None, None)
            return
        cap = (
            math.floor(cap[0] * 10) / 10,
            math.floor(cap[1] * 10) / 10,
            math.floor(cap[2] * 10) / 10,
        )
        if sent is not None and not any(
            cap[p] <= sent[p] - 0.1 or cap[p] >= sent[p] + 1.0 for p in range(3)
        ):
            return
        self._sent = cap
        self._sink.lower_limit(SOURCE, None, cap)

    def status(self) -> dict[str, object]:
        report = self.shaver.status().as_dict()
        report["cap_a"] = None if self._sent is None else list(self._sent)
        return report
