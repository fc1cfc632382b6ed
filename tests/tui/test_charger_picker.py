"""Sites with many chargers: the Cards page's "tap to add" picks any of them (filter and scroll),
and the Add-card form keeps what was typed when the daemon refuses it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from textual.widgets import DataTable, Input, OptionList, Static

from edgegw.control import ControlClient
from edgegw.sim.charger import SimCharger
from edgegw.tui.app import CaretakerApp
from edgegw.tui.chargers import ChargersView
from edgegw.tui.dialogs import FormDialog
from edgegw.tui.learn import LearnDialog
from edgegw.tui.picker import ChargerPicker
from tests.conftest import gateway_url
from tests.tui.conftest import Site, text_of, tui_app, until
from tests.tui.fakes import NOW, TZ, FakeBackend, many_chargers

MakeSite = Callable[..., Awaitable[Site]]


def picker(app: CaretakerApp) -> ChargerPicker:
    screen = app.screen
    assert isinstance(screen, ChargerPicker)
    return screen


async def open_picker(pilot: Any, app: CaretakerApp) -> ChargerPicker:
    await until(pilot, lambda: app.ctx.data.snapshot is not None, "the first picture")
    await pilot.press("4")
    await pilot.pause()
    await pilot.press("t")
    await until(pilot, lambda: isinstance(app.screen, ChargerPicker), "the charger picker")
    dialog = picker(app)
    await until(pilot, lambda: bool(dialog.query("#pick-list")) and dialog.is_mounted, "drawn")
    await pilot.pause()
    return dialog


async def test_fifty_real_chargers_can_all_be_picked_to_tap_a_card(make_site: MakeSite) -> None:
    ids = [f"CP-{n:02d}" for n in range(1, 51)]
    site = await make_site(
        chargers=[{"id": cid, "label": f"Bay {cid[3:]}"} for cid in ids],
        # All 50 connect from this one address at once.
        server={"max_connections_per_address": 64, "max_pending_per_address": 64},
    )
    url = gateway_url(site.gateway)
    chargers = [SimCharger(cid, url, connectors=1) for cid in ids]

    async def bring_up(cp: SimCharger) -> None:
        await cp.connect()
        await cp.boot()
        await cp.status(1, "Available")

    await asyncio.gather(*(bring_up(cp) for cp in chargers))
    app = tui_app(site.socket)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(
            pilot,
            lambda: (
                app.ctx.data.snapshot is not None
                and sum(c.connected for c in app.ctx.data.snapshot.chargers) == 50
            ),
            "all 50 chargers online",
        )
        dialog = await open_picker(pilot, app)
        assert [item.id for item in dialog.items] == ids  # every one, not the first six
        options = dialog.query_one("#pick-list", OptionList)
        assert options.option_count == 50

        # Scrolling: Down from the filter box walks the list past what fits on screen.
        for _ in range(44):
            await pilot.press("down")
        assert dialog.highlighted == "CP-45"
        assert options.scroll_offset.y > 0  # the list scrolled to keep it in view

        # Filtering: a few characters narrow the list; Enter picks the one left.
        await pilot.press("4", "7")
        await until(pilot, lambda: options.option_count == 1, "only CP-47 left")
        assert dialog.highlighted == "CP-47"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, LearnDialog), "waiting for the tap")
        learn = app.screen
        assert isinstance(learn, LearnDialog) and learn.charger_id == "CP-47"
        # The daemon is listening on CP-47 now: the card held to it fills the new-card form.
        learn_ops = site.gateway.learn_ops
        assert learn_ops is not None
        await asyncio.wait_for(learn_ops.learner.until_waiting("CP-47"), 10)
        await chargers[46].authorize("04C0FFEE")
        await until(pilot, lambda: isinstance(app.screen, FormDialog), "the new-card form")
        form = app.screen
        assert isinstance(form, FormDialog)
        await until(pilot, lambda: bool(form.query("#field-card")), "the form drawn")
        assert form.query_one("#field-card", Input).value == "04C0FFEE"
        assert "Read at CP-47" in form.body_text
    for cp in chargers:
        await cp.close()


async def test_three_hundred_chargers_filter_by_label_and_scroll() -> None:
    backend = FakeBackend()
    backend.answers["live.snapshot"] = many_chargers(300)
    app = CaretakerApp(backend, clock=lambda: NOW, tz=TZ)
    async with app.run_test(size=(100, 30)) as pilot:
        dialog = await open_picker(pilot, app)
        options = dialog.query_one("#pick-list", OptionList)
        assert options.option_count == 300
        note = dialog.query_one("#pick-note", Static)
        assert "300 chargers" in text_of(note)

        for _ in range(30):
            await pilot.press("pagedown")
        assert dialog.highlighted == "CP-300"  # the last of 300 is reachable
        assert options.scroll_offset.y >= 300 - options.size.height

        for key in "level 2 bay 29":
            await pilot.press("space" if key == " " else key)
        await until(pilot, lambda: options.option_count < 300, "the list narrowed")
        shown = [item.id for item in dialog.shown]
        assert shown == [f"CP-{n:03d}" for n in range(1, 301) if n % 3 == 2 and "29" in str(n)]
        assert "of 300 chargers match" in text_of(note)
        await pilot.press("down", "enter")
        await until(pilot, lambda: not isinstance(app.screen, ChargerPicker), "picked")
    learns = [args for op, args in backend.calls if op == "cards.learn"]
    assert learns == [{"charger": shown[1], "timeout": 60.0}]


async def test_picker_says_when_nothing_matches_and_escape_cancels() -> None:
    backend = FakeBackend()
    backend.answers["live.snapshot"] = many_chargers(50)
    app = CaretakerApp(backend, clock=lambda: NOW, tz=TZ)
    async with app.run_test(size=(100, 30)) as pilot:
        dialog = await open_picker(pilot, app)
        for key in "zzz":
            await pilot.press(key)
        await until(pilot, lambda: not dialog.shown, "nothing matches")
        assert "No charger matches 'zzz' (of 50)" in text_of(dialog.query_one("#pick-note"))
        await pilot.press("enter")  # nothing to pick: the picker stays
        assert app.screen is dialog
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main, "cancelled")
    assert not any(op == "cards.learn" for op, _ in backend.calls)


async def test_add_card_form_keeps_what_was_typed_and_shows_the_refusal(
    make_site: MakeSite,
) -> None:
    site = await make_site()
    app = tui_app(site.socket)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.link_state.value == "up", "connected")
        await pilot.press("4")
        await pilot.pause()
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, FormDialog), "the add form")
        form = app.screen
        assert isinstance(form, FormDialog)
        typed = {
            "card": "04A1B2C3",
            "format": "",
            "owner": "Dana Peeters",
            "label": "blue fob",
            "expiry": "2027-13-45",
            "chargers": "CP1",
        }
        for name, value in typed.items():
            form.query_one(f"#field-{name}", Input).value = value
        await pilot.press("enter")
        error = form.query_one("#form-error", Static)
        await until(pilot, lambda: bool(error.display) and "expiry" in text_of(error), "refused")
        assert app.screen is form  # still open
        assert form.values() == typed  # nothing typed is lost
        assert form.query_one("#field-expiry", Input).has_focus  # the field at fault

        form.query_one("#field-expiry", Input).value = "2027-12-31"
        form.query_one("#field-expiry", Input).focus()
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is app.main, "the form closed once accepted")
        table = app.main.query_one("#card-table", DataTable)
        await until(pilot, lambda: table.row_count == 1, "the card listed")
    async with await ControlClient.connect(site.socket) as client:
        cards = await client.call("cards.list")
    (card,) = cards["cards"]
    assert (card["owner"], card["label"], card["chargers"]) == ("Dana Peeters", "blue fob", ["CP1"])


async def test_the_chargers_page_filters_three_hundred_chargers() -> None:
    backend = FakeBackend()
    backend.answers["live.snapshot"] = many_chargers(300)
    app = CaretakerApp(backend, clock=lambda: NOW, tz=TZ)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.ctx.data.snapshot is not None, "the first picture")
        await pilot.press("2")
        table = app.main.query_one("#charger-table", DataTable)
        await until(pilot, lambda: table.row_count == 300, "every charger listed")
        await pilot.press("slash", *"bay", "space", *"29")
        wanted = [f"CP-{n:03d}" for n in range(1, 301) if "bay 29" in f"bay {n}"]
        await until(pilot, lambda: table.row_count == len(wanted), "the list narrowed")
        assert [str(row.key.value) for row in table.ordered_rows] == wanted
        await pilot.press("escape")
        await until(pilot, lambda: table.has_focus, "back in the table")
        await pilot.press("down")
        chargers = app.main.query_one(ChargersView)
        selected = chargers.selected()
        assert selected is not None and selected.id == wanted[1]


async def test_add_card_form_takes_a_token_when_told_it_is_one(make_site: MakeSite) -> None:
    """A card id that is not a UID is refused unless the format says token (issue 19)."""
    site = await make_site()
    app = tui_app(site.socket)
    async with app.run_test(size=(100, 34)) as pilot:
        await until(pilot, lambda: app.link_state.value == "up", "connected")
        await pilot.press("4")
        await pilot.pause()
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, FormDialog), "the add form")
        form = app.screen
        assert isinstance(form, FormDialog)
        form.query_one("#field-card", Input).value = "APP-KEY-42"
        form.query_one("#field-card", Input).focus()
        await pilot.press("enter")
        error = form.query_one("#form-error", Static)
        await until(pilot, lambda: bool(error.display), "refused: not a UID")
        assert app.screen is form
        form.query_one("#field-format", Input).value = "token"
        form.query_one("#field-format", Input).focus()
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is app.main, "the form closed once accepted")
    async with await ControlClient.connect(site.socket) as client:
        cards = await client.call("cards.list")
    assert [c["id"] for c in cards["cards"]] == ["APP-KEY-42"]
