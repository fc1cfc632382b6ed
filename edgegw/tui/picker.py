"""Picking one charger out of many: a filter box over a scrolling list.

A site may have hundreds of chargers, so a charger is never picked from a row of buttons.
:class:`ChargerPicker` lists them all (id, label, state) under a filter box: typing narrows
the list to the chargers whose id, label or state contains the text, Up/Down move in the list
while the typing goes on, Enter picks the highlighted one (or the only one left), Escape
cancels. Texts are shown as they are, never read as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option

from edgegw.cli.output import plural
from edgegw.tui.model import ChargerLive
from edgegw.tui.text import short, status_word


@dataclass(frozen=True, slots=True)
class PickItem:
    """One charger as the picker shows it."""

    id: str
    label: str = ""
    state: str = ""

    @property
    def line(self) -> str:
        return f"{short(self.id, 24):<24} {short(self.label, 24):<24} {self.state}".rstrip()

    def matches(self, text: str) -> bool:
        wanted = text.strip().casefold()
        return not wanted or any(
            wanted in part.casefold() for part in (self.id, self.label, self.state)
        )


def pick_items(chargers: Sequence[ChargerLive]) -> list[PickItem]:
    return [PickItem(c.id, c.label, status_word(c.status)) for c in chargers]


class ChargerPicker(ModalScreen[str | None]):
    """Returns the picked charger's id, or None when cancelled."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("down", "move(1)", "Next", show=False),
        Binding("up", "move(-1)", "Previous", show=False),
        Binding("pagedown", "move(10)", "Page down", show=False),
        Binding("pageup", "move(-10)", "Page up", show=False),
    ]

    def __init__(self, title: str, body: str, items: Sequence[PickItem]) -> None:
        super().__init__()
        if not items:
            raise ValueError("a picker needs at least one charger")
        self.title_text = title
        self.body_text = body
        self.items = list(items)
        self.shown: list[PickItem] = list(self.items)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -calm"):
            yield Static(Content(self.title_text), classes="dialog-title")
            if self.body_text:
                yield Static(Content(self.body_text), classes="dialog-body")
            yield Input(placeholder="type to filter: id, label or state", id="pick-filter")
            yield OptionList(id="pick-list")
            yield Static(id="pick-note", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(Content("Enter: Pick"), id="pick", variant="primary")
                yield Button(Content("Esc: Cancel"), id="cancel")

    def on_mount(self) -> None:
        self._fill("")
        self.query_one("#pick-filter", Input).focus()

    def _fill(self, text: str) -> None:
        self.shown = [item for item in self.items if item.matches(text)]
        options = self.query_one("#pick-list", OptionList)
        options.clear_options()
        options.add_options(Option(Content(item.line), id=item.id) for item in self.shown)
        if self.shown:
            options.highlighted = 0
        note = self.query_one("#pick-note", Static)
        total = len(self.items)
        if not self.shown:
            note.update(f"No charger matches {text.strip()!r} (of {total}).")
        elif len(self.shown) == total:
            note.update(f"{plural(total, 'charger')}. Up/Down to move, Enter to pick.")
        else:
            note.update(
                f"{len(self.shown)} of {plural(total, 'charger')} match; "
                "Enter picks the marked one."
            )

    @property
    def highlighted(self) -> str | None:
        """The id of the charger Enter would pick."""
        index = self.query_one("#pick-list", OptionList).highlighted
        if index is None or not 0 <= index < len(self.shown):
            return None
        return self.shown[index].id

    @on(Input.Changed, "#pick-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._fill(event.value)

    @on(Input.Submitted, "#pick-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_pick()

    @on(OptionList.OptionSelected, "#pick-list")
    def _option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self.dismiss(event.option.id)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "pick":
            self.action_pick()
        else:
            self.dismiss(None)

    def action_move(self, step: int) -> None:
        options = self.query_one("#pick-list", OptionList)
        if not self.shown:
            return
        index = options.highlighted
        index = 0 if index is None else max(0, min(len(self.shown) - 1, index + step))
        options.highlighted = index

    def action_pick(self) -> None:
        chosen = self.highlighted
        if chosen is not None:
            self.dismiss(chosen)

    def action_cancel(self) -> None:
        self.dismiss(None)
