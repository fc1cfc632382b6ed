"""Site load over time: the dashboard's short history and the energy screen's last 24 hours.

The daemon pushes the site's current as it is *now*; the only history it keeps is the
load-capping decision log (one round a second, the grid current each round saw). The TUI
keeps its own history while it runs, from the live snapshots: one point a minute for 24 h
(the highest current of the minute, per phase, so a short peak is not averaged away), and the
raw samples of the last few minutes for the dashboard sparklines. Points read from the
decision log when the energy screen opens fill the time before the TUI started.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

Phases = tuple[float | None, float | None, float | None]


def _merge(a: Phases | None, b: Phases | None) -> Phases | None:
    if a is None:
        return b
    if b is None:
        return a
    return (_hi(a[0], b[0]), _hi(a[1], b[1]), _hi(a[2], b[2]))


def _hi(x: float | None, y: float | None) -> float | None:
    if x is None:
        return y
    if y is None:
        return x
    return max(x, y)


@dataclass(frozen=True, slots=True)
class LoadPoint:
    at: float
    """Start of the minute (POSIX seconds)."""
    grid_a: Phases | None
    """Site meter current per phase (highest of the minute)."""
    ev_a: Phases | None
    """Chargers' current per phase, added up (highest of the minute)."""


class LoadHistory:
    """Per-minute load points for ``span_s`` and raw samples for ``recent_s``."""

    def __init__(self, span_s: float = 86400.0, step_s: float = 60.0, recent_s: float = 600.0):
        self.span_s = span_s
        self.step_s = step_s
        self.recent_s = recent_s
        self._points: dict[float, LoadPoint] = {}
        self._recent: deque[tuple[float, Phases | None, Phases | None]] = deque()
        self.started_at: float | None = None
        """When the TUI took its first sample (None: no sample yet)."""
        self.backfilled_from: float | None = None
        """The oldest point read from the daemon's decision log, if any were."""

    def add(self, at: float, grid_a: Phases | None, ev_a: Phases | None) -> None:
        if grid_a is None and ev_a is None:
            return
        if self.started_at is None:
            self.started_at = at
        self._put(at, grid_a, ev_a)
        self._recent.append((at, grid_a, ev_a))
        while self._recent and self._recent[0][0] < at - self.recent_s:
            self._recent.popleft()
        self._trim(at)

    def backfill(self, points: Iterable[LoadPoint], now: float) -> int:
        """Add points from before the TUI ran (the decision log); returns how many were new."""
        added = 0
        for point in points:
            if self.started_at is not None and point.at >= self.started_at - self.step_s:
                continue
            key = self._key(point.at)
            if key not in self._points:
                added += 1
            self._put(point.at, point.grid_a, point.ev_a)
            if self.backfilled_from is None or point.at < self.backfilled_from:
                self.backfilled_from = point.at
        self._trim(now)
        return added

    def points(self, now: float) -> list[LoadPoint]:
        """Per-minute points of the last ``span_s``, oldest first."""
        start = now - self.span_s
        return [p for k, p in sorted(self._points.items()) if k >= start]

    def recent(self, now: float) -> list[tuple[float, Phases | None, Phases | None]]:
        """Raw ``(at, grid_a, ev_a)`` samples of the last ``recent_s``."""
        return [s for s in self._recent if s[0] >= now - self.recent_s]

    def _key(self, at: float) -> float:
        return math.floor(at / self.step_s) * self.step_s

    def _put(self, at: float, grid_a: Phases | None, ev_a: Phases | None) -> None:
        key = self._key(at)
        old = self._points.get(key)
        if old is None:
            self._points[key] = LoadPoint(key, grid_a, ev_a)
        else:
            self._points[key] = LoadPoint(key, _merge(old.grid_a, grid_a), _merge(old.ev_a, ev_a))

    def _trim(self, now: float) -> None:
        start = now - self.span_s - self.step_s
        for key in [k for k in self._points if k < start]:
            del self._points[key]
