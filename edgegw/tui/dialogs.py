"""Dialogs: every action that changes something is asked for here first.

:class:`ChoiceDialog` asks a question with one or more answers and Cancel. Focus starts on
Cancel and Escape (or ``n``) always cancels, so a stray Enter never stops a session. With
a single answer ``y`` confirms; with several, their numbers pick them. :class:`FormDialog`
edits a few text fields (a card's owner, expiry ...); given a ``submit`` step it stays open
until that step accepts the values, and a refusal is shown in the form, next to what was
typed, with the field it concerns focused. Texts are shown as they are, never read as markup,
so a card label with brackets cannot break a dialog.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from edgegw.tasks import TaskOwner


class ChoiceDialog(ModalScreen[str | None]):
    """A question: returns the chosen answer's value, or None for Cancel."""

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


@dataclass(frozen=True, slots=True)
class FormError:
    """Why the values of a form were not taken; ``field`` names the field at fault."""

    message: str
    field: str | None = None


Submit = Callable[[dict[str, str]], Coroutine[Any, Any, FormError | None]]
"""Takes the form's values; returns None when done, else what is wrong with them."""


class FormDialog(ModalScreen[dict[str, str] | None]):
    """A few text fields; returns ``{name: text}`` on Save, None on Cancel.

    With ``submit`` (run as a task of ``tasks``), Save first hands the values to it: the form
    closes only when it returns None; a :class:`FormError` is shown in the form, the typed
    values kept, and the named field focused, so a typo is corrected rather than typed again.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        title: str,
        body: str,
        fields: Sequence[Field],
        *,
        save_label: str = "Save",
        submit: Submit | None = None,
        tasks: TaskOwner | None = None,
    ) -> None:
        super().__init__()
        if submit is not None and tasks is None:
            raise ValueError("a form with a submit step needs a task owner")
        self.title_text = title
        self.body_text = body
        self.fields = list(fields)
        self._save_label = save_label
        self._submit = submit
        self._tasks = tasks
        self._busy = False
        self.error: FormError | None = None

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
            yield Static(id="form-error", classes="form-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(Content(f"Enter: {self._save_label}"), id="save", variant="primary")
                yield Button(Content("Esc: Cancel"), id="cancel")

    def on_mount(self) -> None:
        self.query_one("#form-error", Static).display = False
        if self.fields:
            self.query_one(f"#field-{self.fields[0].name}", Input).focus()

    def values(self) -> dict[str, str]:
        return {f.name: self.query_one(f"#field-{f.name}", Input).value for f in self.fields}

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self.save()
        else:
            self.dismiss(None)

    def save(self) -> None:
        if self._submit is None or self._tasks is None:
            self.dismiss(self.values())
            return
        if self._busy:
            return
        self._busy = True
        self._tasks.spawn(self._submitting(self._submit, self.values()), "form-submit")

    async def _submitting(self, submit: Submit, values: dict[str, str]) -> None:
        try:
            error = await submit(values)
        finally:
            self._busy = False
        if error is None:
            if self.is_attached and self.app.screen is self:
                self.dismiss(values)
            return
        self.show_error(error)

    def show_error(self, error: FormError) -> None:
        """Say what is wrong under the fields, and put the cursor in the field at fault."""
        self.error = error
        if not self.is_attached:
            return
        box = self.query_one("#form-error", Static)
        box.update(Content(f"! {error.message}"))
        box.display = True
        names = [f.name for f in self.fields]
        if error.field in names:
            self.query_one(f"#field-{error.field}", Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)


class NoticeDialog(ModalScreen[None]):
    """Something the caretaker must read (why an action is not possible); any key closes."""

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
