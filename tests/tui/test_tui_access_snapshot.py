"""Snapshots of the groups-and-shares screen (Cards page, g) on a fixed site at a fixed time.

Update after a deliberate change with ``pytest tests/tui/test_tui_access_snapshot.py
--snapshot-update`` and look at the report before committing.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from edgegw.tui.access import AccessScreen
from edgegw.tui.app import CaretakerApp
from edgegw.tui.text import ASCII, UNICODE
from tests.tui.conftest import until
from tests.tui.fakes import NOW, TZ, FakeBackend, ops_listing

GROUPS = {
    "charger_groups": {"garage-1": ["CP1", "CP2"], "visitors": ["CP4"]},
    "card_groups": [
        {
            "name": "residents",
            "chargers": ["@garage-1"],
            "cards": ["04A1B2C3 (Alice Martin, white fob)", "04D5E6F7A8B9C0 (Bob Janssens)"],
        },
        {"name": "staff", "chargers": None, "cards": []},
    ],
    "shares": [
        {
            "id": 3,
            "card": "DEADBEEF (Guest of flat 12)",
            "group": None,
            "chargers": ["@visitors"],
            "until": "2026-01-04T17:00:00Z",
            "active": True,
            "note": "weekend",
        },
        {
            "id": 2,
            "card": None,
            "group": "staff",
            "chargers": ["CP3"],
            "until": "2025-12-31T18:00:00Z",
            "active": False,
            "note": "",
        },
    ],
}


def backend() -> FakeBackend:
    ops = ops_listing()
    ops += [
        {"op": "cards.groups", "admin": False, "allowed": True, "description": ""},
        *(
            {"op": op, "admin": True, "allowed": True, "description": ""}
            for op in ("cards.group", "cards.charger_group", "cards.share", "cards.unshare")
        ),
    ]
    fake = FakeBackend(ops=ops)
    fake.answers["cards.groups"] = GROUPS
    return fake


async def show_groups(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, CaretakerApp)
    await until(pilot, lambda: app.ctx.data.snapshot is not None, "the first snapshot")
    await pilot.press("4")
    await until(pilot, lambda: app.main.query_one("#card-table", DataTable).row_count == 3, "cards")
    await pilot.press("g")
    await until(pilot, lambda: isinstance(app.screen, AccessScreen), "groups and shares")
    screen = app.screen
    assert isinstance(screen, AccessScreen)
    table = screen.query_one("#access-table", DataTable)
    await until(pilot, lambda: table.row_count == 6, "every row")
    await pilot.press("down", "down")  # the residents group, shown in full below
    await pilot.pause()


@pytest.mark.parametrize(
    ("size", "ascii"), [((80, 24), False), ((120, 40), False), ((80, 24), True)]
)
def test_groups_and_shares(snap_compare: Any, size: tuple[int, int], ascii: bool) -> None:
    app = CaretakerApp(backend(), clock=lambda: NOW, tz=TZ, glyphs=ASCII if ascii else UNICODE)
    assert snap_compare(app, terminal_size=size, run_before=show_groups)
