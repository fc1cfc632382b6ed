"""The Energy page and the daemon's own load history (``energy.history``).

Against a real daemon whose decision log holds the hours before a restart, the chart shows
those hours and the page says where they come from. Against canned answers: the whole day is
read once and then only the newest minutes, a restarted daemon is read in full again, a
failed read is said, and a daemon without the op still gets the older fallback. Snapshots of
the page on the daemon's history at 80x24, 120x40 and on a plain console.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Static

from edgegw.control.client import RemoteError
from edgegw.sim.meter import SimMeter
from edgegw.store.db import Database
from edgegw.store.decisions import DecisionLog
from edgegw.tui.app import CaretakerApp
from edgegw.tui.circuits import tree_rows
from edgegw.tui.energy import EnergyView, daemon_source_text
from edgegw.tui.history import DaemonHistory
from edgegw.tui.model import read_snapshot
from edgegw.tui.text import ASCII, UNICODE
from tests.tui.conftest import Site, text_of, tui_app, until
from tests.tui.fakes import (
    NOW,
    TZ,
    FakeBackend,
    default_answers,
    many_chargers,
    ops_listing,
    site_snapshot,
)
from tests.tui.test_snapshots import make_app, settle

MakeSite = Callable[..., Awaitable[Site]]
HOUR = 3600.0
RESTART = NOW - 3 * HOUR  # the canned daemon restarted at 07:00


# ---------------------------------------------------------------------------- helpers


def energy(app: CaretakerApp) -> EnergyView:
    return app.main.query_one(EnergyView)


def head(app: CaretakerApp) -> str:
    return text_of(app.main.query_one("#energy-head", Static))


def chart_lines(app: CaretakerApp) -> list[str]:
    return text_of(app.main.query_one("#energy-chart", Static)).split("\n")


def bars(line: str) -> str:
    """The columns of one chart row (what is right of the ``|``)."""
    return line.split("|", 1)[1]


def history_ops() -> list[dict[str, Any]]:
    return [
        *ops_listing(),
        {"op": "energy.history", "admin": False, "allowed": True, "description": ""},
    ]


def canned_point(at: float) -> dict[str, Any]:
    """A day on a small site: 6 A of building (10 A in working hours), a car charging at
    16 A in the evening and in the morning; the L3 phase 3 A higher."""
    hour = (at % 86400) / HOUR
    base = 10.0 if 7 <= hour < 19 else 6.0
    ev = 16.0 if 18 <= hour < 22 or 7.5 <= hour < 9.5 else 0.0
    grid = base + ev
    return {
        "at": at,
        "grid_a": [grid, grid, grid + 3],
        "ev_a": [ev, ev, ev],
        "non_ev_a": [base, base, base + 3],
        "source": "live" if at >= RESTART else "decision_log",
    }


def canned_history(
    clock: Callable[[], float] = lambda: NOW, since: Callable[[], float] = lambda: RESTART
) -> Callable[[Mapping[str, Any]], Any]:
    """``energy.history`` as a daemon at ``clock()`` answers it, recording since ``since()``."""

    def answer(args: Mapping[str, Any]) -> Any:
        now = clock()
        minutes = int(args.get("minutes", 1440))
        assert 1 <= minutes <= 1440
        newest = math.floor(now / 60) * 60
        first = now - minutes * 60 - 30
        points = [
            canned_point(newest - 60 * m) for m in range(1439, -1, -1) if newest - 60 * m >= first
        ]
        return {
            "step_s": 60.0,
            "source": "load_capping",
            "recording_since": since(),
            "points": points,
            "count": len(points),
        }

    return answer


def history_backend(**answers: Any) -> FakeBackend:
    return FakeBackend({**default_answers(), **answers}, ops=history_ops())


def history_calls(backend: FakeBackend) -> list[int]:
    return [args["minutes"] for op, args in backend.calls if op == "energy.history"]


def energy_ready(app: CaretakerApp) -> bool:
    table = app.main.query_one("#decision-table", DataTable)
    return energy(app).daemon_history.source is not None and table.row_count == 5


# ----------------------------------------------------------------- against a real daemon


async def previous_run(path: Path, start: float, end: float) -> None:
    """A database whose decision log has a round every 10 s from ``start`` to ``end``: the
    grid at 30 A on L1 with a car drawing 20 A of it (what a daemon before a restart wrote)."""
    db = await Database.open(path)
    log = DecisionLog(db, size=86400)
    at = start
    while at < end:
        inputs = {
            "grid_a": [30.0, 10.0, 10.0],
            "non_ev_a": [10.0, 10.0, 10.0],
            "meter_role": "grid",
            "sessions": [{"charger": "CP1", "connector": 1, "measured_a": [20.0, 0.0, 0.0]}],
        }
        log.record(at, "normal", inputs, {})
        at += 10
    await log.flush()
    await db.close()


async def test_the_chart_shows_the_daemons_history_and_says_where_it_comes_from(
    make_site: MakeSite, meter: SimMeter, tmp_path: Path
) -> None:
    now = time.time()
    store = tmp_path / "restarted.db"
    await previous_run(store, now - 6 * HOUR, now - 1 * HOUR)
    site = await make_site(
        store={"path": str(store)},
        site={"limit_a": 40, "margin_a": 2, "ramp_a_per_s": 100, "control_interval": 0.2},
        buses={"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
        meters=[{"name": "grid", "profile": "eastron-sdm630", "poll_interval": 0.2}],
    )
    app = tui_app(site.socket)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.link_state.value == "up", "connected")
        await pilot.press("5")
        view = energy(app)
        await until(pilot, lambda: view.daemon_history.read_back is not None, "history read")
        await until(pilot, lambda: "max 30 A" in "".join(chart_lines(app)), "the chart drawn")
        text = head(app)
        assert "recorded by edgegw from its load-capping rounds since" in text
        assert "before that, read back from its decision log (edgegw restarted)" in text

        lines = chart_lines(app)
        site_rows = [bars(line) for line in lines[:2]]
        ev_rows = [bars(line) for line in lines[2:4]]
        width = len(site_rows[0])
        assert lines[0].startswith("Site  40 A") and lines[1].startswith("max 30 A")
        assert lines[3].startswith("max 20 A")  # the car the decision log saw
        # The 5 hours read back fill the columns from -6 h to -1 h (30 of 40 A: the bottom
        # row full, the top one half), and nothing is drawn from before them.
        first, last = round(width * 18 / 24) + 1, round(width * 23 / 24) - 1
        assert set(site_rows[1][first:last]) == {"█"}
        assert set(ev_rows[1][first:last]) == {"█"}
        assert site_rows[1][: round(width * 17 / 24)].strip() == ""
        # The minutes recorded live since the daemon started (5 A) are at the right edge.
        assert site_rows[1][-1] != " "

        assert app.ctx.data.history.backfilled_from is None  # the fallback did not run


# ------------------------------------------------------------------ against canned answers


async def test_the_whole_day_is_read_once_then_only_the_newest_minutes() -> None:
    clock = [NOW]
    backend = history_backend(**{"energy.history": canned_history(lambda: clock[0])})
    app = CaretakerApp(backend, clock=lambda: clock[0], tz=TZ, glyphs=UNICODE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle("5", energy_ready)(pilot)
        view = energy(app)
        assert history_calls(backend) == [1440]
        assert len(view.daemon_history.points(NOW)) == 1440

        clock[0] = NOW + 150  # two and a half minutes later
        await pilot.press("g")
        await until(pilot, lambda: len(history_calls(backend)) == 2, "the second read")
        assert history_calls(backend)[1] == 4  # the 3 minutes since, and the one open then
        await until(pilot, lambda: not view._history_reading, "the read merged")
        points = view.daemon_history.points(clock[0])
        assert points[-1].at == NOW + 120  # the newest minute is in
        assert len(points) == 1440  # and the oldest ones have gone out of the day
        assert "since 07:00:00" in head(app)


async def test_a_daemon_that_restarted_is_read_in_full_again() -> None:
    clock = [NOW]
    since = [RESTART]
    backend = history_backend(
        **{"energy.history": canned_history(lambda: clock[0], lambda: since[0])}
    )
    app = CaretakerApp(backend, clock=lambda: clock[0], tz=TZ, glyphs=UNICODE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle("5", energy_ready)(pilot)
        view = energy(app)
        clock[0] = NOW + 60
        since[0] = NOW + 30  # restarted half a minute ago
        await pilot.press("g")
        await until(pilot, lambda: len(history_calls(backend)) == 3, "the read in full")
        assert history_calls(backend) == [1440, 2, 1440]
        await until(pilot, lambda: "since 10:00:30" in head(app), "the new start said")
        assert view.daemon_history.recording_since == NOW + 30


async def test_a_failed_read_is_said_and_the_old_daemon_gets_the_fallback() -> None:
    def broken(args: Mapping[str, Any]) -> Any:
        raise RemoteError("internal", "the load history could not be read")

    backend = history_backend(**{"energy.history": broken})
    app = make_app(backend)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle("5", lambda app: bool(energy(app).daemon_history.error))(pilot)
        assert head(app) == (
            "Load history: not read from edgegw (the load history could not be read); trying again."
        )
        assert app.ctx.data.history.backfilled_from is None

    old = FakeBackend()  # no energy.history: the decision log and the screen's own history
    app = make_app(old)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle("5", lambda app: app.ctx.data.history.backfilled_from is not None)(pilot)
        assert history_calls(old) == []
        assert "This edgegw version keeps no load history" in head(app)


async def test_no_decision_log_is_said_once() -> None:
    """An older daemon's refusal already starts with "no decision log:": not said twice."""

    def refused(args: Mapping[str, Any]) -> Any:
        raise RemoteError("unavailable", "no decision log: load capping is off on this site")

    backend = FakeBackend()
    backend.answers["energy.decisions"] = refused
    app = make_app(backend)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle("5", lambda app: bool(energy(app).decision_note))(pilot)
        assert energy(app).decision_note == "No decision log: load capping is off on this site"


