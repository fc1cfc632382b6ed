"""Sessions: the charging history with energy and duration, filtered, exportable to CSV.

The card and charger filters go to the daemon (``sessions.list``, which reads a card id in
any form a reader prints it); the owner filter matches the owners of the sessions fetched.
Filters apply on Enter; Escape leaves the filter boxes for the table. The list follows the
site by itself: it is read again on every poll and when a session starts or ends, with the
filters last applied (not what is half typed). States are the command line's words (``open``,
``finished``). ``x`` writes what the filters select (every page of it) to a CSV file on this
machine.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Static

from edgegw.cli.output import plural
from edgegw.tui.base import View, sync_table
from edgegw.tui.context import TuiContext
from edgegw.tui.dialogs import Field, FormDialog
from edgegw.tui.text import clock_time, hours_minutes, short, stamp

PAGE = 200
"""Sessions shown (newest first)."""
EXPORT_MAX = 100_000
SESSION_EVENTS = frozenset({"session_started", "session_stopped"})
"""Live events after which the list is read again."""
CSV_COLUMNS = (
    "started",
    "stopped",
    "charger",
    "connector",
    "card",
    "id_tag",
    "owner",
    "label",
    "energy_kwh",
    "duration_min",
    "state",
    "stop_reason",
    "transaction_id",
    "cloud_transaction_id",
)


class SessionsView(View):
    TITLE = "Sessions"
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("slash", "filter", "Filter"),
        Binding("escape", "leave_filter", "Leave filter", show=False),
        Binding("x", "export", "Export CSV"),
        Binding("g", "reload", "Reload"),
    ]

    def __init__(self, ctx: TuiContext, *, id: str) -> None:
        super().__init__(ctx, id=id)
        self.sessions: list[dict[str, Any]] = []
        self._loaded = False
        self._loading = False
        self.applied: dict[str, str] = {"card": "", "owner": "", "charger": ""}
        """The filters as last applied (Enter): what the list and the export select."""
        self._seen_event: Mapping[str, Any] | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="session-filters"):
            yield Input(placeholder="card", id="filter-card")
            yield Input(placeholder="owner", id="filter-owner")
            yield Input(placeholder="charger", id="filter-charger")
        table: DataTable[Any] = DataTable(id="session-table", cursor_type="row", zebra_stripes=True)
        for label, key in (
            ("Started", "started"),
            ("Charger", "charger"),
            ("Card", "card"),
            ("Owner", "owner"),
            ("kWh", "kwh"),
            ("Time", "duration"),
            ("State", "state"),
        ):
            table.add_column(label, key=key)
        yield table
        yield Static(id="session-note", markup=False)

    def view_shown(self) -> None:
        if not self._loaded:
            self.action_reload()
        else:
            self._refresh_list()

    def poll(self) -> None:
        self._refresh_list()

    def refresh_data(self) -> None:
        """A session started or ended since the last look: read the list again."""
        events = self.ctx.data.live_events
        newest = events[-1] if events else None
        if newest is self._seen_event:
            return
        fresh: list[Mapping[str, Any]] = []
        for event in reversed(events):
            if event is self._seen_event:
                break
            fresh.append(event)
        self._seen_event = newest
        if self._loaded and any(e.get("event") in SESSION_EVENTS for e in fresh):
            self._refresh_list()

    def _refresh_list(self) -> None:
        """Read the list again with the applied filters (one read at a time)."""
        if self._loaded and not self._loading:
            self._loading = True
            self.run_task(self._load(), "sessions-load")

    def filters(self) -> dict[str, str]:
        """What the filter boxes hold now (applied on Enter)."""
        return {
            name: self.query_one(f"#filter-{name}", Input).value.strip()
            for name in ("card", "owner", "charger")
        }

    def _args(self) -> dict[str, Any]:
        f = self.applied
        args: dict[str, Any] = {}
        if f["card"]:
            args["card"] = f["card"]
        if f["charger"]:
            args["charger"] = f["charger"]
        return args

    def _owner_match(self, session: dict[str, Any]) -> bool:
        wanted = self.applied["owner"].casefold()
        return not wanted or wanted in str(session.get("owner") or "").casefold()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_reload()
        self.query_one("#session-table", DataTable).focus()

    def action_filter(self) -> None:
        self.query_one("#filter-card", Input).focus()

    def action_leave_filter(self) -> None:
        """Escape in a filter box: back to the table (the filters applied stay as they are)."""
        if isinstance(self.app.focused, Input):
            self.query_one("#session-table", DataTable).focus()

    def action_reload(self) -> None:
        self._loaded = True
        self.applied = self.filters()
        self._loading = True
        self.run_task(self._load(), "sessions-load")

    async def _load(self) -> None:
        try:
            await self._read()
        finally:
            self._loading = False

    async def _read(self) -> None:
        note = self.query_one("#session-note", Static)
        if not self.ctx.backend.has("sessions.list"):
            note.update("Session history is not available in this daemon version.")
            return
        result = await self.call("sessions.list", {**self._args(), "limit": PAGE})
        rows = result.get("sessions", []) if isinstance(result, dict) else []
        self.sessions = [s for s in rows if isinstance(s, dict) and self._owner_match(s)]
        self._show()
        more = " (more: export writes them all)" if result.get("next") is not None else ""
        count = plural(len(self.sessions), "session")
        note.update(f"{count}, newest first{more}. x: export to CSV")

    def _show(self) -> None:
        now = self.ctx.clock()
        rows = []
        for s in self.sessions:
            energy = s.get("energy_kwh")
            rows.append(
                (
                    str(s.get("id")),
                    [
                        clock_time(s.get("started_ts"), self.ctx.tz, now),
                        short(f"{s.get('charger')}/{s.get('connector')}", 12),
                        short(s.get("card") or s.get("id_tag") or "", 14),
                        short(s.get("owner") or "", 14),
                        "--" if energy is None else f"{energy:.2f}",
                        hours_minutes(s.get("duration_s")),
                        str(s.get("state") or ""),
                    ],
                )
            )
        sync_table(self.query_one("#session-table", DataTable), rows)

    # ------------------------------------------------------------ export

    def default_export_path(self) -> Path:
        moment = stamp(self.ctx.clock(), self.ctx.tz).replace(" ", "-").replace(":", "")
        return self.ctx.export_dir / f"edgegw-sessions-{moment}.csv"

    def action_export(self) -> None:
        def chosen(values: dict[str, str] | None) -> None:
            if values is None or not values["path"].strip():
                return
            self.run_task(self.export(Path(values["path"].strip()).expanduser()), "sessions-export")

        self.app.push_screen(
            FormDialog(
                "Export sessions to a CSV file",
                "The sessions the filters select, every page of them (not only those shown).",
                [Field("path", "File", str(self.default_export_path()))],
                save_label="Export",
            ),
            chosen,
        )

    async def export(self, path: Path) -> int:
        """Write every session the filters select to ``path``; returns how many."""
        sessions: list[dict[str, Any]] = []
        after: Any = None
        while len(sessions) < EXPORT_MAX:
            args = {**self._args(), "limit": 1000, "order": "oldest"}
            if after is not None:
                args["after"] = after
            result = await self.call("sessions.list", args)
            page = result.get("sessions", []) if isinstance(result, dict) else []
            sessions += [s for s in page if isinstance(s, dict) and self._owner_match(s)]
            after = result.get("next") if isinstance(result, dict) else None
            if after is None or not page:
                break
        try:
            await asyncio.to_thread(write_csv, path, sessions, self.ctx.tz)
        except OSError as exc:
            self.app.notify(f"Cannot write {path}: {exc}", title="Export", severity="error")
            return 0
        self.app.notify(f"Wrote {plural(len(sessions), 'session')} to {path}", title="Export")
        return len(sessions)


def write_csv(path: Path, sessions: list[dict[str, Any]], tz: Any) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for s in sessions:
            seconds = s.get("duration_s")
            writer.writerow(
                (
                    stamp(s.get("started_ts"), tz),
                    "" if s.get("stopped_ts") is None else stamp(s.get("stopped_ts"), tz),
                    s.get("charger", ""),
                    s.get("connector", ""),
                    s.get("card") or "",
                    s.get("id_tag") or "",
                    s.get("owner") or "",
                    s.get("label") or "",
                    "" if s.get("energy_kwh") is None else s.get("energy_kwh"),
                    "" if seconds is None else round(float(seconds) / 60, 1),
                    s.get("state", ""),
                    s.get("stop_reason") or "",
                    "" if s.get("transaction_id") is None else s.get("transaction_id"),
                    "" if s.get("cloud_transaction_id") is None else s.get("cloud_transaction_id"),
                )
            )
