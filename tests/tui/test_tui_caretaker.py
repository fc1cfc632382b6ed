"""The caretaker's charger controls in the TUI, against a real daemon with load capping: once
the daemon has ``chargers.set_max_current``, the action is offered and limits the charger."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual.widgets import Static

from edgegw.sim.meter import SimMeter
from edgegw.tui.chargers import ChargersView
from edgegw.tui.dialogs import ChoiceDialog, FormDialog
from tests.control.test_caretaker_ops import attach, site_sections
from tests.tui.conftest import ALICE, Site, text_of, tui_app, until

MakeSite = Callable[..., Awaitable[Site]]


async def test_setting_a_chargers_maximum_current_from_the_chargers_page(
    make_site: MakeSite, meter: SimMeter
) -> None:
    site = await make_site(auth={"unknown_cards": "accept"}, **site_sections(meter))
    ops = await attach(site.gateway)
    controller = site.gateway.controller
    assert controller is not None
    cp = await site.charger("CP1")
    assert await cp.tap(ALICE) is not None
    await controller.wait_until(lambda: cp.offered_a(1) == 16)

    app = tui_app(site.socket)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.link_state.value == "up", "connected")
        await pilot.press("2")
        chargers = app.main.query_one(ChargersView)
        await until(pilot, lambda: chargers.selected() is not None, "CP1 selected")
        details = app.main.query_one("#charger-text", Static)
        await until(pilot, lambda: "m max current" in text_of(details), "the actions listed")
        assert "(n/a)" not in text_of(details)

        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, FormDialog), "the current asked")
        await pilot.press("1", "0", "enter")
        await until(pilot, lambda: isinstance(app.screen, ChoiceDialog), "the confirmation")
        dialog = app.screen
        assert isinstance(dialog, ChoiceDialog) and "10 A" in dialog.title_text
        await pilot.press("y")
        await until(pilot, lambda: cp.offered_a(1) == 10, "CP1 limited to 10 A")
    assert controller.charger_max("CP1") == 10
    await cp.close()
    ops.close()
