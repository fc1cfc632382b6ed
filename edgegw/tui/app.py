"""``edgegw tui``: the caretaker's terminal UI, a thin client of the daemon's control socket.

Six pages, switched with F1-F6 (or 1-6): Dashboard, Chargers, Sessions, Cards, Energy,
Events. Each page's actions are letters shown in the footer; every action that changes
something asks first. The site picture is pushed by the daemon (topic ``live``, at most twice
a second) and polled every few seconds as a safety net (a textual interval timer; the fetches
run as textual workers), so the dashboard follows the site
without anyone pressing a key. While the daemon cannot be reached a full-screen notice says so,
and goes away by itself when the daemon is back.

``read_only`` removes every action binding (for people who may look but not act); the daemon
independently refuses its admin ops to users other than root and its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path, PurePath
from typing import Any, ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Static

from edgegw.control.client import ControlClientError
from edgegw.tasks import TaskOwner
from edgegw.tui.base import View
from edgegw.tui.cards import CardsView
from edgegw.tui.chargers import ChargersView
from edgegw.tui.context import TuiContext
from edgegw.tui.dashboard import DashboardView
from edgegw.tui.energy import EnergyView
from edgegw.tui.events import EventsView
from edgegw.tui.link import Backend, LinkState
from edgegw.tui.model import LiveSnapshot, SiteData, SnapshotMismatch, mismatch_text, read_snapshot
from edgegw.tui.notrunning import NotRunningScreen
from edgegw.tui.sessions import SessionsView
from edgegw.tui.text import Glyphs, glyphs_for

log = logging.getLogger(__name__)

PAGES: tuple[tuple[str, type[View]], ...] = (
    ("dashboard", DashboardView),
    ("chargers", ChargersView),
    ("sessions", SessionsView),
    ("cards", CardsView),
    ("energy", EnergyView),
    ("events", EventsView),
)


class NavBar(Static):
    """The page list with the current page in brackets, and the mode on the right."""

    def show(self, current: str, note: str) -> None:
        parts = []
        for number, (page_id, view) in enumerate(PAGES, start=1):
            label = f"{number} {view.TITLE}"
            parts.append(f"[{label}]" if page_id == current else f" {label} ")
        line = "".join(parts)
        width = max(len(line) + 1, self.size.width or 80)
        self.update(Content(line + note.rjust(width - len(line))))


class MainScreen(Screen[None]):
    """The pages, the page list above them, the footer below."""

    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        *(
            Binding(f"f{n}", f"page('{page_id}')", view.TITLE, show=False)
            for n, (page_id, view) in enumerate(PAGES, start=1)
        ),
        *(
            Binding(str(n), f"page('{page_id}')", view.TITLE, show=False)
            for n, (page_id, view) in enumerate(PAGES, start=1)
        ),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.views = {page_id: view(ctx, id=page_id) for page_id, view in PAGES}
        self.page = "dashboard"

    def compose(self) -> ComposeResult:
        yield NavBar(id="navbar", markup=False)
        with ContentSwitcher(initial=self.page, id="pages"):
            yield from self.views.values()
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_nav()
        self.current.focus_main()

    def on_resize(self) -> None:
        self.refresh_nav()

    @property
    def current(self) -> View:
        return self.views[self.page]

    def action_page(self, page_id: str) -> None:
        if page_id not in self.views:
            return
        self.page = page_id
        self.query_one("#pages", ContentSwitcher).current = page_id
        self.refresh_nav()
        view = self.current
        view.focus_main()
        view.view_shown()
        self.refresh_bindings()

    def refresh_nav(self) -> None:
        ctx = self.ctx
        if ctx.read_only:
            note = "READ-ONLY "
        elif ctx.view_only:
            note = "VIEW ONLY (no admin rights) "
        else:
            note = ""
        self.query_one("#navbar", NavBar).show(self.page, note)


class CaretakerApp(App[None]):
    """The caretaker TUI on a :class:`~edgegw.tui.link.Backend` (the daemon, or test data)."""

    TITLE = "edgegw"
    ENABLE_COMMAND_PALETTE = False
    CSS_PATH: ClassVar[list[str | PurePath]] = [
        "dialogs.tcss",
        "pages.tcss",
        "access.tcss",
        "app.tcss",
    ]
    """Loaded in this order; app.tcss last, so its rules win ties (the ASCII frames)."""

    def __init__(
        self,
        backend: Backend,
        *,
        read_only: bool = False,
        glyphs: Glyphs | None = None,
        clock: Callable[[], float] = time.time,
        tz: tzinfo | None = None,
        export_dir: Path | None = None,
        poll_interval: float = 5.0,
        retry_interval: float = 2.0,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.poll_interval = poll_interval
        self.retry_interval = retry_interval
        self.tasks = TaskOwner("tui")
        self.ctx = TuiContext(
            backend=backend,
            data=SiteData(),
            clock=clock,
            tz=tz,
            glyphs=glyphs or glyphs_for(),
            read_only=read_only,
            tasks=self.tasks,
            export_dir=export_dir or Path.cwd(),
        )
        self.set_class(self.ctx.glyphs.ascii, "-ascii")
        self.main = MainScreen(self.ctx)
        self.down_screen: NotRunningScreen | None = None
        self._refresh_pending = False
        self._last_push: float | None = None
        self.link_state = LinkState.CONNECTING

    def get_default_screen(self) -> Screen[Any]:
        return self.main

    def on_mount(self) -> None:
        if self.backend.state is not LinkState.UP:
            self._show_down(self.backend.state, self.backend.problem)
        self.tasks.spawn(self.backend.run(self), "daemon-link")
        self.set_interval(self.poll_interval, self._poll, name="poll")

    async def on_unmount(self) -> None:
        await self.tasks.close("tui closing")

    # ------------------------------------------------------------ LinkListener

    def link_changed(self, state: LinkState, problem: str) -> None:
        self.call_later(self._apply_link, state, problem)

    def link_event(self, topic: str, data: Any) -> None:
        if topic == "live":
            self._take_snapshot(data)
        elif topic == "live.event" and isinstance(data, dict):
            self.ctx.data.add_event(data)
            self.schedule_refresh()

    def retry_now(self) -> None:
        self.backend.retry_now()

    # ------------------------------------------------------------ link state

    def _apply_link(self, state: LinkState, problem: str) -> None:
        previous, self.link_state = self.link_state, state
        if state is LinkState.UP:
            if self.down_screen is not None:
                while len(self.screen_stack) > 1 and self.screen is not self.main:
                    self.pop_screen()
                self.down_screen = None
            if previous is not LinkState.UP:
                self._connected()
            return
        self._show_down(state, problem)

    def _show_down(self, state: LinkState, problem: str) -> None:
        attempts = getattr(self.backend, "attempts", 0)
        if self.down_screen is None:
            while len(self.screen_stack) > 1 and self.screen is not self.main:
                self.pop_screen()  # a dialog of the lost connection: its action cannot run now
            self.down_screen = NotRunningScreen(
                self.backend.where, self.retry_interval, self.backend.retry_now
            )
            self.push_screen(self.down_screen)
        self.down_screen.show_state(state, problem, attempts)

    @work(exclusive=True, group="connected", name="connected")
    async def _connected(self) -> None:
        """Fresh connection: learn the version, the whole picture, the recent events."""
        ctx = self.ctx
        try:
            status = await self.backend.call("status")
            if isinstance(status, dict):
                ctx.data.version = str(status.get("version") or "")
            await self.fetch_snapshot()
            if self.backend.has("live.events"):
                events = await self.backend.call("live.events", {"limit": 200})
                if isinstance(events, list):
                    ctx.data.live_events.clear()
                    for event in reversed(events):
                        if isinstance(event, dict):
                            ctx.data.add_event(event)
        except ControlClientError as exc:
            log.info("first fetch after connecting failed: %s", exc)
        self.main.refresh_nav()
        self.main.refresh_bindings()
        self.main.current.view_shown()
        self.schedule_refresh()

    async def fetch_snapshot(self) -> None:
        """The site picture by request (the pushed one is preferred; this is the safety net)."""
        backend = self.backend
        if not backend.has("live.snapshot"):
            self._mismatch("the daemon has no 'live.snapshot' op")
            return
        self._take_snapshot(await backend.call("live.snapshot"))

    def _take_snapshot(self, data: Any) -> None:
        try:
            snapshot = read_snapshot(data)
        except SnapshotMismatch as exc:
            self._mismatch(str(exc))
            return
        self._last_push = self.ctx.clock()
        self._set_snapshot(snapshot)

    def _set_snapshot(self, snapshot: LiveSnapshot) -> None:
        data = self.ctx.data
        now = self.ctx.clock()
        data.snapshot = snapshot
        data.mismatch = None
        data.updated_at = now
        data.history.add(now, snapshot.site.current_a, snapshot.site.ev_current_a)
        self.schedule_refresh()

    def _mismatch(self, problem: str) -> None:
        """The daemon's snapshot is not this TUI's: say so once, show no stale picture."""
        data = self.ctx.data
        text = mismatch_text(problem, data.version)
        data.snapshot = None
        if text != data.mismatch:
            data.mismatch = text
            log.warning("%s", text)
            self.notify(text, title="Version mismatch", severity="error", timeout=30)
        self.schedule_refresh()

    def _poll(self) -> None:
        """The safety net's tick: fetch the picture when no push came for a while, and let
        the page shown poll what it shows."""
        if self.link_state is not LinkState.UP:
            return
        last = self._last_push
        if last is None or self.ctx.clock() - last > 2 * self.poll_interval:
            self._poll_snapshot()
        self.main.current.poll()

    @work(exclusive=True, group="poll", name="poll-snapshot")
    async def _poll_snapshot(self) -> None:
        try:
            await self.fetch_snapshot()
        except ControlClientError as exc:
            log.debug("poll failed: %s", exc)

    # ------------------------------------------------------------ refreshing

    def schedule_refresh(self) -> None:
        """Redraw the shown page once, soon (many changes in a row cost one redraw)."""
        if not self._refresh_pending:
            self._refresh_pending = True
            self.call_later(self._refresh)

    def _refresh(self) -> None:
        self._refresh_pending = False
        self.main.current.refresh_data()