def test_the_source_line_in_words() -> None:
    history = DaemonHistory()
    assert daemon_source_text(history, TZ, NOW) == "Reading the load history from edgegw..."

    answer = canned_history()({"minutes": 1440})
    assert history.take({**answer, "source": "none", "points": []}, NOW, 1440)
    assert daemon_source_text(history, TZ, NOW).startswith("No load history: edgegw records none")

    meter_only = {**answer, "source": "site_meter", "recording_since": NOW - 600}
    meter_only["points"] = [p for p in answer["points"] if p["source"] == "live"]
    assert history.take(meter_only, NOW, 1440)
    assert daemon_source_text(history, TZ, NOW) == (
        "Last 24 h, highest phase, a point a minute, recorded by edgegw from the site meter "
        "and the chargers' own readings since 09:50:00; nothing older (edgegw started then)."
    )

    assert history.take(answer, NOW, 1440)
    assert history.read_back == (NOW - 1439 * 60, RESTART - 60)
    history.failed("timed out")
    assert daemon_source_text(history, TZ, NOW).endswith(
        "since 07:00:00; before that, read back from its decision log (edgegw restarted). "
        "Not updated: timed out."
    )


# ------------------------------------------------------------------------------ snapshots


SNAPSHOTS = {
    "80x24": ((80, 24), UNICODE),
    "120x40": ((120, 40), UNICODE),
    "80x24-ascii": ((80, 24), ASCII),  # a plain Linux console
}


