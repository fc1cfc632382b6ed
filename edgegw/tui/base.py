"""The parts every caretaker view is built from.

A :class:`View` is one of the six pages (dashboard, chargers ...). It declares which daemon op
each of its actions needs (``ACTION_OPS``); in read-only mode, or for a user who may only look,
those actions have no key binding at all: they are not in the footer and their keys do
nothing. An action whose op this daemon lacks stays visible and, when pressed, says why it
cannot be done. Calls to the daemon run as owned tasks; a failure becomes a message on screen,
never a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import DataTable

from edgegw.control.client import ControlClientError, RemoteError
from edgegw.tui.context import TuiContext
from edgegw.tui.dialogs import ChoiceDialog, NoticeDialog

Cells = Sequence[str | Text]


class View(Vertical):
    """One page of the TUI; the app shows one at a time and tells it when data changed."""

    TITLE: ClassVar[str] = ""
    ACTION_OPS: ClassVar[Mapping[str, str]] = {}
    """Action name -> the daemon op it needs."""

    def __init__(self, ctx: TuiContext, *, id: str) -> None:
        super().__init__(id=id)
        self.ctx = ctx

    # ------------------------------------------------------------ hooks for the app

    def refresh_data(self) -> None:
        """The site data changed (called while the view is shown)."""

    def view_shown(self) -> None:
        """The view was switched to: fetch what it shows that is not pushed."""
        self.refresh_data()

    def poll(self) -> None:
        """Called every few seconds while shown (refresh what is not pushed)."""

    def focus_main(self) -> None:
        """Put the focus where the view's keys work."""
        tables = self.query(DataTable)
        if tables:
            tables.first().focus()
        else:
            self.focus()

    # ------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        op = self.ACTION_OPS.get(action)
        if op is None:
            return True
        return self.ctx.may(op)

    def blocked(self, op: str, what: str) -> bool:
        """If ``op`` cannot run, say why in a dialog and return True."""
        reason = self.ctx.why_not(op)
        if reason is None:
            return False
        self.app.push_screen(NoticeDialog(f"Cannot {what}", reason))
        return True

    def confirm(
        self,
        title: str,
        body: str,
        choices: Sequence[tuple[str, str]],
        then: Callable[[str], Coroutine[Any, Any, None]],
        *,
        name: str,
    ) -> None:
        """Ask; on an answer run ``then(answer)`` as an owned task; on Cancel do nothing."""

        def answered(choice: str | None) -> None:
            if choice is not None:
                self.run_task(then(choice), name)

        self.app.push_screen(ChoiceDialog(title, body, choices), answered)

    def run_task(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run ``coro`` as an owned task; a daemon error is shown, not raised."""
        self.ctx.tasks.spawn(self._guarded(coro, name), name)

    async def _guarded(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        try:
            await coro
        except ControlClientError as exc:
            self.report_error(exc)

    def report_error(self, exc: ControlClientError) -> None:
        message = exc.message if isinstance(exc, RemoteError) else str(exc)
        self.app.notify(message, title="Not done", severity="error", timeout=10)

    async def call(
        self, op: str, args: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        return await self.ctx.backend.call(op, args, timeout=timeout)


def plain(text: Any) -> Text:
    """A table cell that is shown as written (DataTable would read a str as markup)."""
    return text if isinstance(text, Text) else Text("" if text is None else str(text))


def sync_table(table: DataTable[Any], rows: Sequence[tuple[str, Cells]]) -> None:
    """Make ``table`` show ``rows`` (``(key, cells)``), keeping the cursor on its row.

    When the same rows are shown in the same order only changed cells are rewritten, so a
    live update does not make the table jump.
    """
    keys = [key for key, _ in rows]
    current = [str(row.key.value) for row in table.ordered_rows]
    columns = [c.key for c in table.ordered_columns]
    if keys == current:
        for key, cells in rows:
            for column, cell in zip(columns, cells, strict=False):
                value = plain(cell)
                if table.get_cell(key, column) != value:
                    table.update_cell(key, column, value)
        return
    selected = None
    if table.row_count and 0 <= table.cursor_row < table.row_count:
        selected = current[table.cursor_row]
    table.clear()
    for key, cells in rows:
        table.add_row(*(plain(c) for c in cells), key=key)
    if selected in keys:
        table.move_cursor(row=keys.index(selected))


def selected_key(table: DataTable[Any]) -> str | None:
    """The key of the row under the cursor (None for an empty table)."""
    if not table.row_count or not 0 <= table.cursor_row < table.row_count:
        return None
    return str(table.ordered_rows[table.cursor_row].key.value)
