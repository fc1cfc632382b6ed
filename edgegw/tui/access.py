"""Groups and shares: who may charge where (the Cards page's ``g``).

One table lists the charger groups, the card groups with their cards and where they may charge,
and the shares with their end (an ended share is marked ENDED); the line under it shows the
selected row in full. A caretaker creates or edits a card group or a charger group, allows a card
on chargers and charger groups, shares a card or a card group "until <date time>", and ends a
share or deletes a group (asked first). Everything goes through the daemon's ``cards.group``,
``cards.charger_group``, ``cards.update``, ``cards.share`` and ``cards.unshare`` ops, so a change
holds from the next tap; a refused form stays open with what was typed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from edgegw.control.client import ControlClientError, RemoteError
from edgegw.tui.base import View, selected_key, sync_table
from edgegw.tui.context import TuiContext
from edgegw.tui.dialogs import Field, FormDialog, FormError
from edgegw.tui.text import short, stamp

CHARGERS_HELP = "charger ids and @charger-groups, separated by commas"

ERROR_FIELDS: tuple[tuple[str, str], ...] = (
    ("until", "until"),
    ("card group name", "name"),
    ("charger group name", "name"),
    ("no charger group", "chargers"),
    ("no chargers given", "chargers"),
    ("'chargers'", "chargers"),
    ("a share names the chargers", "chargers"),
    ("a charger group holds", "chargers"),
    ("share one card", "card"),
    ("card id", "card"),
    ("no enrolled card", "card"),
    ("no card group", "group"),
)
"""How the daemon's refusals begin (or what they contain) -> the form field they are about."""


def field_error(exc: ControlClientError, fields: Sequence[str]) -> FormError:
    """A daemon's refusal as a form error on the field it is about, among ``fields``."""
    message = exc.message if isinstance(exc, RemoteError) else str(exc)
    lowered = message.lower()
    field = next(
        (name for words, name in ERROR_FIELDS if words in lowered and name in fields), None
    )
    if field is None and "cards" in fields and "card" in lowered:
        field = "cards"
    return FormError(message, field)


def split_names(text: str) -> list[str]:
    """Ids or names separated by commas, semicolons or spaces."""
    return [part for part in re.split(r"[\s,;]+", text) if part]


def card_id_of(member: str) -> str:
    """The card id of a group member as the daemon lists it (``E43AC9D2 (Alice)``)."""
    return member.split(" (", 1)[0].strip()


def same_card(a: str, b: str) -> bool:
    """Whether two typed card ids are the same hex UID (separators and letter case aside)."""
    return re.sub(r"[\s:-]", "", a).upper() == re.sub(r"[\s:-]", "", b).upper()


