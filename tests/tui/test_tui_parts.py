"""The TUI's pure parts (text, alerts, the model, the history) and its daemon link."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from edgegw.tasks import TaskOwner
from edgegw.tui.alerts import site_alerts
from edgegw.tui.dashboard import summary_lines
from edgegw.tui.energy import decision_point
from edgegw.tui.events import live_event_text
from edgegw.tui.history import LoadHistory
from edgegw.tui.link import DaemonLink, LinkState, NotConnected, OpUnavailable
from edgegw.tui.model import SnapshotMismatch, read_snapshot
from edgegw.tui.text import (
    ASCII,
    UNICODE,
    bar,
    chart,
    glyphs_for,
    per_phase_amps,
    resample,
    sparkline,
)
from tests.conftest import GatewayFactory
from tests.tui.fakes import NOW, live_events, site_snapshot


def test_glyphs_are_ascii_on_the_linux_console() -> None:
    assert glyphs_for({"TERM": "linux", "LANG": "en_US.UTF-8"}) is ASCII
    assert glyphs_for({"TERM": "xterm-256color", "LANG": "C"}) is ASCII
    assert glyphs_for({"TERM": "xterm-256color", "LANG": "en_GB.UTF-8"}) is UNICODE
    assert glyphs_for({"TERM": "xterm"}, force_ascii=True) is ASCII
    assert ASCII.ascii and not UNICODE.ascii


def test_bars_and_sparklines_say_it_without_colour() -> None:
    assert bar(16, 32, 10, ASCII) == "#####-----"
    assert bar(40, 32, 4, ASCII) == "!!!!"  # over the limit: the whole bar changes
    assert bar(None, 32, 3, ASCII) == "---"
    line = sparkline([0, 16, 32, None], 6, 32, ASCII)
    assert len(line) == 6 and line.endswith(" ") and line[-2] == "#"
    assert all(ord(c) < 128 for c in line)
    assert resample([(0, 1.0), (4, 3.0), (9, 2.0), (10, 7.0)], 0, 10, 2) == [3.0, 7.0]
    rows = chart([32.0, 16.0, None], 2, 32.0, ASCII)
    assert rows == ["#  ", "## "]


def test_alerts_name_the_problem_and_the_place() -> None:
    snapshot = read_snapshot(site_snapshot())
    texts = [a.text for a in site_alerts(snapshot, live_events(), NOW)]
    assert texts[0] == "! Site load above the limit on L3"
    assert "! CP3 fault: connector 1: GroundFailure" in texts
    assert "! CP3 draws more than its load-capping limit" in texts
    assert "! 1 message refused by the cloud and parked (see Events)" in texts
    assert "! Card DEADBEEF refused 3 times at CP2 in 10 min" in texts
    assert all(t.startswith("! ") for t in texts)
    later = [a.text for a in site_alerts(snapshot, live_events(), NOW + 3600)]
    assert not any("refused 3 times" in t for t in later)


def test_a_snapshot_of_another_shape_is_refused_in_words() -> None:
    """The TUI reads the daemon's snapshot with the daemon's own definition: anything else is
    a version mismatch, said once, never half-shown."""
    junks: list[tuple[Any, str]] = [
        (None, "snapshot: expected an object, got null"),
        ([], "snapshot: expected an object, got list"),
        (
            {"site": {}, "chargers": [], "circuits": [], "limits": [], "peak": None},
            "snapshot.site: missing at, limit_a",
        ),
        ({**site_snapshot(), "extra": 1}, "snapshot: unknown extra"),
    ]
    for junk, words in junks:
        with pytest.raises(SnapshotMismatch) as caught:
            read_snapshot(junk)
        assert str(caught.value).startswith(words)
    data = site_snapshot()
    data["chargers"][0]["current_a"] = [1, "2", None]
    with pytest.raises(SnapshotMismatch, match=r"chargers\[0\]\.current_a"):
        read_snapshot(data)
    data = site_snapshot()
    data["chargers"][0]["connectors"][0]["session"]["transaction_id"] = "a1b2"
    assert read_snapshot(data).chargers[0].sessions[0][1].transaction_id == "a1b2"
    del data["site"]["links"]
    with pytest.raises(SnapshotMismatch, match=r"snapshot\.site: missing links"):
        read_snapshot(data)


def test_history_keeps_the_highest_of_each_minute_for_a_day() -> None:
    history = LoadHistory()
    history.add(NOW, (10.0, None, 2.0), None)
    history.add(NOW + 30, (8.0, 5.0, 1.0), (6.0, 6.0, 6.0))
    history.add(NOW + 90, (1.0, 1.0, 1.0), None)
    points = history.points(NOW + 90)
    assert [p.grid_a for p in points] == [(10.0, 5.0, 2.0), (1.0, 1.0, 1.0)]
    assert points[0].ev_a == (6.0, 6.0, 6.0)
    added = history.backfill(
        [p for p in [decision_point({"at": NOW - 7200, "inputs": {"grid_a": [3, 3, 3]}})] if p],
        NOW + 90,
    )
    assert added == 1 and history.backfilled_from == NOW - 7200
    assert len(history.points(NOW + 86430)) == 1  # a day later only the newest minute is left


async def test_link_reports_a_missing_daemon_and_keeps_trying(tmp_path: Path) -> None:
    link = DaemonLink(tmp_path / "none.sock", retry_interval=0.01)
    seen: list[tuple[LinkState, str]] = []
    three = asyncio.Event()

    class Listener:
        def link_changed(self, state: LinkState, problem: str) -> None:
            seen.append((state, problem))
            if len(seen) >= 3:
                three.set()

        def link_event(self, topic: str, data: Any) -> None:
            raise AssertionError("no events without a daemon")

    tasks = TaskOwner("test")
    tasks.spawn(link.run(Listener()), "link")
    try:
        async with asyncio.timeout(5):
            await three.wait()
    finally:
        await tasks.close()
    assert {state for state, _ in seen} == {LinkState.DOWN}
    assert "edgegw is not running" in seen[0][1] and "systemctl start edgegw" in seen[0][1]
    assert link.attempts >= 3
    with pytest.raises(NotConnected):
        await link.call("status")


async def test_link_knows_which_ops_the_daemon_has(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway()
    link = DaemonLink(gateway.config.control.socket)
    up = asyncio.Event()

    class Listener:
        def link_changed(self, state: LinkState, problem: str) -> None:
            if state is LinkState.UP:
                up.set()

        def link_event(self, topic: str, data: Any) -> None:
            pass

    tasks = TaskOwner("test")
    tasks.spawn(link.run(Listener()), "link")
    try:
        async with asyncio.timeout(5):
            await up.wait()
        assert link.has("sync.status") and link.allowed("sync.retry") and link.admin
        assert not link.has("no.such.op")
        with pytest.raises(OpUnavailable, match="not available in this daemon version"):
            await link.call("no.such.op")
        assert (await link.call("status"))["version"]
    finally:
        await tasks.close()


async def test_a_socket_that_does_not_speak_the_protocol_is_unreachable(tmp_path: Path) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 what\r\n\r\n")
        await writer.drain()
        await reader.read()
        writer.close()

    path = tmp_path / "odd.sock"
    server = await asyncio.start_unix_server(garbage, str(path))
    link = DaemonLink(path, retry_interval=5)
    told: asyncio.Queue[tuple[LinkState, str]] = asyncio.Queue()

    class Listener:
        def link_changed(self, state: LinkState, problem: str) -> None:
            told.put_nowait((state, problem))

        def link_event(self, topic: str, data: Any) -> None:
            pass

    tasks = TaskOwner("test")
    tasks.spawn(link.run(Listener()), "link")
    try:
        async with asyncio.timeout(5):
            state, problem = await told.get()
    finally:
        await tasks.close()
        server.close()
    assert state is LinkState.UNREACHABLE and "refused this screen" in problem


def test_limits_and_counts_read_as_words_not_python() -> None:
    """Issue 21 item 16: no "limit none A", no Python lists, no "1 entries"."""
    assert per_phase_amps([32.0, 32.0, 32.0]) == "32 A"
    assert per_phase_amps((32.0, 32.0, 25.0)) == "32/32/25 A"
    assert per_phase_amps(None) == "none"
    assert per_phase_amps(16) == "16 A"
    text = live_event_text(
        {"event": "limit_changed", "limit_a": [20.0, 20.0, 20.0], "previous_limit_a": [32, 32, 32]}
    )
    assert text == "Site limit now 20 A (was 32 A)"
    snapshot = read_snapshot(site_snapshot())
    line = summary_lines(snapshot.site, NOW, None)
    assert "| limit 32 A |" in line[0] and "1 session |" in line[2]
    data = site_snapshot()
    data["site"]["limit_a"] = None
    uncapped = read_snapshot(data)
    assert "| no limit |" in summary_lines(uncapped.site, NOW, None)[0]
