"""The site's load over the last day, one point a minute, for the caretaker's energy page.

The load controller tells :class:`LoadRecorder` what every round saw (about once a second);
the recorder keeps, per minute, the highest current of the minute on each phase (a short peak
is what trips a fuse, so it is not averaged away) for the grid connection, the chargers and
the rest of the building, in a ring of 1,440 minutes: bounded memory, nothing written.

A restart empties the ring. The decision log on disk still has the rounds of the last day, so
:func:`sample_decision_log` reads one stored round per minute from it (a handful of indexed
lookups, never the whole table) to fill the minutes before the recorder started. Those points
are one round each, not the peak of their minute, and their EV current is what the sessions
the allocator controlled last measured (capped at their limit): close, not exact.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from edgegw.energy.allocator import PerPhase
from edgegw.energy.controller import RoundLoad
from edgegw.store.db import Database
from edgegw.store.decisions import first_id_at, id_bounds, inputs_of

DAY_POINTS = 1440
STEP_S = 60.0
_CHUNK = 500  # ids per query when sampling the decision log


@dataclass(frozen=True, slots=True)
class LoadPoint:
    """One minute of site load, in A per phase (None: not known that minute)."""

    at: float
    """Start of the minute (POSIX seconds)."""
    grid_a: PerPhase | None
    ev_a: PerPhase | None
    non_ev_a: PerPhase | None
    samples: int
    """Rounds that went into it (1 for a point read from the decision log)."""
    source: str
    """'live' (recorded while running) or 'decision_log' (read back after a restart)."""


def _hi(a: PerPhase | None, b: PerPhase | None) -> PerPhase | None:
    if a is None:
        return b
    if b is None:
        return a
    return (max(a[0], b[0]), max(a[1], b[1]), max(a[2], b[2]))


class LoadRecorder:
    """Per-minute load points of the last ``points`` minutes. Feed it with :meth:`add`
    (or register :meth:`add_round` as a ``LoadController`` round listener)."""

    def __init__(self, *, points: int = DAY_POINTS, step_s: float = STEP_S) -> None:
        if points < 1 or step_s <= 0:
            raise ValueError("a load recorder needs at least one point of a positive length")
        self.step_s = step_s
        self._ring: deque[LoadPoint] = deque(maxlen=points)
        self._open: LoadPoint | None = None
        self._older: list[LoadPoint] = []
        self.started_at: float | None = None
        """When the first sample arrived (None: none yet)."""

    @property
    def capacity(self) -> int:
        """How many minutes are kept."""
        return self._ring.maxlen or 0

    def add_round(self, load: RoundLoad) -> None:
        self.add(load.at, load.grid_a, load.ev_a, load.non_ev_a)

    def add(
        self,
        at: float,
        grid_a: PerPhase | None,
        ev_a: PerPhase | None,
        non_ev_a: PerPhase | None,
    ) -> None:
        """One sample of the load at POSIX time ``at``."""
        if not math.isfinite(at):
            return
        if self.started_at is None:
            self.started_at = at
        minute = math.floor(at / self.step_s) * self.step_s
        point = self._open
        if point is not None and point.at == minute:
            self._open = LoadPoint(
                minute,
                _hi(point.grid_a, grid_a),
                _hi(point.ev_a, ev_a),
                _hi(point.non_ev_a, non_ev_a),
                point.samples + 1,
                "live",
            )
            return
        if point is not None:  # a new minute (or the clock was set back): close the old one
            self._ring.append(point)
        self._open = LoadPoint(minute, grid_a, ev_a, non_ev_a, 1, "live")

    def backfill(self, points: Iterable[LoadPoint]) -> int:
        """Points from before the recorder started (the decision log); replaces earlier ones.
        Returns how many are kept (those older than the first live sample)."""
        first = self.started_at
        kept = sorted(
            (p for p in points if first is None or p.at + self.step_s <= first),
            key=lambda p: p.at,
        )
        self._older = kept[-(self._ring.maxlen or len(kept)) :]
        return len(self._older)

    def points(self, since: float | None = None) -> list[LoadPoint]:
        """The points (oldest first) whose minute starts at or after ``since``."""
        live = list(self._ring)
        if self._open is not None:
            live.append(self._open)
        merged = {p.at: p for p in self._older}
        merged.update((p.at, p) for p in live)  # a live minute wins over a sampled one
        return [
            merged[at] for at in sorted(merged) if since is None or at >= since - self.step_s / 2
        ]


# --------------------------------------------------------------------------------------------
# Reading the decision log back


async def sample_decision_log(
    db: Database,
    since: float,
    until: float,
    *,
    step_s: float = STEP_S,
    max_points: int = DAY_POINTS,
) -> list[LoadPoint]:
    """About one stored round per ``step_s`` with ``since <= at < until``, as load points.

    The decision log's ids grow with time, so the rounds in the window are found by a binary
    search on the id and then sampled at the id stride that matches ``step_s`` at the log's
    own rate: each lookup is an index seek, and at most ``max_points`` rows are read.
    """
    bounds = await id_bounds(db)
    if bounds is None or until <= since:
        return []
    low, high = bounds
    first = await first_id_at(db, low, high, since)
    end = await first_id_at(db, low, high, until)  # exclusive
    if first is None:
        return []
    last = (end if end is not None else high + 1) - 1
    if last < first:
        return []
    rows = await inputs_of(db, [first, last])
    if len(rows) < 2:
        ids = [first]
    else:
        span_s = max(rows[-1][1] - rows[0][1], 1e-3)
        rate = (last - first) / span_s  # rounds per second
        stride = max(1, round(rate * step_s), math.ceil((last - first + 1) / max_points))
        ids = list(range(first, last + 1, stride))
    found: list[tuple[int, float, str]] = []
    for start in range(0, len(ids), _CHUNK):
        found += await inputs_of(db, ids[start : start + _CHUNK])
    points: dict[float, LoadPoint] = {}
    for _, at, inputs in found:
        minute = math.floor(at / step_s) * step_s
        if minute not in points:
            points[minute] = _point(minute, inputs)
    return [points[k] for k in sorted(points)]


def _point(minute: float, inputs_json: str) -> LoadPoint:
    try:
        inputs = json.loads(inputs_json)
    except ValueError:
        inputs = {}
    if not isinstance(inputs, Mapping):
        inputs = {}
    meter = _phases(inputs.get("grid_a"))
    non_ev = _phases(inputs.get("non_ev_a"))
    ev = [0.0, 0.0, 0.0]
    for session in inputs.get("sessions") or ():
        measured = _phases(session.get("measured_a")) if isinstance(session, Mapping) else None
        if measured is not None:
            for p in range(3):
                ev[p] += measured[p]
    ev_a: PerPhase = (ev[0], ev[1], ev[2])
    grid = meter
    if meter is not None and inputs.get("meter_role", "grid") != "grid":
        grid = (meter[0] + ev[0], meter[1] + ev[1], meter[2] + ev[2])
    return LoadPoint(minute, grid, ev_a, non_ev, 1, "decision_log")


def _phases(value: Any) -> PerPhase | None:
    if not isinstance(value, list | tuple) or len(value) != 3:
        return None
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return None
        out.append(float(v))
    return (out[0], out[1], out[2])
