"""Waiting for a card to be tapped at a charger (``cards.learn``), with a way out.

The daemon answers ``cards.learn`` with the next card the charger reads (or "none" after the
timeout). The dialog shows what to do meanwhile; Escape stops waiting here (the daemon's own
wait ends at its timeout; the tap is answered by the charger's usual rules either way).
"""

from __future__ import annotations

import asyncio
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from edgegw.control.client import ControlClientError, RemoteError
from edgegw.tui.context import TuiContext

LEARN_TIMEOUT_S = 60.0


class LearnDialog(ModalScreen[dict[str, Any] | None]):
    """Returns the ``cards.learn`` answer, or None when cancelled or failed."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, ctx: TuiContext, charger_id: str, timeout: float = LEARN_TIMEOUT_S):
        super().__init__()
        self.ctx = ctx
        self.charger_id = charger_id
        self.timeout = timeout
        self._task: asyncio.Task[None] | None = None
        self._done = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -calm"):
            yield Static(Content(f"Tap the card at {self.charger_id}"), classes="dialog-title")
            yield Static(
                Content(
                    f"Hold the new card to the reader of {self.charger_id} now. Waiting up to "
                    f"{self.timeout:.0f} s. The charger answers the tap as usual (an unknown "
                    "card is normally refused): nothing is enrolled until you save the card."
                ),
                classes="dialog-body",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button(Content("Esc: Cancel"), id="cancel")

    def on_mount(self) -> None:
        self._task = self.ctx.tasks.spawn(self._learn(), f"cards-learn:{self.charger_id}")

    async def _learn(self) -> None:
        try:
            result = await self.ctx.backend.call(
                "cards.learn",
                {"charger": self.charger_id, "timeout": self.timeout},
                timeout=self.timeout + 10,
            )
        except ControlClientError as exc:
            message = exc.message if isinstance(exc, RemoteError) else str(exc)
            self.app.notify(message, title="Tap to add", severity="error", timeout=10)
            self._finish(None)
            return
        self._finish(result if isinstance(result, dict) else None)

    def _finish(self, result: dict[str, Any] | None) -> None:
        if not self._done and self.app.screen is self:
            self._done = True
            self.dismiss(result)

    def on_unmount(self) -> None:
        if self._task is not None:
            self._task.cancel("the dialog is gone")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_cancel()

    def action_cancel(self) -> None:
        if self._task is not None:
            self._task.cancel("cancelled by the caretaker")
        self._finish(None)
