"""Dialogs: every action that changes something is asked for here first.

:class:`ChoiceDialog` asks a question with one or more answers and Cancel. Focus starts on
Cancel and Escape (or ``n``) always cancels, so a stray Enter never stops a session. With
a single answer ``y`` confirms; with several, their numbers pick them. :class:`FormDialog`
edits a few text fields (a card's owner, expiry ...). Texts are shown as they are, never
read as markup, so a card label with brackets cannot break a dialog.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

DIALOG_CSS = """
.dialog {
    width: 76;
    max-width: 100%;
    height: auto;
    max-height: 100%;
    border: thick $error;
    background: $surface;
    padding: 0 1;
}
.dialog.-calm {
    border: thick $primary;
}
.dialog-title {
    text-style: bold;
    width: 100%;
    content-align: center middle;
    margin-bottom: 1;
}
.dialog-body {
    width: 100%;
    margin-bottom: 1;
}
.dialog-buttons {
    height: auto;
    width: 100%;
    align: center middle;
}
.dialog-buttons Button {
    margin: 0 1;
    min-width: 12;
}
.form-row {
    height: auto;
}
.form-row Label {
    width: 18;
    padding: 1 1 0 0;
}
.form-row Input {
    width: 1fr;
}
"""


class ChoiceDialog(ModalScreen[str | None]):
    """A question: returns the chosen answer's value, or None for Cancel."""

    DEFAULT_CSS = DIALOG_CSS
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("n", "cancel", "Cancel", show=False),
        Binding("y", "confirm", "Confirm", show=False),
        *(Binding(str(i), f"choose({i})", show=False) for i in range(1, 10)),
    ]

    def __init__(
        self,
        title: str,
        body: str,
        choices: Sequence[tuple[str, str]],
        *,
        danger: bool = True,
        cancel_label: str = "Cancel",
    ) -> None:
        super().__init__()
        if not choices:
            raise ValueError("a dialog needs at least one choice")
        self.title_text = title
        self.body_text = body
        self.choices = list(choices)
        self._danger = danger
        self._cancel_label = cancel_label

    def compose(self) -> ComposeResult:
        single = len(self.choices) == 1
        with Vertical(classes="dialog" if self._danger else "dialog -calm"):
            yield Static(Content(self.title_text), classes="dialog-title")
            yield Static(Content(self.body_text), classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                for index, (_, label) in enumerate(self.choices, start=1):
                    key = "y" if single else str(index)
                    yield Button(
                        Content(f"{key}: {label}"),
                        id=f"choice-{index}",
                        variant="error" if self._danger else "primary",
                    )
                yield Button(Content(f"n/Esc: {self._cancel_label}"), id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        button_id = event.button.id or ""
        if button_id.startswith("choice-"):
            self.action_choose(int(button_id.removeprefix("choice-")))
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_confirm(self) -> None:
        if len(self.choices) == 1:
            self.dismiss(self.choices[0][0])

    def action_choose(self, index: int) -> None:
        if 1 <= index <= len(self.choices):
            self.dismiss(self.choices[index - 1][0])


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    label: str
    value: str = ""
    placeholder: str = ""


class FormDialog(ModalScreen[dict[str, str] | None]):
    """A few text fields; returns ``{name: text}`` on Save, None on Cancel."""

    DEFAULT_CSS = DIALOG_CSS
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self, title: str, body: str, fields: Sequence[Field], *, save_label: str = "Save"
    ) -> None:
        super().__init__()
        self.title_text = title
        self.body_text = body
        self.fields = list(fields)
        self._save_label = save_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -calm"):
            yield Static(Content(self.title_text), classes="dialog-title")
            if self.body_text:
                yield Static(Content(self.body_text), classes="dialog-body")
            for field in self.fields:
                with Horizontal(classes="form-row"):
                    yield Label(Content(field.label))
                    yield Input(
                        field.value, placeholder=field.placeholder, id=f"field-{field.name}"
                    )
            with Horizontal(classes="dialog-buttons"):
                yield Button(Content(f"Enter: {self._save_label}"), id="save", variant="primary")
                yield Button(Content("Esc: Cancel"), id="cancel")

    def on_mount(self) -> None:
        if self.fields:
            self.query_one(f"#field-{self.fields[0].name}", Input).focus()

    def values(self) -> dict[str, str]:
        return {f.name: self.query_one(f"#field-{f.name}", Input).value for f in self.fields}

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(self.values())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(self.values() if event.button.id == "save" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class NoticeDialog(ModalScreen[None]):
    """Something the caretaker must read (why an action is not possible); any key closes."""

    DEFAULT_CSS = DIALOG_CSS
    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("enter", "close", "Close", show=False),
    ]

    def __init__(self, title: str, body: str) -> None:
        super().__init__()
        self.title_text = title
        self.body_text = body

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -calm"):
            yield Static(Content(self.title_text), classes="dialog-title")
            yield Static(Content(self.body_text), classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button(Content("Enter: Close"), id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