@pytest.mark.parametrize("name", list(SNAPSHOTS))
def test_daemon_history_page(snap_compare: Any, name: str) -> None:
    size, glyphs = SNAPSHOTS[name]
    backend = history_backend(**{"energy.history": canned_history()})
    app = make_app(backend, glyphs=glyphs)
    assert snap_compare(app, terminal_size=size, run_before=settle("5", energy_ready))


# ------------------------------------------------------------------------- circuit tree


def tree_rows_shown(app: CaretakerApp) -> dict[str, list[str]]:
    table = app.main.query_one("#circuit-table", DataTable)
    return {
        str(row.key.value): [str(c) for c in table.get_row(row.key)] for row in table.ordered_rows
    }


async def test_the_circuit_tree_shows_each_boards_limit_allocation_and_headroom(
    make_site: MakeSite, meter: SimMeter
) -> None:
    """A real daemon with a board: the Energy page shows site → board → chargers, the board's
    limit, what the controller allocated under it and the headroom left, per phase."""
    site = await make_site(
        site={"limit_a": 40, "margin_a": 2, "ramp_a_per_s": 100, "control_interval": 0.2},
        buses={"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
        meters=[{"name": "grid", "profile": "eastron-sdm630", "poll_interval": 0.2}],
        circuits=[{"name": "level-1", "limit_a": 20, "margin_a": 1}],
        chargers=[
            {"id": "CP1", "label": "Bay 1", "circuit": "level-1"},
            {"id": "CP2", "label": "Bay 2"},
        ],
    )
    app = tui_app(site.socket)
    cp = await site.charger("CP1")
    try:
        assert await cp.start_transaction(1, "04A1B2C3") is not None
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: app.link_state.value == "up", "connected")
            await pilot.press("5")

            def allocated() -> bool:
                row = tree_rows_shown(app).get("circuit:level-1")
                return row is not None and row[2] not in ("-", "0/0/0")

            await until(pilot, allocated, "the board's allocation shown")
            rows = tree_rows_shown(app)
            assert list(rows) == ["site", "circuit:level-1", "charger:CP1", "charger:CP2"]
            node, limit, given, _load, room = rows["circuit:level-1"]
            assert node == "  level-1" and limit == "20/20/20"
            amps = [float(x) for x in given.split("/")]
            assert 6 <= max(amps) <= 19  # under the board's 20 A - 1 A margin
            assert room.startswith("min ") and float(room.split()[1]) == 19 - max(amps)
            assert rows["charger:CP1"][0] == "    CP1 (Bay 1) [1.6]"
            assert rows["charger:CP2"][0].startswith("  CP2 (Bay 2)")  # on the site itself
            assert rows["site"][1] == "40/40/40"
    finally:
        await cp.close()


