"""The caretaker TUI driven by textual's Pilot against a real daemon and simulated chargers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual.widgets import DataTable

from edgegw.control import ControlClient
from edgegw.sim.charger import SimCharger
from edgegw.tui.app import CaretakerApp
from edgegw.tui.chargers import ChargersView
from edgegw.tui.dashboard import ChargerTile
from edgegw.tui.dialogs import ChoiceDialog
from edgegw.tui.notrunning import NotRunningScreen
from tests.conftest import GatewayFactory
from tests.tui.conftest import ALICE, Site, text_of, tui_app, until

MakeSite = Callable[..., Awaitable[Site]]
ACTION_CALLS = ("RemoteStopTransaction", "UnlockConnector", "Reset", "ChangeAvailability")


def tile(app: CaretakerApp, charger_id: str) -> str:
    for widget in app.main.query(ChargerTile):
        if widget.charger_id == charger_id:
            return text_of(widget)
    return ""


async def enrol(site: Site, card: str, owner: str) -> None:
    async with await ControlClient.connect(site.socket) as client:
        await client.call("cards.add", card=card, owner=owner)


def received(cp: SimCharger) -> list[str]:
    return [action for action, _ in cp.received if action in ACTION_CALLS]


async def test_dashboard_follows_a_session_starting_and_stopping(make_site: MakeSite) -> None:
    site = await make_site()
    await enrol(site, ALICE, "Alice")
    cp = await site.charger("CP1")
    app = tui_app(site.socket)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: tile(app, "CP1").startswith("AVAILABLE"), "CP1 available")
        assert tile(app, "CP2").startswith("OFFLINE")

        assert await cp.tap(ALICE) is not None
        await cp.meter_values(1)
        await until(pilot, lambda: tile(app, "CP1").startswith("CHARGING"), "CP1 charging")
        assert "Alice" in tile(app, "CP1")
        assert "16.0 A" in tile(app, "CP1")

        await cp.end_session(1)
        await until(pilot, lambda: tile(app, "CP1").startswith("AVAILABLE"), "CP1 available again")
        assert "Alice" not in tile(app, "CP1")
    await cp.close()


async def test_blocking_a_card_in_the_tui_refuses_it_at_the_charger(make_site: MakeSite) -> None:
    site = await make_site()
    await enrol(site, ALICE, "Alice")
    cp = await site.charger("CP1")
    assert (await cp.authorize(ALICE))["idTagInfo"]["status"] == "Accepted"
    app = tui_app(site.socket)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.link_state.value == "up", "connected")
        await pilot.press("4")
        table = app.main.query_one("#card-table", DataTable)
        await until(pilot, lambda: table.row_count == 1, "the card listed")
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, ChoiceDialog), "the confirmation")
        dialog = app.screen
        assert isinstance(dialog, ChoiceDialog) and ALICE in dialog.title_text
        await pilot.press("y")
        await until(
            pilot,
            lambda: "BLOCKED" in str(table.get_row_at(0)),
            "the card shown blocked",
        )
    assert (await cp.authorize(ALICE))["idTagInfo"]["status"] == "Blocked"
    await cp.close()


async def test_every_destructive_action_asks_first_and_cancel_sends_nothing(
    make_site: MakeSite,
) -> None:
    site = await make_site()
    await enrol(site, ALICE, "Alice")
    cp = await site.charger("CP1")
    await cp.tap(ALICE)
    app = tui_app(site.socket)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: tile(app, "CP1").startswith("CHARGING"), "CP1 charging")
        await pilot.press("2")
        chargers = app.main.query_one(ChargersView)
        await until(pilot, lambda: chargers.selected() is not None, "CP1 selected")
        for key in ("s", "u", "r", "e"):
            await pilot.press(key)
            await until(pilot, lambda: isinstance(app.screen, ChoiceDialog), f"{key} asks")
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is app.main, f"{key} dialog closed")
        await pilot.press("4")
        cards = app.main.query_one("#card-table", DataTable)
        await until(pilot, lambda: cards.row_count == 1, "the card listed")
        for key in ("b", "d"):
            await pilot.press(key)
            await until(pilot, lambda: isinstance(app.screen, ChoiceDialog), f"{key} asks")
            await pilot.press("n")
            await until(pilot, lambda: app.screen is app.main, f"{key} dialog closed")
        assert received(cp) == []
        assert cp.session(1) is not None
        assert "BLOCKED" not in str(cards.get_row_at(0))

        # Confirmed, the same key does act: the session is stopped remotely.
        await pilot.press("2", "s")
        await until(pilot, lambda: isinstance(app.screen, ChoiceDialog), "stop asks")
        await pilot.press("y")
        await until(pilot, lambda: cp.session(1) is None, "the session stopped")
        assert received(cp) == ["RemoteStopTransaction"]
        table = app.main.query_one("#charger-table", DataTable)
        await until(pilot, lambda: "AVAILABLE" in str(table.get_row_at(0)), "CP1 listed available")
    async with await ControlClient.connect(site.socket) as client:
        events = await client.call("events")
    assert any(e["kind"] == "action.RemoteStopTransaction" for e in events)
    await cp.close()


async def test_read_only_mode_has_no_actions(make_site: MakeSite) -> None:
    site = await make_site()
    await enrol(site, ALICE, "Alice")
    cp = await site.charger("CP1")
    await cp.tap(ALICE)
    app = tui_app(site.socket, read_only=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: tile(app, "CP1").startswith("CHARGING"), "CP1 charging")
        assert "p" not in _keys(app)
        await pilot.press("2")
        chargers = app.main.query_one(ChargersView)
        await until(pilot, lambda: chargers.selected() is not None, "CP1 selected")
        assert not {"s", "u", "r", "e", "m", "f"} & _keys(app)
        for key in ("s", "u", "r", "e", "m", "f"):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen is app.main, f"{key} opened a dialog in read-only mode"
        assert "View only" in "\n".join(chargers.details(chargers.selected()))  # type: ignore[arg-type]
        await pilot.press("4")
        cards = app.main.query_one("#card-table", DataTable)
        await until(pilot, lambda: cards.row_count == 1, "the card listed")
        assert not {"b", "u", "e", "a", "t", "d"} & _keys(app)
        await pilot.press("b", "d", "a")
        await pilot.pause()
        assert app.screen is app.main
        assert "READ-ONLY" in text_of(app.main.query_one("#navbar"))
    assert received(cp) == [] and cp.session(1) is not None
    await cp.close()


def _keys(app: CaretakerApp) -> set[str]:
    """Keys bound (and allowed) where the focus is now."""
    return {key for key, active in app.screen.active_bindings.items() if active.enabled}


async def test_the_daemon_going_away_and_coming_back_is_shown(
    make_site: MakeSite, make_gateway: GatewayFactory
) -> None:
    site = await make_site()
    socket = site.socket
    app = tui_app(socket)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.link_state.value == "up", "connected")
        assert app.screen is app.main
        site.gateway.shutdown()
        await until(pilot, lambda: isinstance(app.screen, NotRunningScreen), "not running shown")
        down = app.screen
        assert isinstance(down, NotRunningScreen)
        await until(pilot, lambda: "NOT RUNNING" in down.title_text(), "the down title")
        assert str(socket) in down.body_text() or "control connection" in down.body_text()

        again = await make_gateway(
            chargers=[{"id": "CP9"}], control={"socket": str(socket), "group": None}
        )
        assert again.control is not None
        await until(pilot, lambda: app.screen is app.main, "recovered by itself")
        await until(
            pilot,
            lambda: (
                app.ctx.data.snapshot is not None
                and [c.id for c in app.ctx.data.snapshot.chargers] == ["CP9"]
            ),
            "the new daemon's chargers",
        )
