"""The event journal: batched writes, a bounded table, live events in words, filters, and
``edgegw events`` (listing, filters, --follow) through a real control socket."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, cast

from typer.testing import CliRunner

from edgegw.cli.main import app
from edgegw.cli.status import _follow, parse_since
from edgegw.config import parse_config
from edgegw.control.ops import GatewayOps
from edgegw.control.server import ControlServer
from edgegw.livestate import EventKind, LiveChange, LiveEvent, Scope
from edgegw.sim.charger import SimCharger
from edgegw.store.journal import WRITE_AT, EventFilter, Journal, read_events
from edgegw.store.store import Store
from edgegw.tasks import TaskOwner
from tests.conftest import GatewayFactory, gateway_url

runner = CliRunner()


async def count_rows(store: Store) -> int:
    rows = await store.db.conn.execute_fetchall("SELECT COUNT(*) FROM events")
    return int(next(iter(rows))[0])


def live(
    kind: EventKind, charger: str | None = "CP1", connector: int | None = 1, **data: Any
) -> LiveChange:
    return LiveChange(Scope.EVENT, charger, LiveEvent(kind, 1_000.0, charger, connector, data))


async def test_entries_are_written_in_one_batch_and_the_table_stays_bounded(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "gw.db")
    try:
        journal = Journal(store.db, keep=50)
        for i in range(120):
            journal.record("charger_connected", f"connected {i}", charger_id="CP1")
        # Nothing is on disk yet, but readers see everything.
        assert await count_rows(store) == 0
        newest = await journal.read(3)
        assert [e.message for e in newest] == ["connected 119", "connected 118", "connected 117"]
        await journal.flush()
        assert journal.writes == 1 and journal.pending() == []
        assert await count_rows(store) == 50  # the newest 50 kept
        again = await journal.read(2)
        assert [e.message for e in again] == ["connected 119", "connected 118"]
        assert all(e.id is not None for e in again)
        await journal.flush()  # nothing new: no write
        assert journal.writes == 1
    finally:
        await store.close()


async def test_live_events_become_sentences_and_survive_a_restart(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "gw.db")
    journal = Journal(store.db)
    journal.live_listener(
        live(EventKind.SESSION_STARTED, id_tag="04A1B2C3", owner="Ana", transaction_id=7)
    )
    journal.live_listener(
        live(
            EventKind.CARD_REFUSED,
            id_tag="DEADBEEF",
            status="Blocked",
            during="Authorize",
            connector=None,
        )
    )
    journal.live_listener(
        live(
            EventKind.SESSION_STOPPED, energy_wh=12_345.0, duration_s=3_900, reason="EVDisconnected"
        )
    )
    journal.live_listener(live(EventKind.METER_LOST, None, None, meter="grid", reason="timeout"))
    journal.live_listener(
        live(
            EventKind.LIMIT_CHANGED, None, None, limit_a=[20, 20, 20], previous_limit_a=[32, 32, 32]
        )
    )
    journal.live_listener(LiveChange(Scope.CHARGER, "CP1"))  # not an event: nothing recorded
    await journal.close()
    await store.close()

    store = await Store.open(tmp_path / "gw.db")
    try:
        found = await read_events(store.db, 100)
        words = {e.kind: e.message for e in found}
        assert words["session_started"] == (
            "session started on connector 1 with card 04A1B2C3 (Ana) (transaction 7)"
        )
        assert words["card_refused"] == "card DEADBEEF refused (Blocked) at Authorize"
        assert words["session_stopped"] == (
            "session stopped on connector 1, 12.35 kWh, 1 h 5 min, reason EVDisconnected"
        )
        assert words["meter_lost"].startswith("meter grid lost: timeout")
        assert words["limit_changed"] == "site limit 32 A -> 20 A"
        assert len(found) == 5
        sessions = await read_events(store.db, 100, EventFilter(kinds=("session",)))
        assert {e.kind for e in sessions} == {"session_started", "session_stopped"}
        # A kind prefix matches whole words only, and '_' in a kind is not a LIKE wildcard.
        assert await read_events(store.db, 100, EventFilter(kinds=("sess",))) == []
        assert len(await read_events(store.db, 100, EventFilter(charger_id="CP1"))) == 3
    finally:
        await store.close()


def test_since_takes_durations_and_dates() -> None:
    assert parse_since("30m", 10_000.0) == 10_000.0 - 1800
    assert parse_since("2h", 10_000.0) == 10_000.0 - 7200
    assert parse_since("2026-01-01T00:00:00+00:00", 0) == 1767225600.0


async def test_events_command_filters_and_follow_sees_new_entries(tmp_path: Path) -> None:
    socket = tmp_path / "gw.sock"
    config = parse_config(
        {
            "store": {"path": str(tmp_path / "gw.db")},
            "control": {"socket": str(socket), "group": None},
        }
    )
    site_file = tmp_path / "site.toml"
    site_file.write_text(
        f'[store]\npath = "{tmp_path / "gw.db"}"\n[control]\nsocket = "{socket}"\ngroup = ""\n'
    )
    store = await Store.open(tmp_path / "gw.db")
    journal = Journal(store.db)
    server = ControlServer(socket)
    GatewayOps(store, lambda: config, {}, journal=journal).register(server)
    await server.start()
    try:
        journal.live_listener(live(EventKind.SESSION_STARTED, id_tag="04A1B2C3"))
        journal.record("charger.max_current", "maximum current lowered to 10 A", charger_id="CP2")
        await journal.flush()
        journal.live_listener(
            live(EventKind.CARD_REFUSED, "CP2", None, id_tag="AA", status="Invalid")
        )

        def events(*args: str) -> dict[str, Any]:
            result = runner.invoke(app, ["events", *args, "--json", "--config", str(site_file)])
            assert result.exit_code == 0, result.output
            return cast(dict[str, Any], json.loads(result.stdout))

        everything = await asyncio.to_thread(events)
        assert [e["kind"] for e in everything["events"]] == [
            "card_refused",
            "charger.max_current",
            "session_started",
        ]
        only_cp2 = await asyncio.to_thread(events, "--charger", "CP2", "--kind", "card")
        assert [e["kind"] for e in only_cp2["events"]] == ["card_refused"]

        lines: list[str] = []
        shown = asyncio.Event()
        arrived = asyncio.Event()

        def out(line: str) -> None:
            lines.append(line)
            if len(lines) == 2:
                shown.set()
            if "meter grid lost" in line:
                arrived.set()

        tasks = TaskOwner("test")
        tasks.spawn(_follow(socket, {"limit": 2}, EventFilter(kinds=("meter",)), False, out), "f")
        # The follower subscribes, then shows the newest two (oldest first), then follows.
        async with asyncio.timeout(10):
            await shown.wait()
            journal.live_listener(live(EventKind.SESSION_STOPPED))  # filtered out
            journal.live_listener(live(EventKind.METER_LOST, None, None, meter="grid"))
            await arrived.wait()
        await tasks.close()
        assert len(lines) == 3, lines
        assert "maximum current lowered" in lines[0] and "card AA refused" in lines[1]
        assert "meter grid lost" in lines[2]
    finally:
        await server.close()
        await journal.close()
        await store.close()


async def test_a_real_gateway_s_live_events_reach_the_journal_and_survive(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(auth={"unknown_cards": "accept"})
    assert gateway.store is not None and gateway.live is not None
    journal = getattr(gateway, "journal", None)
    if not isinstance(journal, Journal):  # until the daemon makes its own
        journal = Journal(gateway.store.db)
        gateway.live.on_change(journal.live_listener)
    async with SimCharger("CP1", gateway_url(gateway)) as cp1:
        await cp1.boot()
        await cp1.start_transaction(1, "04A1B2C3")
        await cp1.stop_transaction(1)
    await journal.flush()
    found = await read_events(gateway.store.db, 100, EventFilter(kinds=("session",)))
    assert [e.kind for e in found] == ["session_stopped", "session_started"]
    assert found[1].message.startswith("session started on connector 1 with card 04A1B2C3")
    assert all(e.charger_id == "CP1" for e in found)
    connects = await read_events(gateway.store.db, 100, EventFilter(kinds=("charger",)))
    assert {e.kind for e in connects} >= {"charger_connected"}


async def test_closing_writes_the_last_batch_once(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "gw.db")
    try:
        journal = Journal(store.db, flush_interval=3600)  # only the stop writes
        journal.start()
        journal.record("charger_connected", "connected", charger_id="CP1")
        journal.record("charger_disconnected", "disconnected", charger_id="CP1")
        await journal.close()
        assert journal.writes == 1 and journal.pending() == []
        assert await count_rows(store) == 2
    finally:
        await store.close()


async def test_a_burst_is_written_before_the_interval_and_nothing_is_dropped(
    tmp_path: Path,
) -> None:
    """A whole site connecting at start records thousands of entries at once."""
    store = await Store.open(tmp_path / "gw.db")
    journal = Journal(store.db, flush_interval=3600)  # the interval alone would never write
    journal.start()
    try:
        for i in range(3 * WRITE_AT):
            journal.record("charger_connected", f"connected {i}", charger_id=f"CP{i}")
        async with asyncio.timeout(10):
            while journal.writes == 0:  # noqa: ASYNC110 - the writer runs on its own
                await asyncio.sleep(0.01)
    finally:
        await journal.close()
        await store.close()
    store = await Store.open(tmp_path / "gw.db")
    try:
        assert await count_rows(store) == 3 * WRITE_AT
    finally:
        await store.close()
