"""Events: what happened, newest first.

Two sources, merged by time: the daemon's recorded events (``events``: messages parked by the
cloud, actions taken from here or the CLI, cards refused after an offline start ...) and the
live events pushed as they happen (sessions started and stopped, cards refused, chargers
connecting, the meter lost and back).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from edgegw.cli.output import plural
from edgegw.tui.base import View, sync_table
from edgegw.tui.context import TuiContext
from edgegw.tui.text import clock_time, duration, kwh, number, per_phase_amps, short

SHOWN = 300


def live_event_text(event: Mapping[str, Any]) -> str:
    """A live event in words."""
    kind = str(event.get("event") or "")
    connector = event.get("connector")
    where = f"connector {connector}" if connector else "the charger"
    who = event.get("owner") or event.get("id_tag") or "unknown card"
    tag = f" ({event.get('id_tag')})" if event.get("owner") and event.get("id_tag") else ""
    if kind == "session_started":
        return f"Session started on {where} by {who}{tag}"
    if kind == "session_stopped":
        return (
            f"Session on {where} ended ({event.get('reason') or 'Local'}): "
            f"{kwh(event.get('energy_wh'))} in {duration(event.get('duration_s'))}, {who}"
        )
    if kind == "card_refused":
        return f"Card {who}{tag} refused: {event.get('status')} (at {event.get('during')})"
    if kind == "meter_lost":
        reason = f": {event.get('reason')}" if event.get("reason") else ""
        return f"Meter {event.get('meter')} lost{reason}"
    if kind == "meter_restored":
        return f"Meter {event.get('meter')} reads again"
    if kind == "limit_changed":
        return (
            f"Site limit now {per_phase_amps(event.get('limit_a'))} "
            f"(was {per_phase_amps(event.get('previous_limit_a'))})"
        )
    if kind == "charger_connected":
        return "Connected"
    if kind == "charger_disconnected":
        return "Disconnected"
    if kind == "charger_fault":
        details = ", ".join(
            str(x) for x in (event.get("error_code"), event.get("info")) if x and x != "NoError"
        )
        return f"Fault on {where}: {event.get('status')}" + (f" ({details})" if details else "")
    return kind.replace("_", " ")


class EventsView(View):
    TITLE = "Events"
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("g", "reload", "Reload")
    ]

    def __init__(self, ctx: TuiContext, *, id: str) -> None:
        super().__init__(ctx, id=id)
        self.stored: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        table: DataTable[Any] = DataTable(id="event-table", cursor_type="row", zebra_stripes=True)
        table.add_column("Time", key="time")
        table.add_column("Charger", key="charger")
        table.add_column("What", key="what")
        yield table
        yield Static(id="event-note", markup=False)

    def view_shown(self) -> None:
        self.refresh_data()
        self.action_reload()

    def poll(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        self.run_task(self._load(), "events-load")

    async def _load(self) -> None:
        result = await self.call("events", {"limit": SHOWN})
        self.stored = [e for e in result if isinstance(e, dict)] if isinstance(result, list) else []
        self.refresh_data()

    def rows(self) -> list[tuple[float, str, str, str]]:
        """``(at, key, charger, text)`` of every event, newest first."""
        out: list[tuple[float, str, str, str]] = []
        for e in self.stored:
            at = number(e.get("at")) or 0.0
            kind = str(e.get("kind") or "")
            text = str(e.get("message") or kind)
            if kind.startswith("action."):
                text = f"{kind.removeprefix('action.')}: {text}"
            charger = str(e.get("charger") or "")
            out.append((at, f"s{at}:{kind}:{charger}:{text}", charger, text))
        for live in self.ctx.data.live_events:
            at = number(live.get("at")) or 0.0
            key = f"l{at}:{live.get('event')}:{live.get('charger')}:{live.get('connector')}"
            out.append((at, key, str(live.get("charger") or ""), live_event_text(live)))
        out.sort(key=lambda row: row[0], reverse=True)
        return out[:SHOWN]

    def refresh_data(self) -> None:
        if not self.is_mounted:
            return
        now = self.ctx.clock()
        rows = self.rows()
        seen: set[str] = set()
        unique = []
        for at, key, charger, text in rows:
            if key in seen:
                continue
            seen.add(key)
            unique.append((key, [clock_time(at, self.ctx.tz, now), short(charger, 12), text]))
        sync_table(self.query_one("#event-table", DataTable), unique)
        note = f"{plural(len(unique), 'event')}, newest first."
        self.query_one("#event-note", Static).update(note)
