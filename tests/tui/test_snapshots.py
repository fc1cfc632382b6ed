"""Snapshots of the main screens at 80x24 and 120x40 on a fixed site at a fixed time.

Update them after a deliberate change with ``pytest tests/tui/test_snapshots.py
--snapshot-update`` and look at the report (``snapshot_report.html``) before committing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from edgegw.tui.app import CaretakerApp
from edgegw.tui.dialogs import ChoiceDialog
from edgegw.tui.picker import ChargerPicker
from edgegw.tui.text import ASCII, UNICODE, Glyphs
from tests.tui.conftest import until
from tests.tui.fakes import NOW, TZ, FakeBackend

SIZES = {"80x24": (80, 24), "120x40": (120, 40)}
DOWN = (
    "edgegw is not running (no control socket at /run/edgegw/control.sock); "
    "start it with `systemctl start edgegw`"
)


def make_app(
    backend: FakeBackend | None = None, glyphs: Glyphs = UNICODE, **kwargs: Any
) -> CaretakerApp:
    return CaretakerApp(backend or FakeBackend(), clock=lambda: NOW, tz=TZ, glyphs=glyphs, **kwargs)


def rows(table_id: str, count: int) -> Callable[[CaretakerApp], bool]:
    return lambda app: app.main.query_one(table_id, DataTable).row_count == count


def energy_ready(app: CaretakerApp) -> bool:
    history = app.ctx.data.history
    return history.backfilled_from is not None and rows("#decision-table", 5)(app)


PAGES: dict[str, tuple[str, Callable[[CaretakerApp], bool]]] = {
    "dashboard": ("1", lambda app: app.ctx.data.snapshot is not None),
    "chargers": ("2", rows("#charger-table", 4)),
    "sessions": ("3", rows("#session-table", 4)),
    "cards": ("4", rows("#card-table", 3)),
    "energy": ("5", energy_ready),
    "events": ("6", rows("#event-table", 6)),
}


def settle(key: str, ready: Callable[[CaretakerApp], bool]) -> Callable[[Pilot[Any]], Any]:
    async def run(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, CaretakerApp)
        await until(pilot, lambda: app.ctx.data.snapshot is not None, "the first snapshot")
        await pilot.press(key)
        await until(pilot, lambda: ready(app), f"page {key} loaded")
        await pilot.pause()

    return run


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("page", list(PAGES))
def test_page(snap_compare: Any, page: str, size: str) -> None:
    key, ready = PAGES[page]
    assert snap_compare(make_app(), terminal_size=SIZES[size], run_before=settle(key, ready))


@pytest.mark.parametrize("size", list(SIZES))
def test_not_running(snap_compare: Any, size: str) -> None:
    app = make_app(FakeBackend(up=False, problem=DOWN))
    assert snap_compare(app, terminal_size=SIZES[size])


def test_stop_session_confirmation(snap_compare: Any) -> None:
    async def ask(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, CaretakerApp)
        await settle("2", rows("#charger-table", 4))(pilot)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ChoiceDialog), "the question")

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=ask)


def test_linux_console_ascii_read_only(snap_compare: Any) -> None:
    app = make_app(glyphs=ASCII, read_only=True)
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle("1", PAGES["dashboard"][1]))


def test_charger_picker_among_300(snap_compare: Any) -> None:
    """Tap to add on a site of 300 chargers: a filter box over a list, narrowed by typing."""
    from tests.tui.test_charger_picker import many_chargers

    backend = FakeBackend()
    backend.answers["live.snapshot"] = many_chargers(300)

    async def pick(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, CaretakerApp)
        await settle("4", rows("#card-table", 3))(pilot)
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ChargerPicker), "the picker")
        await pilot.press("b", "a", "y", "space", "1", "down")
        await pilot.pause()

    assert snap_compare(make_app(backend), terminal_size=(80, 24), run_before=pick)
