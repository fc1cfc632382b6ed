"""What the demo shows: a status table redrawn in place on a terminal, else a short line every
:data:`LINE_EVERY` seconds and one per scripted event; the closing summary and the verdict on
the cloud's record (:func:`judge`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

from edgegw.demo_site import DRAIN_TIMEOUT_S, Script
from edgegw.livestate import SiteLive
from edgegw.sim.cloud import SimCloud
from edgegw.sim.fleet import FleetStats, SimFleet

LINE_EVERY: Final = 10.0
"""Seconds between two status lines when the output is not a terminal."""


REDRAW_EVERY: Final = 1.0


AFTER_EVENT_S: Final = 4.0
"""A status line this long after a scripted event shows what it did."""


@dataclass(frozen=True, slots=True)
class Verdict:
    complete: bool
    lines: tuple[str, ...]


def judge(
    stats: FleetStats,
    cloud_started: int,
    cloud_stopped: int,
    *,
    queued: int | None,
    drained: bool,
) -> Verdict:
    """Whether every session the chargers ran reached the cloud, judged after draining.

    ``stats`` are the chargers' own counts: a start counts there once the charger heard the
    answer. When the demo stops the chargers, a start may be in flight: the gateway took it
    and the cloud recorded it, but the charger never heard back. The cloud then has more
    starts than the chargers counted: those are in flight, not missing. The record is
    incomplete only when the cloud has fewer starts or stops than the chargers ran, or when
    the gateway still holds messages for it (``queued``).
    """
    missing_starts = max(0, stats.sessions_started - cloud_started)
    missing_stops = max(0, stats.sessions_completed - cloud_stopped)
    in_flight = max(0, cloud_started - stats.sessions_started)
    complete = missing_starts == 0 and missing_stops == 0 and not queued
    lines = []
    if complete:
        lines.append("complete: every session the chargers ran reached the cloud")
    else:
        lines.append("INCOMPLETE: the cloud lacks sessions the chargers ran")
    if in_flight:
        lines.append(
            f"{in_flight} start(s) were in flight when the chargers stopped: the cloud has "
            "them, the chargers never heard the answer (not a loss)"
        )
    if missing_starts:
        lines.append(f"{missing_starts} start(s) the chargers ran are not in the cloud")
    if missing_stops:
        lines.append(f"{missing_stops} stop(s) the chargers sent are not in the cloud")
    if queued:
        lines.append(
            f"{queued} message(s) still wait in the gateway's outbox"
            + ("" if drained else f" after {DRAIN_TIMEOUT_S:.0f} s of draining")
            + ": delivered at its next start"
        )
    return Verdict(complete, tuple(lines))


class Display:
    """Where the summary goes: a table redrawn in place on a terminal, else short lines."""

    def __init__(self, out: TextIO, *, live: bool) -> None:
        self.out = out
        self.live = live
        self._drawn = 0

    def table(self, lines: Sequence[str]) -> None:
        """Redraw the status table in place (terminal only)."""
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F")  # back to the table's first line
        for line in lines:
            self.out.write("\x1b[2K" + line + "\n")
        self.out.flush()
        self._drawn = len(lines)

    def freeze(self) -> None:
        """Leave the table as it is on screen: what follows is written below it."""
        self._drawn = 0

    def line(self, text: str) -> None:
        """One line that stays (a status line, a scripted event, the summary)."""
        if self.live and self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")  # the table is drawn again below
            self._drawn = 0
        self.out.write(text + "\n")
        self.out.flush()


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def phases(values: Sequence[float | None] | None) -> str:
    """The highest phase of a per-phase triple, or "--"."""
    known = [v for v in values or () if v is not None]
    return f"{max(known):.0f} A" if known else "--"


@dataclass(slots=True)
class Status:
    """What the summary says, taken from the running parts."""

    elapsed: float
    duration: float | None
    chargers: int
    stats: FleetStats
    site: SiteLive
    cloud_up: bool
    cloud_messages: int
    now: str
    next: str

    def header(self) -> str:
        span = "until Ctrl-C" if self.duration is None else f"of {clock(self.duration)}"
        return f"edgegw demo: {self.chargers} simulated chargers, {clock(self.elapsed)} {span}"

    def rows(self) -> list[str]:
        site, stats = self.site, self.stats
        limit = "none" if site.limit_a is None else f"{min(site.limit_a):.0f} A"
        capping = site.mode or "off"
        cloud = "ONLINE" if self.cloud_up else "DOWN (outage)"
        queued = "--" if site.sync_queued is None else str(site.sync_queued)
        return [
            self.header(),
            f"  chargers  {site.chargers_connected}/{site.chargers_total} online, "
            f"{site.sessions_active} charging now",
            f"  sessions  {stats.sessions_started} started, {stats.sessions_refused} cards "
            f"refused, {stats.sessions_completed} completed",
            f"  cloud     {cloud}, {self.cloud_messages} messages received, "
            f"{queued} waiting in the gateway's outbox",
            f"  site      limit {limit}, drawn {phases(site.current_a)} building + "
            f"{phases(site.ev_current_a)} cars, load capping {capping}",
            f"  now       {self.now}",
            f"  next      {self.next}",
        ]

    def short(self) -> str:
        site, stats = self.site, self.stats
        queued = "--" if site.sync_queued is None else str(site.sync_queued)
        return (
            f"t={self.elapsed:4.0f}s  chargers {site.chargers_connected}/{site.chargers_total}, "
            f"charging {site.sessions_active} | sessions started {stats.sessions_started}, "
            f"refused {stats.sessions_refused}, completed {stats.sessions_completed} | cloud "
            f"{'online' if self.cloud_up else 'DOWN'}, outbox {queued} | cars "
            f"{phases(site.ev_current_a)}, building {phases(site.current_a)}, capping "
            f"{site.mode or 'off'}"
        )


def _next_text(script: Script | None, phase: dict[str, str], elapsed: float) -> str:
    if script is None:
        return "nothing scripted (short run)"
    if phase["outage"] == "before":
        return f"cloud outage in {script.outage_at - elapsed:.0f} s"
    if phase["outage"] == "on":
        return f"cloud back in {script.outage_at + script.outage_s - elapsed:.0f} s"
    if phase["load"] == "before":
        return f"load-cap event in {script.load_at - elapsed:.0f} s"
    if phase["load"] == "on":
        return f"load-cap event ends in {script.load_at + script.load_s - elapsed:.0f} s"
    return "nothing more scripted: chargers keep charging"


def _summary(
    display: Display,
    cloud: SimCloud,
    fleet: SimFleet,
    *,
    ids: list[str],
    folder: Path,
    config_path: Path,
    queued: int | None,
    drained: bool,
    fuses: list[str] | None = None,
    v201: tuple[bool, list[str]] | None = None,
    stations: int = 0,
) -> bool:
    """The closing summary; True when the cloud's record is complete (``v201``: the 2.0.1
    stations' verdict too). ``ids`` are the 1.6 chargers, ``stations`` the 2.0.1 ones."""
    stats = fleet.stats
    started = [t for (cid, _), t in cloud.transactions.items() if cid in ids]
    stopped = [t for t in started if t.stopped]
    verdict = judge(stats, len(started), len(stopped), queued=queued, drained=drained)
    fleet_size = f"{len(ids)}"
    of_16 = ""
    if stations:
        fleet_size = f"{len(ids) + stations} ({len(ids)} OCPP 1.6, {stations} OCPP 2.0.1)"
        of_16 = " (1.6)"
    lines = [
        "",
        "edgegw demo summary",
        f"  chargers:                {fleet_size}",
        f"  frames sent by chargers: {stats.messages_sent}{of_16}",
        f"  sessions started:        {stats.sessions_started} (refused cards: "
        f"{stats.sessions_refused}){of_16}",
        f"  sessions completed:      {stats.sessions_completed}{of_16}",
        f"  cloud transactions:      {len(started)} started, {len(stopped)} stopped{of_16}",
    ]
    if cloud.serial or cloud.held:
        lines.append(
            f"  slow cloud:              {len(cloud.held)} answers delayed, "
            f"{len(cloud.refused)} overlapping calls refused"
        )
    lines.append(f"  cloud record:            {verdict.lines[0]}")
    lines += [f"                           {more}" for more in verdict.lines[1:]]
    if v201 is not None:
        lines.append(f"  2.0.1 record:            {v201[1][0]}")
        lines += [f"                           {more}" for more in v201[1][1:]]
    if fuses:
        lines.append(f"  fuses:                   {fuses[0]}")
        lines += [f"                           {more}" for more in fuses[1:]]
    config = f"-c {config_path}"
    lines += [
        "",
        f"Look further (the demo's files stay in {folder}; remove it when done):",
        f"  edgegw sessions list {config}   the sessions the gateway recorded",
        f"  edgegw events {config}          what happened, in words",
        f"  less {folder / 'edgegw.log'}",
        "While a demo runs (`edgegw demo --duration 0` runs until Ctrl-C), in another terminal:",
        "  edgegw tui -c <the configuration it prints>   the caretaker's screen",
        "  edgegw energy decisions -c <that configuration>   load capping's decisions",
    ]
    for line in lines:
        display.line(line)
    return verdict.complete and (v201 is None or v201[0])
