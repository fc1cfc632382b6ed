"""Site load over time: the dashboard's short history and the energy screen's last 24 hours.

The TUI keeps the raw samples of the last few minutes from the live snapshots for the
dashboard sparklines, and one point a minute for 24 h (the highest current of the minute, per
phase, so a short peak is not averaged away) while it runs.

A daemon with the ``energy.history`` op keeps that day itself (one point a minute, refilled
from its decision log after a restart): :class:`DaemonHistory` is the energy screen's copy of
it, read in full once and then by its newest minutes. Against an older daemon the screen falls
back on :class:`LoadHistory`'s per-minute points, with points read from the decision log when
the screen opens to fill the time before the TUI started.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from edgegw.tui.text import number, phase_values

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


class DaemonHistory:
    """The energy screen's copy of the daemon's own load history (``energy.history``).

    The first read asks for the whole day (1,440 points); each later one only for the minutes
    since the previous read, the one that was still open then included, merged in: a poll
    costs a few points, not a day. A daemon that restarted in between answers with another
    ``recording_since`` (its memory was emptied and refilled from the decision log): its
    whole day is read again.
    """

    def __init__(self, span_s: float = 86400.0) -> None:
        self.span_s = span_s
        self.step_s = 60.0
        self.source: str | None = None
        """What the daemon records from: 'load_capping', 'site_meter' or 'none' (None: no
        answer yet)."""
        self.recording_since: float | None = None
        """When the daemon's recording started (None: it has measured nothing yet)."""
        self.error: str | None = None
        """Why the last read failed (None: it did not)."""
        self.read_at: float | None = None
        """When the last merged answer was asked for, on this screen's clock."""
        self._points: dict[float, LoadPoint] = {}
        self._read_back: set[float] = set()

    @property
    def whole_span(self) -> int:
        """The ``minutes`` that ask for the whole span."""
        return max(1, round(self.span_s / self.step_s))

    def minutes_wanted(self, now: float) -> int:
        """How many minutes the next read asks for."""
        if self.read_at is None or self.source is None or now < self.read_at:
            return self.whole_span
        return min(self.whole_span, math.ceil((now - self.read_at) / self.step_s) + 1)

    def take(self, answer: Any, asked_at: float, minutes: int) -> bool:
        """Merge an answer to ``energy.history`` with ``minutes``, asked at ``asked_at``.

        Returns False, merging nothing, when a partial answer shows that the daemon restarted
        (or changed what it records from) since the last read: ask again for the whole span.
        """
        if not isinstance(answer, Mapping):
            self.error = "edgegw's answer is not a load history"
            return True
        source = str(answer.get("source") or "none")
        since = number(answer.get("recording_since"))
        whole = minutes >= self.whole_span
        if not whole and (source, since) != (self.source, self.recording_since):
            self.read_at = None
            return False
        step = number(answer.get("step_s"))
        if step is not None and step > 0:
            self.step_s = step
        if whole:
            self._points.clear()
            self._read_back.clear()
        items = answer.get("points")
        for item in items if isinstance(items, list) else ():
            point = _daemon_point(item)
            if point is None:
                continue
            self._points[point.at] = point
            if isinstance(item, Mapping) and item.get("source") == "decision_log":
                self._read_back.add(point.at)
            else:
                self._read_back.discard(point.at)
        self.source = source
        self.recording_since = since
        self.read_at = asked_at
        self.error = None
        start = asked_at - self.span_s - self.step_s
        for key in [k for k in self._points if k < start]:
            del self._points[key]
            self._read_back.discard(key)
        return True

    def failed(self, message: str) -> None:
        """A read failed: say so (the points read before stay shown)."""
        self.error = message

    @property
    def read_back(self) -> tuple[float, float] | None:
        """The first and last minute the daemon read back from its decision log (None: none)."""
        if not self._read_back:
            return None
        return (min(self._read_back), max(self._read_back))

    def points(self, now: float) -> list[LoadPoint]:
        """Per-minute points of the last ``span_s``, oldest first."""
        start = now - self.span_s
        return [p for k, p in sorted(self._points.items()) if k >= start]


def _phases(value: Any) -> Phases | None:
    phases = phase_values(value)
    return None if phases == (None, None, None) else phases


def _daemon_point(item: Any) -> LoadPoint | None:
    if not isinstance(item, Mapping):
        return None
    at = number(item.get("at"))
    if at is None:
        return None
    return LoadPoint(at, _phases(item.get("grid_a")), _phases(item.get("ev_a")))
