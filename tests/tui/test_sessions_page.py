"""The Sessions page against a real daemon: it follows sessions by itself, speaks the command
line's words, and Escape leaves the filter boxes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual.widgets import DataTable, Input

from edgegw.control import ControlClient
from edgegw.tui.sessions import SessionsView
from tests.tui.conftest import ALICE, Site, tui_app, until

MakeSite = Callable[..., Awaitable[Site]]


def states(table: DataTable[object]) -> list[str]:
    return [str(table.get_row_at(i)[-1]) for i in range(table.row_count)]


async def test_sessions_page_follows_a_session_without_a_key_pressed(make_site: MakeSite) -> None:
    site = await make_site()
    async with await ControlClient.connect(site.socket) as client:
        await client.call("cards.add", card=ALICE, owner="Alice")
    cp = await site.charger("CP1")
    app = tui_app(site.socket)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.link_state.value == "up", "connected")
        await pilot.press("3")
        view = app.main.query_one(SessionsView)
        table = app.main.query_one("#session-table", DataTable)
        await until(pilot, lambda: view._loaded and not view._loading, "the first read")
        assert table.row_count == 0

        assert await cp.tap(ALICE) is not None
        await until(pilot, lambda: states(table) == ["open"], "the running session listed")
        await cp.end_session(1)
        await until(pilot, lambda: states(table) == ["finished"], "the session shown finished")
    await cp.close()


async def test_escape_leaves_the_filter_box_and_keeps_the_applied_filter(
    make_site: MakeSite,
) -> None:
    site = await make_site()
    app = tui_app(site.socket)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.link_state.value == "up", "connected")
        await pilot.press("3", "slash")
        card = app.main.query_one("#filter-card", Input)
        await until(pilot, lambda: card.has_focus, "the filter box focused")
        await pilot.press("b", "o", "b")
        assert card.value == "bob"
        await pilot.press("escape")
        table = app.main.query_one("#session-table", DataTable)
        await until(pilot, lambda: table.has_focus, "back in the table")
        view = app.main.query_one(SessionsView)
        assert view.applied["card"] == ""  # typed, not applied: the list is not narrowed
        assert app.screen is app.main  # Escape did not leave the page or the app