def test_the_tree_nests_boards_and_reads_a_board_meter() -> None:
    rows = dict(tree_rows(read_snapshot(site_snapshot())))
    assert list(rows) == [
        "site",
        "circuit:level-1",
        "circuit:level-2",
        "charger:CP3",
        "charger:CP1",
        "charger:CP2",
        "charger:CP4",
    ]
    assert rows["circuit:level-2"][0] == "    level-2"  # below level-1
    assert rows["charger:CP3"][0] == "      CP3 (Bay 3) [1.6]"
    assert rows["charger:CP2"][0] == "    CP2 (Bay 2) [2.0.1]"
    assert rows["circuit:level-1"][3] == "18/17/16 meter"  # its own meter wins
    assert rows["circuit:level-2"][3] == "0/0/0"  # what its chargers draw
    assert rows["site"][4] == "min 0 (6/12/0)"  # the tightest phase first
    assert rows["charger:CP4"][3] == "offline"


async def test_a_site_without_circuits_shows_no_tree() -> None:
    backend = history_backend(**{"energy.history": canned_history()})
    backend.answers["live.snapshot"] = many_chargers(3)
    app = make_app(backend, glyphs=UNICODE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle("5", energy_ready)(pilot)
        assert not app.main.query_one("#circuit-table", DataTable).display
