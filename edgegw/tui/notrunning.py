"""The screen shown while the daemon cannot be reached: unmistakable, and self-healing.

It covers everything (no stale numbers left on screen to be mistaken for live ones), says in
words that edgegw is not running and what that means for the site, shows the reason the
connection failed, and that the TUI keeps trying. When the daemon is back the app removes it
by itself; nobody has to be there to press a key.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Static

from edgegw.tui.link import LinkState


class NotRunningScreen(Screen[None]):
    BINDINGS = [
        Binding("r", "retry", "Try again now"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, where: str, retry_interval: float, on_retry: Callable[[], None]) -> None:
        super().__init__()
        self.where = where
        self._on_retry = on_retry
        self.retry_interval = retry_interval
        self.state = LinkState.CONNECTING
        self.problem = ""
        self.attempt = 0

    def compose(self) -> ComposeResult:
        with Vertical(id="down-box"):
            yield Static(id="down-title", markup=False)
            yield Static(id="down-body", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self._render_state()

    def show_state(self, state: LinkState, problem: str, attempt: int) -> None:
        self.state, self.problem, self.attempt = state, problem, attempt
        if self.is_mounted:
            self._render_state()

    def title_text(self) -> str:
        if self.state is LinkState.CONNECTING:
            return "Connecting to edgegw ..."
        if self.state is LinkState.UNREACHABLE:
            return "!!  edgegw CANNOT BE REACHED  !!"
        return "!!  edgegw is NOT RUNNING  !!"

    def body_text(self) -> str:
        if self.state is LinkState.CONNECTING:
            return f"Connecting to the edgegw daemon at {self.where} ..."
        tries = f" (attempt {self.attempt})" if self.attempt > 1 else ""
        if self.state is LinkState.UNREACHABLE:
            what = (
                "edgegw may well be running, but this screen cannot talk to it, so nothing "
                "here would be live."
            )
        else:
            what = (
                "The gateway daemon does not answer, so nothing on this screen would be live. "
                "While it is down, chargers get no card checks and no load limits from it, "
                "and nothing is passed on to the cloud."
            )
        return "\n\n".join(
            [
                what,
                f"Reason: {self.problem or 'unknown'}",
                f"Trying again every {self.retry_interval:g} s{tries}. This screen goes away by "
                "itself as soon as edgegw is back. If it stays, call the installer.",
            ]
        )

    def _render_state(self) -> None:
        self.set_class(self.state is LinkState.CONNECTING, "-connecting")
        self.query_one("#down-title", Static).update(Content(self.title_text()))
        self.query_one("#down-body", Static).update(Content(self.body_text()))

    def action_retry(self) -> None:
        self._on_retry()
