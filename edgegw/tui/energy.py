"""Energy: the last 24 h of site and EV load, the limits from outside and the month's peak
(:mod:`edgegw.tui.outside`), the circuit tree, the load-capping decision log.

On a site with circuits, the tree (site → boards → chargers) shows each node's limit, what
load capping allocated under it, the load now and the headroom left
(:mod:`edgegw.tui.circuits`).

Where the chart's points come from is said on screen, in words. A daemon with the
``energy.history`` op keeps the day itself: one point a minute (the highest current of the
minute per phase) recorded from its load-capping rounds, or from the site meter without load
capping, and after a restart refilled from its decision log. The page reads that whole day
once when it is first shown, then on each poll or reload only the minutes since its last read
(:class:`~edgegw.tui.history.DaemonHistory`); a daemon that restarted in between is read in
full again.

An older daemon without the op keeps no load history: the page then falls back on its own
per-minute history from the live updates (kept while the TUI runs, lost when it exits), with
the time before the TUI started filled from the decision log, one round every half hour. A
site without load capping has no decision log: the chart then starts when the TUI started.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from edgegw.control.client import ControlClientError, RemoteError
from edgegw.tui.base import View, sync_table
from edgegw.tui.circuits import COLUMNS as CIRCUIT_COLUMNS
from edgegw.tui.circuits import tree_rows
from edgegw.tui.context import TuiContext
from edgegw.tui.history import DaemonHistory, LoadHistory, LoadPoint
from edgegw.tui.link import OpUnavailable
from edgegw.tui.outside import outside_lines
from edgegw.tui.text import chart, clock_time, number, phase_max, phase_values, resample, short

log = logging.getLogger(__name__)

DAY_S = 86400.0
BACKFILL_STEP_S = 1800.0
DECISIONS_SHOWN = 100
HISTORY_OP = "energy.history"

SOURCE_WORDS: Mapping[str, str] = {
    "load_capping": "from its load-capping rounds",
    "site_meter": "from the site meter and the chargers' own readings",
}
"""How the daemon records its load history (``energy.history``'s ``source``), in words."""


class EnergyView(View):
    TITLE = "Energy"
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("g", "reload", "Reload")
    ]

    def __init__(self, ctx: TuiContext, *, id: str) -> None:
        super().__init__(ctx, id=id)
        self.decisions: list[Mapping[str, Any]] = []
        self.daemon_history = DaemonHistory(DAY_S)
        self._history_reading = False
        self._backfill_started = False
        self.decision_note = ""

    def compose(self) -> ComposeResult:
        yield Static(id="energy-head", markup=False)
        yield Static(id="energy-chart", markup=False)
        yield Static(id="energy-outside", markup=False)
        tree: DataTable[Any] = DataTable(id="circuit-table", cursor_type="row")
        for label, key in CIRCUIT_COLUMNS:
            tree.add_column(label, key=key)
        tree.display = False
        yield tree
        table: DataTable[Any] = DataTable(
            id="decision-table", cursor_type="row", zebra_stripes=True
        )
        for label, key in (
            ("Time", "time"),
            ("Mode", "mode"),
            ("Budget", "budget"),
            ("Used", "used"),
            ("Limits given", "limits"),
            ("Notes", "notes"),
        ):
            table.add_column(label, key=key)
        yield table

    def on_resize(self) -> None:
        self.refresh_data()

    def view_shown(self) -> None:
        self.refresh_data()
        self.action_reload()

    def poll(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        self.run_task(self._load_decisions(), "energy-decisions")
        if self.ctx.backend.has(HISTORY_OP):
            if not self._history_reading:
                self._history_reading = True
                self.run_task(self.read_history(), "energy-history")
        else:
            self._start_backfill()

    def _start_backfill(self) -> None:
        """The fallback for a daemon without the op: once, fill the time before the TUI ran."""
        if not self._backfill_started and self.ctx.backend.has("energy.decisions"):
            self._backfill_started = True
            self.run_task(self.backfill(), "energy-backfill")

    @property
    def uses_daemon_history(self) -> bool:
        """The chart shows the daemon's own history (else this screen's, for an old daemon)."""
        return self.ctx.backend.has(HISTORY_OP)

    # ------------------------------------------------------------ chart

    def refresh_data(self) -> None:
        if not self.is_mounted:
            return
        now = self.ctx.clock()
        if self.uses_daemon_history:
            points = self.daemon_history.points(now)
            head = daemon_source_text(self.daemon_history, self.ctx.tz, now)
        else:
            points = self.ctx.data.history.points(now)
            head = own_source_text(self.ctx.data.history, self.ctx.tz, now)
        self.query_one("#energy-head", Static).update(head)
        width = max(20, self.size.width - 12)
        height = max(2, min(6, (self.size.height - 12) // 4))
        grid = resample([(p.at, phase_max(p.grid_a)) for p in points], now - DAY_S, now, width)
        ev = resample([(p.at, _total(p.ev_a)) for p in points], now - DAY_S, now, width)
        snapshot = self.ctx.data.snapshot
        limit = None
        if snapshot is not None and snapshot.site.limit_a is not None:
            limit = phase_max(snapshot.site.limit_a)
        lines = self._chart("Site", grid, height, limit) + self._chart("EV", ev, height, None)
        lines.append(" " * 11 + _axis(width))
        self.query_one("#energy-chart", Static).update("\n".join(lines))
        outside = self.query_one("#energy-outside", Static)
        outside_text = outside_lines(snapshot, self.ctx.tz, now)
        outside.display = bool(outside_text)
        outside.update("\n".join(outside_text))
        self._show_tree()

    def _show_tree(self) -> None:
        """The circuit tree, on a site with circuits (a site alone has its numbers above)."""
        tree = self.query_one("#circuit-table", DataTable)
        snapshot = self.ctx.data.snapshot
        tree.display = snapshot is not None and bool(snapshot.circuits)
        if snapshot is not None and snapshot.circuits:
            sync_table(tree, tree_rows(snapshot))

    def _chart(
        self, name: str, values: Sequence[float | None], height: int, top: float | None
    ) -> list[str]:
        known = [v for v in values if v is not None]
        peak = max(known) if known else None
        scale = max(x for x in (top, peak, 1.0) if x is not None)
        rows = chart(values, height, scale, self.ctx.glyphs)
        peak_text = "no data" if peak is None else f"max {peak:.0f} A"
        out = []
        for index, row in enumerate(rows):
            if index == 0:
                label = f"{name:<4}{scale:>4.0f} A"
            elif index == len(rows) - 1:
                label = short(peak_text, 10)
            else:
                label = ""
            out.append(f"{label:<10} |{row}")
        return out

    async def read_history(self) -> None:
        """Read the daemon's history: the whole day the first time, then the newest minutes
        (the whole day again if the daemon restarted since)."""
        history = self.daemon_history
        try:
            for _ in range(2):
                asked_at = self.ctx.clock()
                minutes = history.minutes_wanted(asked_at)
                try:
                    answer = await self.call(HISTORY_OP, {"minutes": minutes})
                except OpUnavailable:  # the daemon turned out older: the fallback takes over
                    break
                except ControlClientError as exc:
                    message = exc.message if isinstance(exc, RemoteError) else str(exc)
                    log.info("load history not read: %s", message)
                    history.failed(message)
                    break
                if history.take(answer, asked_at, minutes):
                    break
        finally:
            self._history_reading = False
        self.refresh_data()
        if not self.uses_daemon_history:
            self._start_backfill()

    async def backfill(self) -> int:
        """Read one decision per half hour of the last day, before the TUI's own history."""
        now = self.ctx.clock()
        history = self.ctx.data.history
        end = history.started_at if history.started_at is not None else now
        points: list[LoadPoint] = []
        at = now - DAY_S
        while at < end:
            try:
                result = await self.call("energy.decisions", {"since": at, "limit": 1})
            except ControlClientError as exc:  # no load capping here: no log to read
                log.info("no load history from the decision log: %s", exc)
                break
            rows = result.get("decisions", []) if isinstance(result, Mapping) else []
            if not rows:
                break
            point = decision_point(rows[0])
            if point is None or point.at >= end:
                break
            points.append(point)
            at = max(at + BACKFILL_STEP_S, point.at + BACKFILL_STEP_S)
        added = history.backfill(points, now)
        self.refresh_data()
        return added

    # ------------------------------------------------------------ decisions

    async def _load_decisions(self) -> None:
        if not self.ctx.backend.has("energy.decisions"):
            self.decision_note = "No decision log: this daemon version has no energy ops."
            self._show_decisions()
            return
        try:
            result = await self.call("energy.decisions", {"limit": DECISIONS_SHOWN})
        except ControlClientError as exc:
            message = exc.message if isinstance(exc, RemoteError) else str(exc)
            said = "no decision log:"
            if message.casefold().startswith(said):  # an older daemon says it itself
                message = message[len(said) :].strip()
            self.decision_note = f"No decision log: {message}"
            self.decisions = []
            self._show_decisions()
            return
        rows = result.get("decisions", []) if isinstance(result, Mapping) else []
        self.decisions = [r for r in rows if isinstance(r, Mapping)][::-1]
        self.decision_note = ""
        self._show_decisions()

    def _show_decisions(self) -> None:
        table = self.query_one("#decision-table", DataTable)
        now = self.ctx.clock()
        if self.decision_note and not self.decisions:
            sync_table(table, [("note", ["", "", "", "", self.decision_note, ""])])
            return
        sync_table(
            table,
            [(str(d.get("id")), decision_cells(d, self.ctx.tz, now)) for d in self.decisions],
        )


def daemon_source_text(history: DaemonHistory, tz: Any, now: float) -> str:
    """Where the daemon's load history comes from, in words, for the head of the page."""
    if history.source is None:
        if history.error:
            return f"Load history: not read from edgegw ({history.error}); trying again."
        return "Reading the load history from edgegw..."
    if history.source == "none":
        text = "No load history: edgegw records none on this site (no load capping, no site meter)."
    else:
        how = SOURCE_WORDS.get(history.source, f"from {history.source}")
        since = history.recording_since
        text = "Last 24 h, highest phase, a point a minute"
        if since is None:
            text += f": edgegw records it {how}, and has measured nothing yet."
        else:
            text += f", recorded by edgegw {how} since {clock_time(since, tz, now)}"
            if history.read_back is not None:
                text += "; before that, read back from its decision log (edgegw restarted)."
            elif since > now - DAY_S + history.step_s:
                text += "; nothing older (edgegw started then)."
            else:
                text += "."
    if history.error:
        text += f" Not updated: {history.error}."
    return text


def own_source_text(history: LoadHistory, tz: Any, now: float) -> str:
    """Where this screen's own history comes from (a daemon without ``energy.history``)."""
    parts = ["Last 24 h, highest phase. This edgegw version keeps no load history:"]
    if history.started_at is None:
        parts.append("no load measured yet.")
        return " ".join(parts)
    started = clock_time(history.started_at, tz, now)
    if history.backfilled_from is not None:
        parts.append(f"before {started}, its decision log, 1 point per 30 min;")
    parts.append(f"since {started}, kept by this screen while it runs.")
    return " ".join(parts)


def _total(values: Any) -> float | None:
    known = [v for v in phase_values(values) if v is not None]
    return max(known) if known else None


def _axis(width: int) -> str:
    """``-24h`` ... ``now`` under a chart ``width`` columns wide."""
    marks = ["-24h", "-18h", "-12h", "-6h", "now"]
    line = [" "] * width
    for i, mark in enumerate(marks):
        pos = min(width - len(mark), round(i * (width - 1) / (len(marks) - 1)))
        pos = max(0, pos - (len(mark) // 2 if 0 < i < len(marks) - 1 else 0))
        line[pos : pos + len(mark)] = mark
    return "".join(line)


def decision_point(decision: Mapping[str, Any]) -> LoadPoint | None:
    """The site and EV current a decision round saw."""
    at = number(decision.get("at"))
    if at is None:
        return None
    inputs = decision.get("inputs")
    inputs = inputs if isinstance(inputs, Mapping) else {}
    grid = inputs.get("grid_a")
    ev: list[float] = [0.0, 0.0, 0.0]
    seen = False
    for session in inputs.get("sessions") or ():
        if not isinstance(session, Mapping):
            continue
        for index, value in enumerate(phase_values(session.get("measured_a"))):
            if value is not None:
                ev[index] += value
                seen = True
    return LoadPoint(
        at,
        None if grid is None else phase_values(grid),
        (ev[0], ev[1], ev[2]) if seen else None,
    )


def decision_cells(decision: Mapping[str, Any], tz: Any, now: float) -> list[str]:
    outputs = decision.get("outputs")
    outputs = outputs if isinstance(outputs, Mapping) else {}
    allocations = []
    for item in outputs.get("allocations") or ():
        if isinstance(item, Mapping):
            limit = number(item.get("limit_a"))
            amount = "--" if limit is None else f"{limit:g}"
            allocations.append(f"{item.get('charger')}/{item.get('connector')}={amount}")
    budget = phase_max(outputs.get("budget_a"))
    used = phase_max(outputs.get("used_a"))
    notes = "; ".join(str(n) for n in outputs.get("notes") or ())
    return [
        clock_time(decision.get("at"), tz, now),
        str(decision.get("mode") or ""),
        "--" if budget is None else f"{budget:.1f} A",
        "--" if used is None else f"{used:.1f} A",
        short(", ".join(allocations) or "-", 40),
        short(notes, 60),
    ]
