"""Chargers: the list, the selected charger's details, and what can be done to it.

Stop a session, unlock a connector, restart, enable/disable go to the charger through the
daemon's admin ops (``chargers.stop_session`` ...), each after a confirmation that says what
will happen. Setting a charger's maximum current and free charging need the daemon's load
controller and configuration to support them; until the daemon has those ops the actions stay
listed and explain why they cannot be used.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Input, Static

from edgegw.cli.output import plural
from edgegw.tui.base import View, selected_key, sync_table
from edgegw.tui.dialogs import Field, FormDialog, NoticeDialog
from edgegw.tui.model import ChargerLive
from edgegw.tui.picker import PickItem
from edgegw.tui.text import ago, amps, clock_time, duration, kwh, phase_max, short, status_word

MAX_CURRENT_OP = "chargers.set_max_current"
FREE_CHARGING_OP = "chargers.free_charging"
NEEDS_CONTROLLER = {
    MAX_CURRENT_OP: (
        "Setting a charger's maximum current from here needs support in the daemon: its load "
        "controller has no per-charger override yet. Until then the installer sets "
        "max_current_a in the configuration (`edgegw chargers ...`) and restarts edgegw."
    ),
    FREE_CHARGING_OP: (
        "Free charging cannot be switched from here yet: the daemon has no op for it. "
        "Until then the installer sets the charger's free_charging_tag in the configuration."
    ),
}


class ChargersView(View):
    TITLE = "Chargers"
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("s", "stop_session", "Stop session"),
        Binding("u", "unlock", "Unlock"),
        Binding("r", "restart", "Restart"),
        Binding("e", "enable", "Enable/disable"),
        Binding("m", "max_current", "Max A"),
        Binding("f", "free_charging", "Free charging"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "leave_filter", "Leave filter", show=False),
    ]
    ACTION_OPS: ClassVar[dict[str, str]] = {
        "stop_session": "chargers.stop_session",
        "unlock": "chargers.unlock",
        "restart": "chargers.reset",
        "enable": "chargers.availability",
        "max_current": MAX_CURRENT_OP,
        "free_charging": FREE_CHARGING_OP,
    }

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        op = self.ACTION_OPS.get(action)
        if op in NEEDS_CONTROLLER:  # shown (and explained) even when the op is missing
            return not self.ctx.read_only and self.ctx.backend.admin
        return super().check_action(action, parameters)

    def compose(self) -> ComposeResult:
        yield Input(placeholder="/ filter: id, label or state (e.g. FAULT)", id="charger-filter")
        table: DataTable[Any] = DataTable(id="charger-table", cursor_type="row", zebra_stripes=True)
        table.add_column("Charger", key="id")
        table.add_column("State", key="state")
        table.add_column("OCPP", key="ocpp")
        table.add_column("Current", key="current")
        table.add_column("Session", key="energy")
        table.add_column("Card", key="card")
        table.add_column("Cloud link", key="cloud")
        yield table
        with VerticalScroll(id="charger-details"):
            yield Static(id="charger-text", markup=False)

    def refresh_data(self) -> None:
        if not self.is_mounted:
            return
        snapshot = self.ctx.data.snapshot
        table = self.query_one("#charger-table", DataTable)
        chargers = snapshot.chargers if snapshot is not None else ()
        wanted = self.query_one("#charger-filter", Input).value
        rows = []
        for c in chargers:
            if not PickItem(c.id, c.label, status_word(c.status)).matches(wanted):
                continue
            sessions = c.sessions
            who = sessions[0][1].who if sessions else ""
            rows.append(
                (
                    c.id,
                    [
                        short(c.name, 24),
                        status_word(c.status),
                        c.version_label,
                        amps(phase_max(c.current_a)) if c.connected else "",
                        kwh(c.energy_wh) if sessions else "",
                        short(who, 18),
                        c.cloud_link,
                    ],
                )
            )
        sync_table(table, rows)
        self._show_details()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_details()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.refresh_data()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one("#charger-table", DataTable).focus()

    def action_filter(self) -> None:
        self.query_one("#charger-filter", Input).focus()

    def action_leave_filter(self) -> None:
        if isinstance(self.app.focused, Input):
            self.query_one("#charger-table", DataTable).focus()

    def selected(self) -> ChargerLive | None:
        snapshot = self.ctx.data.snapshot
        key = selected_key(self.query_one("#charger-table", DataTable))
        if snapshot is None or key is None:
            return None
        return snapshot.charger(key)

    def _show_details(self) -> None:
        charger = self.selected()
        text = self.query_one("#charger-text", Static)
        if charger is None:
            text.update("No charger selected.")
            return
        text.update("\n".join(self.details(charger)))

    def details(self, c: ChargerLive) -> list[str]:
        now = self.ctx.clock()
        state = status_word(c.status)
        if c.connected:
            since = f"connected {duration(now - c.connected_since)}" if c.connected_since else ""
            link = f"cloud link {c.cloud_link}" if c.cloud_link else ""
            head = ", ".join(x for x in (state, since, link) if x)
        else:
            head = f"{state}, last seen {ago(c.last_seen, now)}"
        lines = [f"{c.name}: {head}"]
        made = " ".join(x for x in (c.vendor, c.model) if x)
        if made or c.firmware:
            lines.append(f"Model {made or '--'}, firmware {c.firmware or '--'}")
        facts = [f"OCPP {c.version_label}"] if c.ocpp_version else []
        if c.circuit:
            facts.append(f"on circuit {c.circuit}")
        if facts:
            lines.append(", ".join(facts))
        place = "EVSE" if c.is_v2 else "Connector"
        for conn in c.connectors:
            word = status_word(conn.status)
            current = phase_max(conn.current_a)
            part = f"{place} {conn.connector_id}: {word}"
            if current is not None and c.connected:
                part += f", {amps(current)}"
            if conn.limit_a is not None:
                part += f" (limit {amps(conn.limit_a)})"
            if conn.error_code and conn.error_code != "NoError":
                part += f", ! {conn.error_code}"
            session = conn.session
            if session is not None:
                tag = f" ({session.id_tag})" if session.owner and session.id_tag else ""
                started = clock_time(session.started_at, self.ctx.tz, now)
                part += (
                    f"\n   session: {session.who}{tag}, {kwh(session.energy_wh)} since {started}"
                )
            lines.append(part)
        for fault in c.faults:
            lines.append(f"! Fault: {fault}")
        for flag in c.flags:
            lines.append(f"! Load capping: {flag.replace('_', ' ')}")
        lines.append("")
        lines.append(self._actions_line(c))
        return lines

    def _actions_line(self, c: ChargerLive) -> str:
        if self.ctx.view_only:
            why = "read-only mode" if self.ctx.read_only else "this user may only look"
            return f"View only ({why}): no actions."
        parts = [
            "s stop session",
            "u unlock",
            "r restart",
            "e enable" if c.enabled is False else "e disable",
        ]
        for key, op, what in (
            ("m", MAX_CURRENT_OP, "max current"),
            ("f", FREE_CHARGING_OP, "free charging"),
        ):
            parts.append(f"{key} {what}" + ("" if self.ctx.backend.has(op) else " (n/a)"))
        note = ""
        if not self.ctx.backend.has("chargers.stop_session"):
            note = " - this daemon has no charger actions (update edgegw)"
        if not c.connected:
            note += " - offline: actions wait until it is back"
        return "Actions: " + ", ".join(parts) + note

    # ------------------------------------------------------------ actions

    def _target(self, op: str, what: str) -> ChargerLive | None:
        if self.blocked(op, what):
            return None
        charger = self.selected()
        if charger is None:
            self.app.notify("Select a charger first.", title=what.capitalize())
            return None
        if not charger.connected:
            self.app.notify(
                f"{charger.id} is offline: nothing can be sent to it.",
                title=what.capitalize(),
                severity="warning",
            )
            return None
        return charger

    def action_stop_session(self) -> None:
        charger = self._target("chargers.stop_session", "stop a session")
        if charger is None:
            return
        sessions = charger.sessions
        if not sessions:
            self.app.notify(f"No session runs on {charger.id}.", title="Stop session")
            return
        choices = [
            (
                str(connector),
                f"Stop connector {connector}" if len(sessions) > 1 else "Stop session",
            )
            for connector, _ in sessions
        ]
        body = "\n".join(
            f"Connector {connector}: {s.who}"
            + (f" ({s.id_tag})" if s.owner and s.id_tag else "")
            + f", {kwh(s.energy_wh)} so far"
            for connector, s in sessions
        )
        by_connector = dict(sessions)

        async def stop(choice: str) -> None:
            connector = int(choice)
            args: dict[str, Any] = {"charger": charger.id, "connector": connector}
            tx = by_connector[connector].transaction_id
            if tx is not None:
                args["transaction_id"] = tx
            result = await self.call("chargers.stop_session", args)
            self._answered(charger.id, "stop the session", result)

        self.confirm(
            f"Stop charging on {charger.name}?",
            body + "\n\nThe charger ends the session and the car stops charging.",
            choices,
            stop,
            name=f"stop-session:{charger.id}",
        )

    def action_unlock(self) -> None:
        charger = self._target("chargers.unlock", "unlock a connector")
        if charger is None:
            return
        connectors = [c.connector_id for c in charger.connectors] or [1]
        place = "EVSE" if charger.is_v2 else "connector"
        choices = [(str(n), f"Unlock {place} {n}") for n in connectors]

        async def unlock(choice: str) -> None:
            result = await self.call(
                "chargers.unlock", {"charger": charger.id, "connector": int(choice)}
            )
            self._answered(charger.id, f"unlock {place} {choice}", result)

        self.confirm(
            f"Unlock a connector of {charger.name}?",
            "The cable is released. A session running on that connector ends.",
            choices,
            unlock,
            name=f"unlock:{charger.id}",
        )

    def action_restart(self) -> None:
        charger = self._target("chargers.reset", "restart a charger")
        if charger is None:
            return

        async def reset(kind: str) -> None:
            result = await self.call("chargers.reset", {"charger": charger.id, "type": kind})
            self._answered(charger.id, f"{kind.lower()} restart", result)

        running = len(charger.sessions)
        body = "The charger restarts and is offline for a moment."
        kinds = [("Soft", "Soft restart"), ("Hard", "Hard restart")]
        how = "\nSoft: the charger restarts its software. Hard: like switching it off and on."
        if charger.is_v2:  # OCPP 2.x: Reset OnIdle / Immediate
            kinds = [("OnIdle", "Restart when idle"), ("Immediate", "Restart now")]
            how = "\nWhen idle: once no session runs. Now: at once."
        if running:
            verb = "ends" if running == 1 else "end"
            when = " if restarted now" if charger.is_v2 else ""
            body += f"\n{plural(running, 'running session')} on it {verb}{when}."
        self.confirm(
            f"Restart {charger.name}?", body + how, kinds, reset, name=f"reset:{charger.id}"
        )

    def action_enable(self) -> None:
        charger = self._target("chargers.availability", "enable or disable a charger")
        if charger is None:
            return
        enable = charger.enabled is False

        async def change(_: str) -> None:
            result = await self.call(
                "chargers.availability", {"charger": charger.id, "available": enable}
            )
            self._answered(charger.id, "enable" if enable else "disable", result)

        if enable:
            title, body, label = (
                f"Enable {charger.name}?",
                "Drivers can start charging on it again.",
                "Enable",
            )
        else:
            title, body, label = (
                f"Disable {charger.name}?",
                "No new session can start on it. A running session finishes first.",
                "Disable",
            )
        self.confirm(title, body, [("go", label)], change, name=f"availability:{charger.id}")

    def action_max_current(self) -> None:
        charger = self.selected()
        if not self.ctx.backend.has(MAX_CURRENT_OP):
            self.app.push_screen(
                NoticeDialog("Maximum current: not available", NEEDS_CONTROLLER[MAX_CURRENT_OP])
            )
            return
        if charger is None or self.blocked(MAX_CURRENT_OP, "set the maximum current"):
            return

        def entered(values: dict[str, str] | None) -> None:
            if values is None:
                return
            try:
                amps_value = float(values["max_current_a"].replace(",", "."))
            except ValueError:
                self.app.notify("Give the current in amperes, e.g. 16.", severity="error")
                return

            async def send(_: str) -> None:
                result = await self.call(
                    MAX_CURRENT_OP, {"charger": charger.id, "max_current_a": amps_value}
                )
                self._answered(charger.id, f"set the maximum to {amps_value:g} A", result)

            self.confirm(
                f"Limit {charger.name} to {amps_value:g} A?",
                "Its sessions never get more than this.",
                [("go", "Set limit")],
                send,
                name=f"max-current:{charger.id}",
            )

        self.app.push_screen(
            FormDialog(
                f"Maximum current of {charger.name}",
                "",
                [Field("max_current_a", "Maximum (A)", "", "e.g. 16")],
            ),
            entered,
        )

    def action_free_charging(self) -> None:
        charger = self.selected()
        if not self.ctx.backend.has(FREE_CHARGING_OP):
            self.app.push_screen(
                NoticeDialog("Free charging: not available", NEEDS_CONTROLLER[FREE_CHARGING_OP])
            )
            return
        if charger is None or self.blocked(FREE_CHARGING_OP, "switch free charging"):
            return

        async def send(choice: str) -> None:
            enabled = choice == "on"
            result = await self.call(FREE_CHARGING_OP, {"charger": charger.id, "enabled": enabled})
            self._answered(charger.id, f"free charging {choice}", result)

        self.confirm(
            f"Free charging on {charger.name}?",
            "On: any card is accepted there while the gateway decides (cloud offline, or no "
            "cloud); while the cloud is reachable it still decides. Off: cards are checked again.",
            [("on", "Free charging on"), ("off", "Free charging off")],
            send,
            name=f"free-charging:{charger.id}",
        )

    def _answered(self, charger_id: str, what: str, result: Any) -> None:
        status = result.get("status") if isinstance(result, dict) else None
        good = status in ("Accepted", "Unlocked", "Scheduled")
        message = f"{charger_id} answered {status or 'nothing'} to: {what}"
        if status == "Scheduled":
            message += " (done when its session ends)"
        self.app.notify(
            message,
            title="Done" if good else "Refused",
            severity="information" if good else "error",
        )
