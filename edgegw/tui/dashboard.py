"""The dashboard: the site at a glance, live.

Top: per phase, the site's current against its limit as a bar with the numbers, and the last
ten minutes as a sparkline. Then the power, the load-capping mode and the meter, the cloud link
and what waits to be synchronised. Then one tile per charger (its state in words, its
current, the energy of the running session, whose card), and the alerts, each a line that
starts with "!". Nothing here depends on colour to be understood.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.content import Content
from textual.events import Resize
from textual.widgets import Static

from edgegw.cli.output import plural
from edgegw.tui.alerts import site_alerts
from edgegw.tui.base import View
from edgegw.tui.context import TuiContext
from edgegw.tui.model import ChargerLive, LiveSnapshot, Phases, SiteLive
from edgegw.tui.text import (
    Glyphs,
    ago,
    amps,
    bar,
    clock_time,
    duration,
    kw,
    kwh,
    per_phase_amps,
    phase_max,
    resample,
    short,
    sparkline,
    status_class,
    status_word,
)

TILE_WIDTH = 25
SPARK_SPAN_S = 600.0
MAX_ALERT_LINES = 4

CLOUD_WORDS = {
    "online": "ONLINE",
    "offline": "OFFLINE",
    "degraded": "PARTLY OFFLINE",
    "standalone": "NONE (standalone site)",
    "unknown": "UNKNOWN (no charger connected)",
}


class ChargerTile(Static):
    """One charger: its id and label on the frame, state and numbers inside."""

    def __init__(self, charger_id: str, *, ascii_frame: bool) -> None:
        super().__init__(markup=False, classes="-ascii" if ascii_frame else "")
        self.styles.width = TILE_WIDTH  # the layout's one number (pages.tcss has the rest)
        self.charger_id = charger_id
        self._state_class = ""

    def show(self, charger: ChargerLive, now: float) -> None:
        self.border_title = short(
            charger.id + (f" {charger.label}" if charger.label else ""), TILE_WIDTH - 4
        )
        cls = status_class(charger.status)
        if cls != self._state_class:
            if self._state_class:
                self.remove_class(self._state_class)
            self.add_class(cls)
            self._state_class = cls
        self.update(Content("\n".join(tile_lines(charger, now))))


def tile_lines(charger: ChargerLive, now: float) -> list[str]:
    """The two lines inside a tile, ``TILE_WIDTH - 4`` characters wide at most."""
    room = TILE_WIDTH - 4
    word = status_word(charger.status)
    if not charger.connected:
        return [word, short(f"seen {ago(charger.last_seen, now)}", room)]
    current = phase_max(charger.current_a)
    first = f"{word:<{room - 9}}{amps(current):>9}" if current is not None else word
    if charger.faults:
        return [first, short(f"! {charger.faults[0]}", room)]
    if "ignores_limit" in charger.flags:
        return [first, "! over its limit"]
    sessions = charger.sessions
    if sessions:
        _, session = sessions[0]
        more = f" +{len(sessions) - 1}" if len(sessions) > 1 else ""
        energy = kwh(charger.energy_wh)
        return [first, short(f"{energy} {session.who}", room - len(more)) + more]
    if charger.enabled is False:
        return [first, "disabled"]
    return [first, ""]


def phase_lines(
    site: SiteLive,
    history: Sequence[tuple[float, Phases | None]],
    now: float,
    width: int,
    glyphs: Glyphs,
) -> list[str]:
    """Three lines, one per phase: bar against the limit, numbers, OVER, sparkline."""
    measured = site.current_a
    source = "site"
    if measured is None and site.ev_current_a is not None:
        measured, source = site.ev_current_a, "EV"
    bar_width = max(8, (width - 32) // 2)
    spark_width = max(0, width - 32 - bar_width)
    lines = []
    for phase in range(3):
        value = measured[phase] if measured is not None else None
        limit = site.limit_a[phase] if site.limit_a is not None else None
        numbers = f"{_num(value)}/{_num(limit)} A"
        over = value is not None and limit is not None and value > limit
        points = [(at, p[phase] if p is not None else None) for at, p in history]
        spark = sparkline(
            resample(points, now - SPARK_SPAN_S, now, spark_width), spark_width, limit, glyphs
        )
        label = f"L{phase + 1}" if source == "site" else f"EV L{phase + 1}"
        lines.append(
            f"{label:<5} {bar(value, limit, bar_width, glyphs)} {numbers:>13} "
            f"{'OVER' if over else '    '} {spark}"
        )
    if measured is None:
        lines[1] = "      no current measured yet (no site meter, no charger reporting)"
    return lines


def _num(value: float | None) -> str:
    return "--" if value is None else f"{value:5.1f}"


def summary_lines(site: SiteLive, now: float, tz: tzinfo | None) -> list[str]:
    meter = site.meter
    if meter is None:
        meter_text = "no site meter"
    elif meter.ok is False:
        meter_text = f"meter LOST ({meter.health})"
    else:
        meter_text = f"meter {meter.health}"
    capping = "off" if site.mode is None else site.mode
    limit = "no limit" if site.limit_a is None else f"limit {per_phase_amps(site.limit_a)}"
    power = f"Site {kw(site.power_w)}, EV {kw(site.ev_power_w)}"
    line1 = f"{power} | {limit} | capping {capping} | {meter_text}"
    cloud = CLOUD_WORDS.get(site.cloud, site.cloud.upper())
    queued = "--" if site.sync_queued is None else str(site.sync_queued)
    oldest = f", oldest {duration(site.sync_oldest_age_s)}" if site.sync_oldest_age_s else ""
    parked = f", {site.sync_parked} PARKED" if site.sync_parked else ""
    line2 = f"Cloud {cloud} | to sync: {queued}{oldest}{parked}"
    line3 = (
        f"Chargers {site.chargers_connected}/{site.chargers_total} online, "
        f"{plural(site.sessions_active, 'session')} | updated {clock_time(site.at, tz, now)}"
    )
    return [line1, line2, line3]


class DashboardView(View):
    TITLE = "Dashboard"
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("p", "retry_parked", "Retry parked"),
    ]
    ACTION_OPS: ClassVar[dict[str, str]] = {"retry_parked": "sync.retry"}

    def compose(self) -> ComposeResult:
        yield Static(id="phases", markup=False)
        yield Static(id="summary", markup=False)
        with VerticalScroll(id="tiles", can_focus=True):
            yield Grid(id="tile-grid")
        ascii_frame = "-ascii" if self.ctx.glyphs.ascii else ""
        yield Static(id="alerts", markup=False, classes=ascii_frame)

    def __init__(self, ctx: TuiContext, *, id: str) -> None:
        super().__init__(ctx, id=id)
        self._tiles: dict[str, ChargerTile] = {}
        self._columns = 0

    def on_resize(self, event: Resize) -> None:
        self._set_columns()
        self.refresh_data()

    def focus_main(self) -> None:
        self.query_one("#tiles").focus()

    def _set_columns(self) -> None:
        columns = max(1, (self.size.width + 1) // (TILE_WIDTH + 1))
        if columns != self._columns:
            self._columns = columns
            grid = self.query_one("#tile-grid", Grid)
            grid.styles.grid_size_columns = columns
            grid.styles.grid_columns = str(TILE_WIDTH)

    def refresh_data(self) -> None:
        if not self.is_mounted:
            return
        ctx = self.ctx
        now = ctx.clock()
        snapshot = ctx.data.snapshot
        phases = self.query_one("#phases", Static)
        summary = self.query_one("#summary", Static)
        if snapshot is None:
            phases.update(ctx.data.mismatch or "Waiting for the first picture of the site ...")
            summary.update("")
            return
        width = max(40, self.size.width)
        recent = [
            (at, grid if grid is not None else ev) for at, grid, ev in ctx.data.history.recent(now)
        ]
        phases.update("\n".join(phase_lines(snapshot.site, recent, now, width, ctx.glyphs)))
        summary.update("\n".join(summary_lines(snapshot.site, now, ctx.tz)))
        self._set_columns()
        self._show_tiles(snapshot, now)
        self._show_alerts(snapshot, now)

    def _show_tiles(self, snapshot: LiveSnapshot, now: float) -> None:
        grid = self.query_one("#tile-grid", Grid)
        ids = [c.id for c in snapshot.chargers]
        if list(self._tiles) != ids:
            for tile in self._tiles.values():
                tile.remove()
            self._tiles = {cid: ChargerTile(cid, ascii_frame=self.ctx.glyphs.ascii) for cid in ids}
            grid.mount_all(self._tiles.values())
        rows = -(-len(ids) // max(1, self._columns))
        grid.styles.grid_size_rows = max(1, rows)
        grid.styles.height = max(1, rows) * 4
        for charger in snapshot.chargers:
            self._tiles[charger.id].show(charger, now)

    def _show_alerts(self, snapshot: LiveSnapshot, now: float) -> None:
        alerts = site_alerts(snapshot, self.ctx.data.live_events, now)
        widget = self.query_one("#alerts", Static)
        if not alerts:
            widget.update("No alerts.")
            widget.remove_class("-alarm")
            return
        lines = [a.text for a in alerts[:MAX_ALERT_LINES]]
        if len(alerts) > MAX_ALERT_LINES:
            lines[-1] = f"! ... and {len(alerts) - MAX_ALERT_LINES + 1} more (see Events)"
        widget.update("\n".join(lines))
        widget.set_class(any(a.severity == "error" for a in alerts), "-alarm")

    # ------------------------------------------------------------ actions

    def action_retry_parked(self) -> None:
        if self.blocked("sync.retry", "retry parked messages"):
            return
        snapshot = self.ctx.data.snapshot
        parked = snapshot.site.sync_parked if snapshot is not None else None
        if not parked:
            self.app.notify("No message is parked.", title="Retry parked")
            return

        async def retry(_: str) -> None:
            result = await self.call("sync.retry")
            count = result.get("requeued", 0) if isinstance(result, dict) else 0
            self.app.notify(f"{plural(count, 'message')} put back in the queue for the cloud.")

        self.confirm(
            "Send the parked messages to the cloud again?",
            f"{plural(parked, 'message')} refused by the cloud and parked. Retrying puts them "
            "back in the queue; if the cloud refuses them again they are parked again.",
            [("retry", "Retry")],
            retry,
            name="sync-retry",
        )
