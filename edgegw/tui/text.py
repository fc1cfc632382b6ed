"""Words, numbers, bars and sparklines for the caretaker screens.

Everything here is pure and takes the time it needs as an argument, so the screens render the
same text in tests (a frozen clock) as on the box. Meaning is never carried by colour alone:
a state is a word ("CHARGING", "OFFLINE"), a problem starts with "!", a bar carries its
numbers. :class:`Glyphs` has a Unicode set and an ASCII set for the plain Linux console,
whose fonts lack the block characters bars and sparklines are drawn with.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any


@dataclass(frozen=True, slots=True)
class Glyphs:
    """The characters bars and sparklines are drawn with."""

    full: str
    empty: str
    over: str
    spark: str
    """Sparkline levels, lowest first (the first one is "nothing")."""
    dash: str
    sep: str

    @property
    def ascii(self) -> bool:
        return all(ord(c) < 128 for c in self.full + self.empty + self.spark + self.sep)


UNICODE = Glyphs(full="█", empty="░", over="▓", spark=" ▁▂▃▄▅▆▇█", dash="—", sep="·")
ASCII = Glyphs(full="#", empty="-", over="!", spark=" .:-=+*%#", dash="-", sep="|")


def glyphs_for(env: Mapping[str, str] | None = None, *, force_ascii: bool = False) -> Glyphs:
    """ASCII on the Linux console (``TERM=linux``) or a non-UTF-8 locale, else Unicode."""
    env = os.environ if env is None else env
    if force_ascii or env.get("TERM", "") in ("linux", "vt100", "vt220", "dumb"):
        return ASCII
    locale = (env.get("LC_ALL") or env.get("LC_CTYPE") or env.get("LANG") or "").upper()
    if locale and "UTF-8" not in locale and "UTF8" not in locale:
        return ASCII
    return UNICODE


# ------------------------------------------------------------------------------ numbers


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None (the daemon's JSON may hold nulls anywhere)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def amps(value: Any, digits: int = 1) -> str:
    v = number(value)
    return "-- A" if v is None else f"{v:.{digits}f} A"


def kwh(wh: Any) -> str:
    v = number(wh)
    return "-- kWh" if v is None else f"{v / 1000:.2f} kWh"


def kw(w: Any) -> str:
    v = number(w)
    return "-- kW" if v is None else f"{v / 1000:.1f} kW"


def phase_max(values: Any) -> float | None:
    """The highest known value of a per-phase triple (None if none is known)."""
    if not isinstance(values, Sequence) or isinstance(values, str):
        return number(values)
    known = [v for v in (number(x) for x in values) if v is not None]
    return max(known) if known else None


def per_phase_amps(values: Any) -> str:
    """A per-phase limit in words: ``32 A`` when the phases agree, ``32/32/25 A`` when not,
    ``none`` without one (never a Python list, never "none A")."""
    known = phase_values(values) if isinstance(values, Sequence) else (number(values),) * 3
    if all(v is None for v in known):
        return "none"
    if len(set(known)) == 1:
        return f"{known[0]:g} A"
    return "/".join("--" if v is None else f"{v:g}" for v in known) + " A"


def phase_values(values: Any) -> tuple[float | None, float | None, float | None]:
    if not isinstance(values, Sequence) or isinstance(values, str) or len(values) != 3:
        return (None, None, None)
    return (number(values[0]), number(values[1]), number(values[2]))


# -------------------------------------------------------------------------------- times


def duration(seconds: Any) -> str:
    """``45 s``, ``12 min``, ``3 h 05 min``, ``2 d 4 h``."""
    s = number(seconds)
    if s is None:
        return "--"
    s = max(0.0, s)
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s // 60:.0f} min"
    if s < 86400:
        return f"{s // 3600:.0f} h {(s % 3600) // 60:02.0f} min"
    return f"{s // 86400:.0f} d {(s % 86400) // 3600:.0f} h"


def hours_minutes(seconds: Any) -> str:
    """``1h30``, ``0h05``: a session's length in a narrow column."""
    s = number(seconds)
    if s is None:
        return ""
    minutes = round(max(0.0, s) / 60)
    return f"{minutes // 60}h{minutes % 60:02d}"


def ago(at: Any, now: float) -> str:
    t = number(at)
    if t is None:
        return "never"
    if now - t < 5:
        return "just now"
    return f"{duration(now - t)} ago"


def clock_time(at: Any, tz: tzinfo | None, now: float | None = None) -> str:
    """``14:05`` today, ``Mar 03 14:05`` on another day, ``2025-03-03 14:05`` another year."""
    t = number(at)
    if t is None:
        return "--"
    when = datetime.fromtimestamp(t, tz)
    if now is not None:
        today = datetime.fromtimestamp(now, tz)
        if when.date() == today.date():
            return when.strftime("%H:%M:%S")
        if when.year == today.year:
            return when.strftime("%b %d %H:%M")
    return when.strftime("%Y-%m-%d %H:%M")


