"""The Chargers page shows a 2.0.1 station as well as a 1.6 charger: its OCPP version in the
table, its EVSEs' statuses and its session in the details; its actions are sent in 2.0.1 form.
A real daemon relaying to a CSMS written on the ``ocpp`` library's v201 package, a simulated
2.0.1 station over real sockets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual.widgets import DataTable, Static

from edgegw.sim.charger201 import SimCharger201
from edgegw.tui.chargers import ChargersView
from edgegw.tui.dialogs import ChoiceDialog
from tests.conftest import gateway_url
from tests.tui.conftest import Site, text_of, tui_app, until
from tests.v201.test_relay201 import CHARGERS, Cloud201, cloud201  # noqa: F401

MakeSite = Callable[..., Awaitable[Site]]


async def test_a_201_station_shows_its_version_evses_and_session(
    cloud201: Cloud201,  # noqa: F811
    make_site: MakeSite,
) -> None:
    site = await make_site(cloud_url=cloud201.url, chargers=CHARGERS)
    app = tui_app(site.socket)
    async with SimCharger201("CS201", gateway_url(site.gateway)) as cs:
        await cs.boot()
        await cs.status(1, "Occupied")
        tx, _ = await cs.start(1, "04A1B2C3")
        await cs.meter(1, 16.0, 1200.0)
        async with app.run_test(size=(110, 30)) as pilot:
            await until(pilot, lambda: app.link_state.value == "up", "connected")
            await pilot.press("2")
            chargers = app.main.query_one(ChargersView)
            await until(pilot, lambda: chargers.selected() is not None, "a charger selected")
            table = app.main.query_one("#charger-table", DataTable)
            await until(
                pilot,
                lambda: str(table.get_cell("CS201", "ocpp")) == "2.0.1",
                "CS201's version in the table",
            )
            assert str(table.get_cell("CS201B", "ocpp")) == "-"  # never connected
            table.move_cursor(row=table.get_row_index("CS201"))
            details = app.main.query_one("#charger-text", Static)
            await until(pilot, lambda: "EVSE 1: CHARGING" in text_of(details), "EVSE 1 shown")
            text = text_of(details)
            assert "OCPP 2.0.1" in text and "Connector 1" not in text
            assert "session: 04A1B2C3" in text and "16.0 A" in text
            assert "Actions: s stop session" in text and "1.6 calls" not in text
            await pilot.press("s")  # stop: RequestStopTransaction with its own string id
            await until(pilot, lambda: isinstance(app.screen, ChoiceDialog), "asked first")
            await pilot.press("y")
            await until(
                pilot,
                lambda: (
                    ("RequestStopTransaction", {"transactionId": tx.transaction_id})
                    in cs.calls_received
                ),
                "the station asked to stop its transaction",
            )
