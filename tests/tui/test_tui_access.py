"""Groups and shares in the caretaker TUI (Cards page, g), with Pilot against a real daemon:
what the page lists, and every change made through its forms reaching the card decisions."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from edgegw.auth.access import Share
from edgegw.control import ControlClient
from edgegw.tui.access import AccessScreen, AccessView
from edgegw.tui.app import CaretakerApp
from edgegw.tui.dialogs import ChoiceDialog, FormDialog
from tests.tui.conftest import Site, text_of, tui_app, until

MakeSite = Callable[..., Awaitable[Site]]
ALICE = "04A1B2C3"
BOB = "E43AC9D2"
CHARGERS = [{"id": "CP1"}, {"id": "CP2"}, {"id": "CP3"}]


async def call(site: Site, op: str, **args: Any) -> Any:
    async with await ControlClient.connect(site.socket) as client:
        return await client.call(op, **args)


def allowed(site: Site, card: str, charger: str) -> bool:
    auth = site.gateway.authorizer
    assert auth is not None
    return auth.decide(charger, card, fmt=auth.charger_format(charger)).accepted


async def open_access(pilot: Pilot[Any], app: CaretakerApp) -> AccessView:
    await until(pilot, lambda: app.link_state.value == "up", "connected")
    await pilot.press("4")
    note = app.main.query_one("#card-note", Static)
    await until(pilot, lambda: "g: groups and shares" in text_of(note), "the way there said")
    await pilot.press("g")
    await until(pilot, lambda: isinstance(app.screen, AccessScreen), "groups and shares")
    screen = app.screen
    assert isinstance(screen, AccessScreen)
    return screen.view


def rows(view: AccessView) -> dict[str, list[str]]:
    table = view.query_one("#access-table", DataTable)
    return {
        str(row.key.value): [str(c) for c in table.get_row(row.key)] for row in table.ordered_rows
    }


async def fill(
    pilot: Pilot[Any], app: CaretakerApp, key: str, values: dict[str, str]
) -> FormDialog:
    """Press ``key``, type ``values`` into the form that opens and press Enter."""
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, FormDialog), f"the form of {key}")
    form = app.screen
    assert isinstance(form, FormDialog)
    for name, value in values.items():
        form.query_one(f"#field-{name}", Input).value = value
    form.query_one(f"#field-{next(iter(values))}", Input).focus()
    await pilot.press("enter")
    return form


async def test_lists_charger_groups_card_groups_with_cards_and_shares_ended_marked(
    make_site: MakeSite,
) -> None:
    site = await make_site(chargers=CHARGERS)
    await call(site, "cards.add", card=ALICE, owner="Alice")
    await call(site, "cards.add", card=BOB, owner="Bob")
    await call(site, "cards.charger_group", name="garage-1", chargers=["CP1", "CP2"])
    await call(site, "cards.group", name="residents", add=[ALICE], charger_groups=["garage-1"])
    await call(
        site, "cards.share", card=BOB, chargers=["CP3"], until="2099-06-01 18:00", note="guest"
    )
    auth = site.gateway.authorizer
    assert auth is not None
    ended_at = time.time() - 3600
    await auth.change_access(
        lambda a: a.with_share(Share(a.next_share_id(), frozenset({"CP1"}), ended_at, card=BOB))
    )
    app = tui_app(site.socket)
    async with app.run_test(size=(110, 30)) as pilot:
        view = await open_access(pilot, app)
        await until(pilot, lambda: len(rows(view)) == 4, "two groups and two shares listed")
        shown = rows(view)
        assert shown["chargers:garage-1"][:3] == ["chargers", "garage-1", "CP1, CP2"]
        assert shown["group:residents"][:4] == [
            "cards",
            "residents",
            f"1 card: {ALICE}",
            "@garage-1",
        ]
        assert shown["share:1"][2].startswith(f"card {BOB}")
        assert shown["share:1"][4] == "2099-06-01 18:00"
        assert shown["share:2"][4].startswith("ENDED ")
        note = text_of(view.query_one("#access-note", Static))
        assert "1 charger group, 1 card group, 2 shares (1 ended)" in note

        view.select("group:residents")
        details = view.query_one("#access-details", Static)
        await until(pilot, lambda: "Alice" in text_of(details), "the group in full")
        assert text_of(details) == f"Card group residents, on @garage-1: {ALICE} (Alice)."

        view.select("share:1")
        await until(pilot, lambda: "Share #1" in text_of(details), "the share in full")
        assert (
            text_of(details) == f"Share #1: card {BOB} (Bob) on CP3 until 2099-06-01 18:00 (guest)."
        )

        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main, "back to the cards")


async def test_card_group_made_and_edited_in_forms_restricts_its_cards(make_site: MakeSite) -> None:
    site = await make_site(chargers=CHARGERS)
    await call(site, "cards.add", card=ALICE, owner="Alice")
    await call(site, "cards.add", card=BOB, owner="Bob")
    app = tui_app(site.socket)
    async with app.run_test(size=(110, 34)) as pilot:
        view = await open_access(pilot, app)
        await fill(pilot, app, "c", {"name": "garage-1", "chargers": "CP1, CP2"})
        await until(
            pilot,
            lambda: app.screen is not None and not isinstance(app.screen, FormDialog),
            "saved",
        )
        await until(pilot, lambda: "chargers:garage-1" in rows(view), "the charger group listed")

        await fill(
            pilot,
            app,
            "n",
            {"name": "residents", "cards": f"{ALICE}, {BOB}", "chargers": "@garage-1"},
        )
        await until(pilot, lambda: "group:residents" in rows(view), "the card group listed")
        assert isinstance(app.screen, AccessScreen)
        assert allowed(site, ALICE, "CP2") and not allowed(site, ALICE, "CP3")
        assert not allowed(site, BOB, "CP3")

        # Edit: Bob leaves the group (so works everywhere again), the group moves to CP3.
        view.select("group:residents")
        form = await fill(pilot, app, "e", {"cards": ALICE.lower(), "chargers": "CP3"})
        await until(pilot, lambda: app.screen is not form, "saved")
        await until(pilot, lambda: rows(view)["group:residents"][3] == "CP3", "the edit shown")
    groups = await call(site, "cards.groups")
    (group,) = groups["card_groups"]
    assert group["cards"] == [f"{ALICE} (Alice)"] and group["chargers"] == ["CP3"]
    assert allowed(site, ALICE, "CP3") and not allowed(site, ALICE, "CP1")
    assert allowed(site, BOB, "CP1")


async def test_allow_a_card_on_a_charger_group(make_site: MakeSite) -> None:
    site = await make_site(chargers=CHARGERS)
    await call(site, "cards.add", card=ALICE, owner="Alice")
    await call(site, "cards.charger_group", name="private", chargers=["CP2"])
    app = tui_app(site.socket)
    async with app.run_test(size=(110, 34)) as pilot:
        await open_access(pilot, app)
        form = await fill(pilot, app, "a", {"card": ALICE, "chargers": "@private"})
        await until(pilot, lambda: app.screen is not form, "saved")
    assert allowed(site, ALICE, "CP2") and not allowed(site, ALICE, "CP1")
    (card,) = (await call(site, "cards.list"))["cards"]
    assert card["chargers"] == ["@private"]


async def test_share_until_a_time_then_end_it(make_site: MakeSite) -> None:
    site = await make_site(chargers=CHARGERS)
    await call(site, "cards.add", card=BOB, owner="Bob", chargers=["CP1"])
    assert not allowed(site, BOB, "CP2")
    app = tui_app(site.socket)
    async with app.run_test(size=(110, 34)) as pilot:
        view = await open_access(pilot, app)
        typed = {
            "card": BOB,
            "group": "",
            "chargers": "CP2",
            "until": "2020-01-01 18:00",
            "note": "guest",
        }
        form = await fill(pilot, app, "s", typed)
        error = form.query_one("#form-error", Static)
        await until(pilot, lambda: bool(error.display), "a past time refused")
        assert "already past" in text_of(error)
        assert app.screen is form and form.values() == typed  # nothing typed is lost
        assert form.query_one("#field-until", Input).has_focus  # the field at fault
        assert not allowed(site, BOB, "CP2")

        form.query_one("#field-until", Input).value = "2099-06-01 18:00"
        form.query_one("#field-until", Input).focus()
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is not form, "shared")
        await until(pilot, lambda: "share:1" in rows(view), "the share listed")
        assert rows(view)["share:1"][4] == "2099-06-01 18:00"
        assert allowed(site, BOB, "CP2")

        view.select("share:1")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ChoiceDialog), "asked first")
        dialog = app.screen
        assert isinstance(dialog, ChoiceDialog) and "End share #1" in dialog.title_text
        await pilot.press("y")
        await until(pilot, lambda: "share:1" not in rows(view), "the share gone")
    assert not allowed(site, BOB, "CP2")
    assert (await call(site, "cards.groups"))["shares"] == []


async def test_read_only_lists_but_offers_no_change(make_site: MakeSite) -> None:
    site = await make_site(chargers=CHARGERS)
    await call(site, "cards.charger_group", name="garage-1", chargers=["CP1"])
    app = tui_app(site.socket, read_only=True)
    async with app.run_test(size=(110, 30)) as pilot:
        view = await open_access(pilot, app)
        await until(pilot, lambda: "chargers:garage-1" in rows(view), "listed")
        bound = {k for k, b in app.screen.active_bindings.items() if b.enabled}
        assert not {"n", "c", "e", "a", "s", "d"} & bound
        await pilot.press("n", "c", "s", "d")
        await pilot.pause()
        assert isinstance(app.screen, AccessScreen)