def stamp(at: Any, tz: tzinfo | None) -> str:
    """A full local date and time (for exports and details)."""
    t = number(at)
    return "--" if t is None else datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M:%S")


# --------------------------------------------------------------------------------- bars


def bar(value: float | None, limit: float | None, width: int, glyphs: Glyphs) -> str:
    """A bar of ``width`` cells: filled up to ``value`` of ``limit``; past the limit the whole
    bar is drawn with the "over" glyph (and the caller says OVER in words)."""
    width = max(1, width)
    if value is None or limit is None or limit <= 0:
        return glyphs.empty * width
    if value > limit:
        return glyphs.over * width
    filled = round(width * max(0.0, value) / limit)
    return glyphs.full * filled + glyphs.empty * (width - filled)


def sparkline(values: Iterable[float | None], width: int, top: float | None, glyphs: Glyphs) -> str:
    """The last ``width`` values scaled to ``top`` (or their maximum); unknown values blank."""
    points = list(values)[-width:] if width > 0 else []
    known = [v for v in points if v is not None]
    scale = top if top is not None and top > 0 else (max(known) if known else 0.0)
    levels = glyphs.spark
    out = []
    for v in points:
        if v is None or scale <= 0:
            out.append(" ")
            continue
        index = round((len(levels) - 1) * min(1.0, max(0.0, v / scale)))
        out.append(levels[max(1, index)] if v > 0 else levels[1])
    return "".join(out).rjust(width)


def chart(values: Sequence[float | None], height: int, top: float, glyphs: Glyphs) -> list[str]:
    """A column chart of ``height`` rows, top row first: each value is a column filled from
    the bottom, the top cell of a column partly filled (Unicode) or marked (ASCII)."""
    rows = [[" "] * len(values) for _ in range(max(1, height))]
    if top <= 0:
        return ["".join(r) for r in rows]
    levels = glyphs.spark
    steps = len(levels) - 1
    for x, v in enumerate(values):
        if v is None or v <= 0:
            continue
        filled = min(1.0, v / top) * len(rows)
        for y in range(len(rows)):
            cell = filled - y
            if cell >= 1:
                rows[len(rows) - 1 - y][x] = levels[-1]
            elif cell > 0:
                rows[len(rows) - 1 - y][x] = levels[max(1, round(cell * steps))]
    return ["".join(r) for r in rows]


def resample(
    points: Sequence[tuple[float, float | None]], start: float, end: float, width: int
) -> list[float | None]:
    """``(time, value)`` points as ``width`` columns from ``start`` to ``end`` (both included):
    each column the highest value that fell in it (None: nothing did)."""
    if width <= 0 or end <= start:
        return []
    step = (end - start) / width
    columns: list[float | None] = [None] * width
    for at, value in points:
        if value is None or not start <= at <= end:
            continue
        index = min(width - 1, int((at - start) / step))
        old = columns[index]
        columns[index] = value if old is None else max(old, value)
    return columns


# ------------------------------------------------------------------------------- states

STATUS_WORDS: Mapping[str, str] = {
    "Charging": "CHARGING",
    "SuspendedEV": "CAR PAUSED",
    "SuspendedEVSE": "PAUSED",
    "Preparing": "PLUGGED IN",
    "Finishing": "FINISHING",
    "Reserved": "RESERVED",
    "Available": "AVAILABLE",
    "Unavailable": "DISABLED",
    "Faulted": "FAULT",
    "Offline": "OFFLINE",
    "Unknown": "UNKNOWN",
}


def status_word(status: Any) -> str:
    return STATUS_WORDS.get(str(status), str(status or "UNKNOWN").upper())


def status_class(status: Any) -> str:
    """A CSS class for a charger state (colour is only a second cue; the word comes first)."""
    return {
        "Charging": "st-charging",
        "SuspendedEV": "st-charging",
        "SuspendedEVSE": "st-paused",
        "Preparing": "st-busy",
        "Finishing": "st-busy",
        "Reserved": "st-busy",
        "Available": "st-free",
        "Unavailable": "st-off",
        "Faulted": "st-fault",
        "Offline": "st-off",
    }.get(str(status), "st-off")


def short(text: Any, width: int) -> str:
    """``text`` cut to ``width`` characters with a trailing ``~`` when cut (ASCII-safe)."""
    s = "" if text is None else str(text)
    if width <= 0:
        return ""
    return s if len(s) <= width else s[: max(0, width - 1)] + "~"
