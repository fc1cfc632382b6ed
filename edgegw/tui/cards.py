"""Cards: find a card, block a lost one at once, edit it, enrol a new one by tapping it.

``g`` opens the card groups, charger groups and shares (:mod:`edgegw.tui.access`).

Everything goes through the daemon's ``cards.*`` ops, so a change takes effect at the next tap
and reaches chargers that hold a local list. Blocking, unblocking and removing ask first.
A new card is added by typing its id, or by tapping it at a charger (``cards.learn``: the
daemon reports the next card that charger reads, and the charger is answered as usual).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input, Static

from edgegw.cli.output import plural
from edgegw.control.client import ControlClientError, RemoteError
from edgegw.tui.access import AccessScreen
from edgegw.tui.base import View, selected_key, sync_table
from edgegw.tui.context import TuiContext
from edgegw.tui.dialogs import Field, FormDialog, FormError, NoticeDialog
from edgegw.tui.learn import LearnDialog
from edgegw.tui.picker import ChargerPicker, pick_items
from edgegw.tui.text import short

PAGE = 500


def describe(card: dict[str, Any]) -> str:
    owner = card.get("owner") or ""
    return f"{card.get('id')}" + (f" ({owner})" if owner else "")


class CardsView(View):
    TITLE = "Cards"
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("slash", "search", "Search"),
        Binding("escape", "leave_search", "Leave search", show=False),
        Binding("b", "block", "Block"),
        Binding("u", "unblock", "Unblock"),
        Binding("e", "edit", "Edit"),
        Binding("a", "add", "Add"),
        Binding("t", "learn", "Tap to add"),
        Binding("d", "remove", "Remove"),
        Binding("g", "groups", "Groups and shares", show=False),  # said on the note line
    ]
    ACTION_OPS: ClassVar[dict[str, str]] = {
        "block": "cards.block",
        "unblock": "cards.unblock",
        "edit": "cards.update",
        "add": "cards.add",
        "learn": "cards.learn",
        "remove": "cards.remove",
    }

    def __init__(self, ctx: TuiContext, *, id: str) -> None:
        super().__init__(ctx, id=id)
        self.cards: list[dict[str, Any]] = []
        self._loaded = False

    def compose(self) -> ComposeResult:
        yield Input(placeholder="search: card id, owner, label, charger (Enter)", id="card-search")
        table: DataTable[Any] = DataTable(id="card-table", cursor_type="row", zebra_stripes=True)
        for label, key in (
            ("Card", "id"),
            ("Owner", "owner"),
            ("Label", "label"),
            ("Status", "status"),
            ("Expires", "expiry"),
            ("Chargers", "chargers"),
        ):
            table.add_column(label, key=key)
        yield table
        yield Static(id="card-note", markup=False)

    def view_shown(self) -> None:
        if not self._loaded:
            self.action_reload()

    def poll(self) -> None:
        self.action_reload()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_reload()
        self.query_one("#card-table", DataTable).focus()

    def action_search(self) -> None:
        self.query_one("#card-search", Input).focus()

    def action_leave_search(self) -> None:
        if isinstance(self.app.focused, Input):
            self.query_one("#card-table", DataTable).focus()

    def action_reload(self) -> None:
        self._loaded = True
        self.run_task(self._load(), "cards-load")

    async def _load(self) -> None:
        note = self.query_one("#card-note", Static)
        if not self.ctx.backend.has("cards.list"):
            note.update("Cards are not available in this daemon version.")
            return
        text = self.query_one("#card-search", Input).value.strip()
        result = await self.call("cards.list", {"text": text, "limit": PAGE})
        cards = result.get("cards", []) if isinstance(result, dict) else []
        self.cards = [c for c in cards if isinstance(c, dict)]
        self._show()
        total = result.get("total", len(self.cards)) if isinstance(result, dict) else 0
        matched = result.get("matched", len(self.cards)) if isinstance(result, dict) else 0
        groups = "; g: groups and shares" if self.ctx.backend.has("cards.groups") else ""
        note.update(
            f"{matched} of {plural(total, 'card')}" + (f" match {text!r}" if text else "") + groups
        )

    def _show(self) -> None:
        rows = []
        for card in self.cards:
            status = str(card.get("effective") or card.get("status") or "")
            chargers = card.get("chargers")
            rows.append(
                (
                    str(card.get("id")),
                    [
                        str(card.get("id")),
                        short(card.get("owner") or "", 18),
                        short(card.get("label") or "", 14),
                        status.upper() if status != "Accepted" else "ok",
                        expiry_text(card.get("expiry"))[:16] or "never",
                        "all" if not chargers else short(", ".join(chargers), 20),
                    ],
                )
            )
        sync_table(self.query_one("#card-table", DataTable), rows)

    def selected(self) -> dict[str, Any] | None:
        key = selected_key(self.query_one("#card-table", DataTable))
        return next((c for c in self.cards if str(c.get("id")) == key), None)

    def select(self, card_id: str) -> None:
        table = self.query_one("#card-table", DataTable)
        for index, row in enumerate(table.ordered_rows):
            if row.key.value == card_id:
                table.move_cursor(row=index)
                return

    def _card(self, op: str, what: str) -> dict[str, Any] | None:
        if self.blocked(op, what):
            return None
        card = self.selected()
        if card is None:
            self.app.notify("Select a card first.", title=what.capitalize())
        return card

    # ------------------------------------------------------------ actions

    def action_block(self) -> None:
        card = self._card("cards.block", "block a card")
        if card is None:
            return

        async def block(_: str) -> None:
            await self.call("cards.block", {"card": card["id"], "wait": 5})
            self.app.notify(f"Card {describe(card)} is blocked.", title="Blocked")
            await self._load()

        self.confirm(
            f"Block card {describe(card)}?",
            "Chargers refuse it from its next tap. A session already running is not stopped "
            "(stop it on the Chargers page).",
            [("block", "Block card")],
            block,
            name="card-block",
        )

    def action_unblock(self) -> None:
        card = self._card("cards.unblock", "unblock a card")
        if card is None:
            return

        async def unblock(_: str) -> None:
            await self.call("cards.unblock", {"card": card["id"], "wait": 5})
            self.app.notify(f"Card {describe(card)} is accepted again.", title="Unblocked")
            await self._load()

        self.confirm(
            f"Accept card {describe(card)} again?",
            "Chargers accept it again from its next tap.",
            [("unblock", "Unblock card")],
            unblock,
            name="card-unblock",
        )

    def action_remove(self) -> None:
        card = self._card("cards.remove", "remove a card")
        if card is None:
            return

        async def remove(_: str) -> None:
            await self.call("cards.remove", {"card": card["id"], "wait": 5})
            self.app.notify(f"Card {describe(card)} is removed.", title="Removed")
            await self._load()

        self.confirm(
            f"Remove card {describe(card)}?",
            "The card is forgotten: chargers treat it as an unknown card (the site's policy "
            "for unknown cards applies). To stop a lost card, block it instead.",
            [("remove", "Remove card")],
            remove,
            name="card-remove",
        )

    def action_edit(self) -> None:
        card = self._card("cards.update", "edit a card")
        if card is None:
            return
        original = card_fields(card)

        async def save(values: dict[str, str]) -> FormError | None:
            changes = changed_fields(original, values)
            if not changes:
                self.app.notify("Nothing changed.", title="Edit card")
                return None
            try:
                await self.call("cards.update", {"card": card["id"], **changes, "wait": 5})
            except ControlClientError as exc:
                return form_error(exc)
            self.app.notify(f"Card {card['id']} updated.", title="Saved")
            self.run_task(self._load(), "cards-load")
            return None

        self.app.push_screen(
            FormDialog(
                f"Edit card {card['id']}",
                "Expiry: YYYY-MM-DD (empty: never). Chargers: ids separated by commas "
                "(empty: all chargers).",
                [
                    Field("owner", "Owner", original["owner"]),
                    Field("label", "Label", original["label"]),
                    Field("expiry", "Expires", original["expiry"], "YYYY-MM-DD"),
                    Field("chargers", "Chargers", original["chargers"], "all"),
                ],
                submit=save,
                tasks=self.ctx.tasks,
            )
        )

    def action_add(self, card_id: str = "", note: str = "") -> None:
        if self.blocked("cards.add", "add a card"):
            return

        async def add(values: dict[str, str]) -> FormError | None:
            if not values["card"].strip():
                return FormError("Type the card id (or press Esc to cancel).", "card")
            args: dict[str, Any] = {"card": values["card"].strip(), "wait": 5}
            for name in ("owner", "label", "expiry", "format"):
                if values[name].strip():
                    args[name] = values[name].strip()
            chargers = split_ids(values["chargers"])
            if chargers:
                args["chargers"] = chargers
            try:
                result = await self.call("cards.add", args)
            except ControlClientError as exc:
                return form_error(exc)
            card = result.get("card", {}) if isinstance(result, dict) else {}
            for warning in result.get("warnings", []) if isinstance(result, dict) else []:
                self.app.notify(str(warning), title="Note", severity="warning", timeout=15)
            self.app.notify(f"Card {describe(card)} added.", title="Added")
            self.run_task(self._load_and_select(str(card.get("id"))), "cards-load")
            return None

        self.app.push_screen(
            FormDialog(
                "Add a card",
                note
                or "Type the card id as the reader or the card shows it (e.g. 04:A1:B2:C3), "
                "or close this and press t to tap the card at a charger.",
                [
                    Field("card", "Card id", card_id),
                    Field("format", "Format", "", "a UID (empty), or token for any other id"),
                    Field("owner", "Owner"),
                    Field("label", "Label"),
                    Field("expiry", "Expires", "", "YYYY-MM-DD (empty: never)"),
                    Field("chargers", "Chargers", "", "all"),
                ],
                save_label="Add",
                submit=add,
                tasks=self.ctx.tasks,
            )
        )

    async def _load_and_select(self, card_id: str) -> None:
        await self._load()
        self.select(card_id)

    def action_groups(self) -> None:
        """Groups and shares, on a screen over this page (Escape comes back)."""
        if not self.ctx.backend.has("cards.groups"):
            self.app.push_screen(
                NoticeDialog(
                    "Groups and shares",
                    "not available in this daemon version (no 'cards.groups' op); update edgegw",
                )
            )
            return
        poll = getattr(self.app, "poll_interval", 5.0)
        self.app.push_screen(AccessScreen(self.ctx, poll), lambda _: self.action_reload())

    def action_learn(self) -> None:
        if self.blocked("cards.learn", "read a card at a charger"):
            return
        snapshot = self.ctx.data.snapshot
        online = [c for c in snapshot.chargers if c.connected] if snapshot is not None else []
        if not online:
            self.app.notify("No charger is online to read a card.", severity="warning")
            return

        def learned(result: dict[str, Any] | None) -> None:
            if result is None:
                return
            if not result.get("captured"):
                self.app.notify("No card was tapped in time.", title="Tap to add")
                return
            enrolled = result.get("enrolled")
            if enrolled:
                self.app.notify(
                    f"Card {describe(enrolled)} is already enrolled ({enrolled.get('status')}).",
                    title="Known card",
                )
                self.select(str(enrolled.get("id")))
                return
            problem = result.get("problem")
            note = f"Read at {result.get('charger')} as {result.get('card')}."
            if problem:
                note += f" Note: {problem}"
            self.action_add(str(result.get("card") or result.get("id_tag") or ""), note)

        def chosen(choice: str | None) -> None:
            if choice is not None:
                self.app.push_screen(LearnDialog(self.ctx, choice), learned)

        if len(online) == 1:
            chosen(online[0].id)
            return
        self.app.push_screen(
            ChargerPicker(
                "Tap the card at which charger?",
                f"Pick the charger you will hold the card to ({len(online)} online; "
                "offline chargers cannot read a card).",
                pick_items(online),
            ),
            chosen,
        )


def expiry_text(expiry: Any) -> str:
    """An expiry as typed: ``2026-12-31`` for "valid through that day" (midnight UTC after it),
    else the ISO time as the daemon gave it; "" for none."""
    if not expiry:
        return ""
    text = str(expiry)
    if text.endswith("T00:00:00Z"):
        try:
            day = date.fromisoformat(text[:10]) - timedelta(days=1)
        except ValueError:
            return text
        return day.isoformat()
    return text


def card_fields(card: dict[str, Any]) -> dict[str, str]:
    return {
        "owner": str(card.get("owner") or ""),
        "label": str(card.get("label") or ""),
        "expiry": expiry_text(card.get("expiry")),
        "chargers": ", ".join(card.get("chargers") or []),
    }


def changed_fields(original: dict[str, str], values: dict[str, str]) -> dict[str, Any]:
    """The ``cards.update`` arguments for what the form changed ("" clears expiry/chargers)."""
    changes: dict[str, Any] = {}
    for name in ("owner", "label", "expiry"):
        if values[name].strip() != original[name]:
            changes[name] = values[name].strip()
    if split_ids(values["chargers"]) != split_ids(original["chargers"]):
        changes["chargers"] = split_ids(values["chargers"])
    return changes


FIELD_WORDS: tuple[tuple[str, str], ...] = (
    ("expiry", "expiry"),
    ("card", "card"),
    ("owner", "owner"),
    ("label", "label"),
    ("'chargers'", "chargers"),
    ("chargers", "chargers"),
)
"""How the daemon's refusals of ``cards.add``/``cards.update`` begin -> the form field."""


def form_error(exc: ControlClientError) -> FormError:
    """A daemon's refusal as a form error on the field it is about (if it says)."""
    message = exc.message if isinstance(exc, RemoteError) else str(exc)
    lowered = message.lower()
    field = next((name for word, name in FIELD_WORDS if lowered.startswith(word)), None)
    if field is None and "already enrolled" in lowered:
        field = "card"
    return FormError(message, field)


def split_ids(text: str) -> list[str]:
    return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]
