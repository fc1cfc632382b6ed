"""The Energy page's lines on the limits from outside and peak shaving (issue 22): each
``[[limits]]`` signal (active or off, what it lowers and to what, §14a's grant, a read
error) and the month's capacity peak, the running quarter-hour's projection and what was
shaved. Pure: :func:`outside_lines` turns a snapshot into text."""

from __future__ import annotations

from datetime import tzinfo

from edgegw.live.snapshot import LimitLive, LiveSnapshot, PeakLive
from edgegw.tui.circuits import per_phase
from edgegw.tui.text import clock_time


def _limit_line(limit: LimitLive, tz: tzinfo | None, now: float) -> str:
    where = "the site" if limit.node == "site" else f"board {limit.node}"
    head = f"  {limit.name} ({'§14a, ' if limit.para14a else ''}{limit.source}) on {where}: "
    if not limit.active:
        text = head + "off"
    else:
        since = "" if limit.since is None else f" since {clock_time(limit.since, tz, now)}"
        text = head + f"ACTIVE{since}, {per_phase(limit.limit_a)} A"
        if limit.granted_kw is not None:
            text += f" ({limit.chargers or '?'} charger(s) granted {limit.granted_kw:.1f} kW)"
    if limit.last_error:
        text += f"; cannot read it: {limit.last_error}"
    return text


def _peak_lines(peak: PeakLive, tz: tzinfo | None, now: float) -> list[str]:
    target = f"target {peak.target_kw:g} kW"
    if peak.effective_target_kw > peak.target_kw:
        target += f", {peak.effective_target_kw:g} kW in force (the month went over)"
    at = "" if peak.month_peak_at is None else f" at {clock_time(peak.month_peak_at, tz, now)}"
    lines = [f"Peak {peak.month}: month's peak {peak.month_peak_kw:.1f} kW{at} ({target})"]
    projected = "-" if peak.projected_kw is None else f"{peak.projected_kw:.1f} kW"
    shaving = "SHAVING NOW" if peak.limiting else "not shaving"
    shaved = (
        f"shaved in {peak.shaved_quarters} quarter-hour(s), at most {peak.shaved_kw_max:.1f} kW"
        if peak.shaved_quarters
        else "nothing shaved this month"
    )
    lines.append(f"  this quarter-hour heading for {projected}, {shaving}; {shaved}")
    return lines


def outside_lines(snapshot: LiveSnapshot | None, tz: tzinfo | None, now: float) -> list[str]:
    """The lines, or none when the site has neither limits from outside nor peak shaving."""
    if snapshot is None:
        return []
    lines = []
    if snapshot.limits:
        active = sum(1 for x in snapshot.limits if x.active)
        lines.append(f"Limits from outside: {active} of {len(snapshot.limits)} active")
        lines += [_limit_line(x, tz, now) for x in snapshot.limits]
    if snapshot.peak is not None:
        lines += _peak_lines(snapshot.peak, tz, now)
    return lines