def share_end(share: dict[str, Any]) -> float | None:
    """When a share ends (Unix seconds), from the daemon's ISO time."""
    try:
        return datetime.fromisoformat(str(share.get("until")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def until_text(share: dict[str, Any], ctx: TuiContext) -> str:
    """When a share ends, in local time; ``ENDED ...`` once it has."""
    at = share_end(share)
    when = str(share.get("until")) if at is None else stamp(at, ctx.tz)[:16]
    return f"until {when}" if share.get("active") else f"ENDED {when}"


def ends_cell(share: dict[str, Any], ctx: TuiContext) -> str:
    """A share's end for the table: ``Jan 04 17:00`` this year, with the year otherwise;
    ``ENDED ...`` once it has."""
    at = share_end(share)
    if at is None:
        when = str(share.get("until"))
    else:
        local = datetime.fromtimestamp(at, ctx.tz)
        same_year = local.year == datetime.fromtimestamp(ctx.clock(), ctx.tz).year
        when = local.strftime("%b %d %H:%M" if same_year else "%Y-%m-%d %H:%M")
    return when if share.get("active") else f"ENDED {when}"


def share_holder(share: dict[str, Any]) -> str:
    return f"group {share.get('group')}" if share.get("group") else f"card {share.get('card')}"


class AccessView(View):
    """The groups and shares table, its details line and its actions."""

    TITLE = "Groups and shares"
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("n", "new_group", "Card group"),
        Binding("c", "charger_group", "Charger group"),
        Binding("e", "edit", "Edit"),
        Binding("a", "allow", "Allow"),
        Binding("s", "share", "Share"),
        Binding("d", "end", "End/delete"),
    ]
    ACTION_OPS: ClassVar[dict[str, str]] = {
        "new_group": "cards.group",
        "charger_group": "cards.charger_group",
        "edit": "cards.group",
        "allow": "cards.update",
        "share": "cards.share",
        "end": "cards.unshare",
    }

    def __init__(self, ctx: TuiContext, *, id: str) -> None:
        super().__init__(ctx, id=id)
        self.data: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        table: DataTable[Any] = DataTable(id="access-table", cursor_type="row", zebra_stripes=True)
        for label, key in (
            ("Kind", "kind"),
            ("Name", "name"),
            ("Holds", "holds"),
            ("Allowed on", "where"),
            ("Ends", "ends"),
        ):
            table.add_column(label, key=key)
        yield table
        yield Static(id="access-details", markup=False)
        yield Static(id="access-note", markup=False)

    def poll(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        self.run_task(self.load(), "access-load")

    async def load(self) -> None:
        note = self.query_one("#access-note", Static)
        if not self.ctx.backend.has("cards.groups"):
            note.update("Groups and shares are not available in this daemon version.")
            return
        result = await self.call("cards.groups")
        self.data = result if isinstance(result, dict) else {}
        self._show()

    # ------------------------------------------------------------ reading the answer

    def charger_groups(self) -> dict[str, list[str]]:
        groups = self.data.get("charger_groups")
        return {str(k): list(v) for k, v in groups.items()} if isinstance(groups, dict) else {}

    def card_groups(self) -> list[dict[str, Any]]:
        groups = self.data.get("card_groups")
        return [g for g in groups if isinstance(g, dict)] if isinstance(groups, list) else []

    def shares(self) -> list[dict[str, Any]]:
        shares = self.data.get("shares")
        return [s for s in shares if isinstance(s, dict)] if isinstance(shares, list) else []

    def rows(self) -> list[tuple[str, list[str], str]]:
        """``(key, cells, the row in full)`` for every charger group, card group and share."""
        out: list[tuple[str, list[str], str]] = []
        for name, chargers in sorted(self.charger_groups().items()):
            listed = ", ".join(chargers)
            out.append(
                (
                    f"chargers:{name}",
                    ["chargers", short(name, 12), short(listed, 18), "", ""],
                    f"Charger group {name}: {listed or 'no chargers'}.",
                )
            )
        for group in self.card_groups():
            name = str(group.get("name"))
            cards = [str(c) for c in group.get("cards") or []]
            limit = group.get("chargers")
            where = "all chargers" if limit is None else ", ".join(map(str, limit))
            holds = f"{len(cards)} card{'' if len(cards) == 1 else 's'}"
            if cards:
                holds += ": " + ", ".join(card_id_of(c) for c in cards)
            out.append(
                (
                    f"group:{name}",
                    ["cards", short(name, 12), short(holds, 18), short(where, 14), ""],
                    f"Card group {name}, on {where}: {', '.join(cards) or 'no cards yet'}.",
                )
            )
        for share in self.shares():
            ends = until_text(share, self.ctx)
            where = ", ".join(share.get("chargers") or [])
            number = f"#{share.get('id')}"
            note = str(share.get("note") or "")
            out.append(
                (
                    f"share:{share.get('id')}",
                    [
                        "share",
                        short(f"{number} {note}".strip(), 12),
                        short(share_holder(share), 18),
                        short(where, 14),
                        ends_cell(share, self.ctx),
                    ],
                    f"Share {number}: {share_holder(share)} on {where} {ends}"
                    + (f" ({note})" if note else "")
                    + ".",
                )
            )
        return out

    def _show(self) -> None:
        rows = self.rows()
        sync_table(self.query_one("#access-table", DataTable), [(k, c) for k, c, _ in rows])
        shares = self.shares()
        ended = sum(1 for s in shares if not s.get("active"))
        counts = [
            _count(len(self.charger_groups()), "charger group"),
            _count(len(self.card_groups()), "card group"),
            _count(len(shares), "share") + (f" ({ended} ended)" if ended else ""),
        ]
        self.query_one("#access-note", Static).update(
            ", ".join(counts) + ". Esc: back to the cards."
        )
        self._details()

    def _details(self) -> None:
        key = self.selected()
        full = next((text for k, _, text in self.rows() if k == key), "")
        self.query_one("#access-details", Static).update(full)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._details()

    def selected(self) -> str | None:
        return selected_key(self.query_one("#access-table", DataTable))

    def select(self, key: str) -> None:
        table = self.query_one("#access-table", DataTable)
        for index, row in enumerate(table.ordered_rows):
            if row.key.value == key:
                table.move_cursor(row=index)
                return

    def _selected_group(self) -> dict[str, Any] | None:
        key = self.selected() or ""
        if not key.startswith("group:"):
            return None
        name = key.removeprefix("group:")
        return next((g for g in self.card_groups() if g.get("name") == name), None)

    # ------------------------------------------------------------ actions

    def _form(
        self,
        title: str,
        body: str,
        fields: list[Field],
        send: Callable[[dict[str, str]], Coroutine[Any, Any, str]],
        *,
        save_label: str = "Save",
    ) -> None:
        """A form whose values ``send`` turns into one op call; a refusal stays in the form.

        ``send`` returns the row key to select afterwards."""
        names = [f.name for f in fields]

        async def submit(values: dict[str, str]) -> FormError | None:
            try:
                key = await send(values)
            except FormRefusal as exc:
                return exc.error
            except ControlClientError as exc:
                return field_error(exc, names)
            await self.load()
            self.select(key)
            return None

        self.app.push_screen(
            FormDialog(
                title, body, fields, save_label=save_label, submit=submit, tasks=self.ctx.tasks
            )
        )

    def _notify_result(self, result: Any, title: str, text: str) -> None:
        warnings = result.get("warnings", []) if isinstance(result, dict) else []
        for warning in warnings:
            self.app.notify(str(warning), title="Note", severity="warning", timeout=15)
        self.app.notify(text, title=title)

    def action_new_group(self) -> None:
        if not self.blocked("cards.group", "create a card group"):
            self._card_group_form(None)

    def action_edit(self) -> None:
        key = self.selected() or ""
        if key.startswith("chargers:"):
            if not self.blocked("cards.charger_group", "change a charger group"):
                self._charger_group_form(key.removeprefix("chargers:"))
            return
        group = self._selected_group()
        if group is None:
            self.app.notify(
                "Select a card group or a charger group to edit (a share is ended with d, "
                "and shared again with s).",
                title="Edit",
            )
            return
        if not self.blocked("cards.group", "change a card group"):
            self._card_group_form(group)

    def _card_group_form(self, group: dict[str, Any] | None) -> None:
        current = [card_id_of(str(c)) for c in (group or {}).get("cards") or []]
        chargers = (group or {}).get("chargers")
        fields = [
            Field("cards", "Cards", ", ".join(current), "card ids, separated by commas"),
            Field("chargers", "Chargers", ", ".join(chargers or []), "all chargers"),
        ]
        if group is None:
            fields.insert(0, Field("name", "Name", "", "e.g. residents"))

        async def send(values: dict[str, str]) -> str:
            name = values.get("name", str((group or {}).get("name", ""))).strip()
            if not name:
                raise FormRefusal(FormError("Type the group's name (e.g. residents).", "name"))
            wanted = split_names(values["cards"])
            args: dict[str, Any] = {"name": name}
            add = [c for c in wanted if not any(same_card(c, o) for o in current)]
            remove = [o for o in current if not any(same_card(c, o) for c in wanted)]
            if add:
                args["add"] = add
            if remove:
                args["remove"] = remove
            places = split_names(values["chargers"])
            if places:
                args["chargers"] = places
            else:
                args["all_chargers"] = True
            result = await self.call("cards.group", args)
            action = result.get("action", "set") if isinstance(result, dict) else "set"
            self._notify_result(result, "Saved", f"Card group {name} {action}.")
            return f"group:{name}"

        title = "New card group" if group is None else f"Card group {group.get('name')}"
        self._form(
            title,
            f"Cards: their ids as listed. Chargers: {CHARGERS_HELP} (empty: all chargers; a "
            "card's own charger list wins over its groups').",
            fields,
            send,
        )

    def action_charger_group(self) -> None:
        if not self.blocked("cards.charger_group", "create a charger group"):
            self._charger_group_form(None)

    def _charger_group_form(self, name: str | None) -> None:
        chargers = self.charger_groups().get(name or "", [])
        fields = [Field("chargers", "Chargers", ", ".join(chargers), "CP1, CP2")]
        if name is None:
            fields.insert(0, Field("name", "Name", "", "e.g. garage-1"))

        async def send(values: dict[str, str]) -> str:
            group = values.get("name", name or "").strip()
            if not group:
                raise FormRefusal(FormError("Type the group's name (e.g. garage-1).", "name"))
            members = split_names(values["chargers"])
            if not members:
                raise FormRefusal(
                    FormError(
                        "Type its chargers (to delete the group, select it and press d).",
                        "chargers",
                    )
                )
            result = await self.call("cards.charger_group", {"name": group, "chargers": members})
            self._notify_result(result, "Saved", f"Charger group {group} set.")
            return f"chargers:{group}"

        self._form(
            "New charger group" if name is None else f"Charger group {name}",
            "Charger ids, separated by commas. Cards, card groups and shares name the group as "
            "@name in their chargers.",
            fields,
            send,
        )

    def action_allow(self) -> None:
        if self.blocked("cards.update", "change where a card works"):
            return

        async def send(values: dict[str, str]) -> str:
            card = values["card"].strip()
            if not card:
                raise FormRefusal(FormError("Type the card id.", "card"))
            places = split_names(values["chargers"])
            result = await self.call("cards.update", {"card": card, "chargers": places, "wait": 5})
            shown = result.get("card", {}) if isinstance(result, dict) else {}
            where = ", ".join(places) or "every charger its groups allow"
            self._notify_result(result, "Saved", f"Card {shown.get('id', card)} works on {where}.")
            return self.selected() or ""

        self._form(
            "Allow a card on chargers",
            f"Chargers: {CHARGERS_HELP}. This replaces the card's own charger list; empty: "
            "wherever its card groups allow (every charger when it is in none).",
            [Field("card", "Card id"), Field("chargers", "Chargers", "", "as its groups allow")],
            send,
        )

    def action_share(self) -> None:
        if self.blocked("cards.share", "share a card"):
            return
        group = self._selected_group()

        async def send(values: dict[str, str]) -> str:
            args: dict[str, Any] = {
                "card": values["card"].strip(),
                "group": values["group"].strip(),
                "chargers": split_names(values["chargers"]),
                "until": values["until"].strip(),
                "note": values["note"].strip(),
                "wait": 5,
            }
            if not args["card"] and not args["group"]:
                raise FormRefusal(FormError("Type a card id, or a card group's name.", "card"))
            if args["card"] and args["group"]:
                raise FormRefusal(FormError("Share one card or one card group, not both.", "card"))
            if not args["chargers"]:
                raise FormRefusal(FormError(f"Type where: {CHARGERS_HELP}.", "chargers"))
            if not args["until"]:
                raise FormRefusal(FormError("Type until when, e.g. sunday 18:00.", "until"))
            result = await self.call("cards.share", args)
            share = result.get("share", {}) if isinstance(result, dict) else {}
            self._notify_result(
                result,
                "Shared",
                f"Share #{share.get('id')}: {share_holder(share)} {until_text(share, self.ctx)}.",
            )
            return f"share:{share.get('id')}"

        self._form(
            "Share until a date and time",
            "A card (or every card of a card group) may also charge on these chargers until the "
            f"time given, then no more. Chargers: {CHARGERS_HELP}. Until: 2026-12-13 18:00, "
            "2026-12-13 (through that day) or sunday 18:00.",
            [
                Field("card", "Card id", "", "or a group below"),
                Field("group", "Card group", "" if group is None else str(group.get("name"))),
                Field("chargers", "Chargers", "", "CP1, @visitors"),
                Field("until", "Until", "", "sunday 18:00"),
                Field("note", "Note", "", "e.g. guest of flat 12"),
            ],
            send,
            save_label="Share",
        )

    def action_end(self) -> None:
        key = self.selected() or ""
        kind, _, name = key.partition(":")
        if kind == "share":
            self._end_share(int(name))
        elif kind == "group":
            self._delete(
                "cards.group",
                f"Delete card group {name}?",
                "Its cards stay enrolled and keep their own charger lists; the group's shares end.",
                {"name": name, "delete": True},
                f"Card group {name} deleted.",
            )
        elif kind == "chargers":
            self._delete(
                "cards.charger_group",
                f"Delete charger group {name}?",
                "Cards, card groups and shares that name it must be changed first.",
                {"name": name, "delete": True},
                f"Charger group {name} deleted.",
            )
        else:
            self.app.notify("Select a share, a card group or a charger group.", title="End")

    def _end_share(self, share_id: int) -> None:
        if self.blocked("cards.unshare", "end a share"):
            return
        share = next((s for s in self.shares() if s.get("id") == share_id), {})

        async def end(_: str) -> None:
            await self.call("cards.unshare", {"id": share_id, "wait": 5})
            self.app.notify(f"Share #{share_id} ended.", title="Ended")
            await self.load()

        self.confirm(
            f"End share #{share_id} now?",
            f"{share_holder(share).capitalize()} on {', '.join(share.get('chargers') or [])} "
            f"({until_text(share, self.ctx)}): refused there from its next tap, unless it may "
            "charge there anyway.",
            [("end", "End share")],
            end,
            name="access-unshare",
        )

    def _delete(self, op: str, title: str, body: str, args: dict[str, Any], done: str) -> None:
        if self.blocked(op, title.removesuffix("?").lower()):
            return

        async def delete(_: str) -> None:
            await self.call(op, args)
            self.app.notify(done, title="Deleted")
            await self.load()

        self.confirm(title, body, [("delete", "Delete")], delete, name="access-delete")


class FormRefusal(Exception):
    """Raised inside a form's send step: the values are refused before any op is called."""

    def __init__(self, error: FormError) -> None:
        super().__init__(error.message)
        self.error = error


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


class AccessScreen(Screen[None]):
    """Groups and shares on a screen of their own, over the Cards page; Escape goes back."""

    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("escape", "back", "Back to cards", show=False),
    ]

    def __init__(self, ctx: TuiContext, poll_interval: float = 5.0) -> None:
        super().__init__()
        self.ctx = ctx
        self.poll_interval = poll_interval

    def compose(self) -> ComposeResult:
        yield Static(f"Cards > {AccessView.TITLE}", id="access-title", markup=False)
        yield AccessView(self.ctx, id="access")
        yield Footer()

    @property
    def view(self) -> AccessView:
        return self.query_one(AccessView)

    def on_mount(self) -> None:
        self.view.focus_main()
        self.view.action_reload()
        self.set_interval(self.poll_interval, self.view.poll, name="access-poll")

    def action_back(self) -> None:
        self.dismiss(None)
