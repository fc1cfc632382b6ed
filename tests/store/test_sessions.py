"""Session queries and the monthly report over a real store written the way the daemon writes."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from edgegw.auth.idtags import IdTagFormat, parse_card_id, render
from edgegw.auth.locallist import Card
from edgegw.config import Config, parse_config
from edgegw.store.cards import CardStore
from edgegw.store.db import StoreError
from edgegw.store.outbox import LOCAL_ID_BASE
from edgegw.store.schema import MIGRATIONS
from edgegw.store.sessions import (
    CardResolver,
    Month,
    Session,
    SessionFilter,
    SessionMode,
    SessionQueries,
    SessionState,
    open_read_only,
    parse_time,
)
from edgegw.store.store import Store

ALICE = parse_card_id("E43AC9D2")  # owner Flat 1
ALICE2 = parse_card_id("04A1B2C3D4E5F6")  # Flat 1's second card
BOB = parse_card_id("11223344")  # owner Flat 2
NOW = parse_time("2026-03-01T00:00:00Z")


def ts(text: str) -> float:
    return parse_time(text)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return parse_config(
        {
            "store": {"path": str(tmp_path / "gw.db")},
            "chargers": [{"id": "CP1", "idtag_format": "dec_le"}, {"id": "CP2"}, {"id": "CP3"}],
        }
    )


@pytest.fixture
async def store(config: Config) -> AsyncIterator[Store]:
    store = await Store.open(config.store.path, clock=lambda: NOW)
    cards = CardStore(store.db)
    await cards.save_cards(
        [
            Card(ALICE, owner="Flat 1", label="blue fob"),
            Card(ALICE2, owner="Flat 1", label="car key"),
            Card(BOB, owner="Flat 2"),
        ]
    )
    # CP2 is set to auto and was seen reporting cards byte-reversed.
    await cards.set_detected_format("CP2", IdTagFormat.HEX_REVERSED, NOW)
    try:
        yield store
    finally:
        await store.close()


async def start(
    store: Store,
    charger: str,
    tx: int | None,
    tag: str,
    at: str,
    *,
    meter: int = 0,
    connector: int = 1,
    origin: str = "gateway",
) -> None:
    payload = {"connectorId": connector, "idTag": tag, "meterStart": meter, "timestamp": at}
    await store.transaction_started(charger, payload, tx, origin=origin)


async def stop(store: Store, charger: str, tx: int, at: str, meter: int) -> None:
    payload = {"transactionId": tx, "meterStop": meter, "timestamp": at, "reason": "Local"}
    assert await store.transaction_stopped(charger, payload)


async def read(config: Config, where: SessionFilter | None = None) -> list[Session]:
    async with open_read_only(config.store.path) as conn:
        queries = SessionQueries(conn, await CardResolver.load(conn, config))
        return await queries.sessions(where)


async def test_modes_ids_energy_and_cards_in_every_charger_format(
    store: Store, config: Config
) -> None:
    # Standalone: the gateway numbers sessions; CP1 writes cards as little-endian decimal.
    await start(
        store, "CP1", 1, render(ALICE, IdTagFormat.DEC_LE), "2026-01-05T08:00:00Z", meter=1000
    )
    await stop(store, "CP1", 1, "2026-01-05T10:30:00Z", 8500)
    # Relayed: the cloud's id; CP2 (auto, detected byte-reversed) reports Alice reversed.
    await start(
        store, "CP2", 345, "D2C93AE4", "2026-01-06T18:00:00+01:00", meter=200, origin="cloud"
    )
    await stop(store, "CP2", 345, "2026-01-06T19:00:00+01:00", 2200)
    # Started while the cloud was away: local id, mapped to the cloud's once delivered.
    payload = {"connectorId": 1, "idTag": "DEADBEEF", "meterStart": 0, "timestamp": "2026-01-07"}
    message, local = await store.outbox.enqueue_start("CP3", payload)
    assert message is not None and local >= LOCAL_ID_BASE
    await store.transaction_started("CP3", payload, local, origin="gateway")
    await stop(store, "CP3", local, "2026-01-07T01:00:00Z", 500)
    await store.outbox.delivered(message, 9001)

    standalone, relayed, offline = await read(config)

    assert standalone.mode is SessionMode.STANDALONE
    assert (standalone.transaction_id, standalone.cloud_transaction_id) == (1, None)
    assert standalone.card is not None and standalone.card.owner == "Flat 1"
    assert (standalone.energy_wh, standalone.duration_s) == (7500, 9000.0)
    assert standalone.state is SessionState.FINISHED

    assert relayed.mode is SessionMode.CLOUD
    assert (relayed.transaction_id, relayed.cloud_transaction_id) == (345, 345)
    assert relayed.card is not None and relayed.card.id == ALICE
    assert relayed.started_ts == ts("2026-01-06T17:00:00Z")  # offsets are honoured
    assert relayed.to_json()["started_at"] == "2026-01-06T17:00:00Z"

    assert offline.mode is SessionMode.OFFLINE
    assert (offline.transaction_id, offline.cloud_transaction_id) == (local, 9001)
    assert offline.card is None and offline.energy_wh == 500
    assert offline.to_json()["owner"] is None


async def test_offline_session_not_yet_synced_has_no_cloud_id(store: Store, config: Config) -> None:
    payload = {"connectorId": 1, "idTag": "11223344", "meterStart": 0, "timestamp": "2026-01-07"}
    _, local = await store.outbox.enqueue_start("CP3", payload)
    await store.transaction_started("CP3", payload, local, origin="gateway")
    (session,) = await read(config)
    assert session.mode is SessionMode.OFFLINE
    assert (session.transaction_id, session.cloud_transaction_id) == (local, None)
    assert session.state is SessionState.OPEN and session.energy_wh is None


async def test_unclosed_backwards_meter_and_bad_timestamps(store: Store, config: Config) -> None:
    # A start that never got its stop, then the same connector starts again.
    await start(store, "CP1", 1, "11223344", "2026-01-10T08:00:00Z")
    await start(store, "CP1", 2, "11223344", "2026-01-10T09:00:00Z", meter=50)
    await stop(store, "CP1", 2, "2026-01-10T10:00:00Z", 49)  # meter 1 Wh backwards
    await start(store, "CP1", 3, "11223344", "not a time", connector=2)  # still open

    ghost, backwards, open_one = await read(config)

    assert ghost.state is SessionState.UNCLOSED and ghost.energy_wh is None
    assert backwards.energy_wh == 0 and backwards.meter_backwards
    assert open_one.state is SessionState.OPEN
    assert open_one.started_ts == NOW  # the gateway's clock when the charger's does not parse


async def test_filters_time_window_charger_and_card(store: Store, config: Config) -> None:
    alice_dec = render(ALICE, IdTagFormat.DEC_LE)
    await start(store, "CP1", 1, alice_dec, "2026-01-01T10:00:00Z")
    await stop(store, "CP1", 1, "2026-01-01T12:00:00Z", 1000)
    await start(store, "CP2", 7, "D2C93AE4", "2026-01-02T10:00:00Z")  # Alice, byte-reversed
    await stop(store, "CP2", 7, "2026-01-02T11:00:00Z", 2000)
    await start(store, "CP2", 8, "11223344", "2026-01-03T10:00:00Z")  # Bob, still open
    await start(store, "CP3", 9, "CAFEBABE", "2026-01-04T10:00:00Z")  # not enrolled
    await stop(store, "CP3", 9, "2026-01-04T11:00:00Z", 10)

    def ids(sessions: list[Session]) -> list[int | None]:
        return [s.transaction_id for s in sessions]

    assert ids(await read(config)) == [1, 7, 8, 9]
    # Overlap: a session going on at `since` is kept, one started at `until` is not.
    window = SessionFilter(since=ts("2026-01-01T11:00:00Z"), until=ts("2026-01-03T10:00:00Z"))
    assert ids(await read(config, window)) == [1, 7]
    # An open session is going on whatever `since` says.
    assert ids(await read(config, SessionFilter(since=ts("2026-02-01")))) == [8]
    assert ids(await read(config, SessionFilter(charger="CP2"))) == [7, 8]
    # The card as the installer types it finds it however each charger wrote it.
    assert ids(await read(config, SessionFilter(card=ALICE))) == [1, 7]
    # A card nobody enrolled is matched against the reported tags too.
    assert ids(await read(config, SessionFilter(card=parse_card_id("cafebabe")))) == [9]
    with pytest.raises(ValueError, match="is after"):
        SessionFilter(since=ts("2026-01-02"), until=ts("2026-01-01"))


async def test_owner_filter_matches_the_whole_name_in_any_case(
    store: Store, config: Config
) -> None:
    # A card enrolled without an owner, and one whose owner was typed with blanks and capitals.
    await CardStore(store.db).save_card(Card(parse_card_id("A1B2C3D4"), label="spare"))
    await CardStore(store.db).save_card(Card(parse_card_id("55667788"), owner=" FLAT 10 "))
    await start(store, "CP1", 1, render(ALICE, IdTagFormat.DEC_LE), "2026-01-01T10:00:00Z")
    await start(store, "CP2", 2, "D2C93AE4", "2026-01-02T10:00:00Z")  # Alice, byte-reversed
    await start(store, "CP2", 3, ALICE2.canonical, "2026-01-03T10:00:00Z", connector=2)
    await start(store, "CP3", 4, "11223344", "2026-01-04T10:00:00Z")  # Bob
    await start(store, "CP3", 5, "CAFEBABE", "2026-01-05T10:00:00Z", connector=2)  # unknown
    await start(store, "CP3", 6, "A1B2C3D4", "2026-01-06T10:00:00Z", connector=3)  # no owner
    await start(store, "CP3", 7, "55667788", "2026-01-07T10:00:00Z", connector=4)  # Flat 10

    async def ids(**where: Any) -> list[int | None]:
        return [s.transaction_id for s in await read(config, SessionFilter(**where))]

    # Both of Flat 1's cards, whatever format each charger reported them in; not "Flat 10".
    assert await ids(owner="Flat 1") == [1, 2, 3]
    assert await ids(owner="  fLaT 1 ") == [1, 2, 3]
    assert await ids(owner="flat 10") == [7]
    assert await ids(owner="Flat") == []  # whole names only, no prefix match
    assert await ids(no_owner=True) == [5, 6]  # the unknown card and the owner-less one
    # Filters combine.
    assert await ids(owner="Flat 1", charger="CP2") == [2, 3]
    assert await ids(owner="Flat 1", card=BOB) == []
    assert await ids(owner="Flat 1", until=ts("2026-01-02T12:00:00Z")) == [1, 2]

    with pytest.raises(ValueError, match="owner is empty"):
        SessionFilter(owner="  ")
    with pytest.raises(ValueError, match="match nothing"):
        SessionFilter(owner="Flat 1", no_owner=True)


async def test_an_owner_no_card_has_is_refused_with_the_closest_names(
    store: Store, config: Config
) -> None:
    async with open_read_only(config.store.path) as conn:
        cards = await CardResolver.load(conn, config)
    cards.check_owner("flat 2")  # known: no error
    with pytest.raises(ValueError, match=r"no enrolled card has the owner 'Flat 3'; did you mean"):
        cards.check_owner("Flat 3")
    with pytest.raises(ValueError, match="matched whole"):
        cards.check_owner("Somebody Else")
    nobody = CardResolver([Card(BOB)], lambda _: IdTagFormat.AUTO, {})
    with pytest.raises(ValueError, match="no card has an owner yet"):
        nobody.check_owner("Flat 2")


async def test_times_sqlite_cannot_read_are_still_filtered_exactly(
    store: Store, config: Config
) -> None:
    # "+0100" (no colon) is ISO 8601 that Python reads and SQLite's julianday() does not.
    await start(store, "CP1", 1, "11223344", "2026-01-10T09:00:00+0100")
    await stop(store, "CP1", 1, "2026-01-10T10:00:00+0100", 100)
    await start(store, "CP1", 2, "11223344", "2026-03-10T09:00:00+0100")
    await stop(store, "CP1", 2, "2026-03-10T10:00:00+0100", 100)
    january = SessionFilter(since=ts("2026-01-10T08:30:00Z"), until=ts("2026-01-10T08:30:01Z"))
    assert [s.transaction_id for s in await read(config, january)] == [1]
    assert [
        s.transaction_id for s in await read(config, SessionFilter(since=ts("2026-02-01")))
    ] == [2]


async def test_pages_follow_the_cursor_both_ways(store: Store, config: Config) -> None:
    for tx in range(1, 8):
        await start(store, "CP1", tx, "11223344", f"2026-01-0{tx}T10:00:00Z", connector=tx)
    async with open_read_only(config.store.path) as conn:
        queries = SessionQueries(conn, await CardResolver.load(conn, config))
        seen: list[int | None] = []
        cursor: int | None = None
        while True:
            page, cursor = await queries.page(SessionFilter(), limit=3, after=cursor)
            seen += [s.transaction_id for s in page]
            if cursor is None:
                break
        assert seen == [1, 2, 3, 4, 5, 6, 7]
        newest, cursor = await queries.page(SessionFilter(), limit=2, newest_first=True)
        assert [s.transaction_id for s in newest] == [7, 6]
        rest, end = await queries.page(SessionFilter(), after=cursor, newest_first=True)
        assert [s.transaction_id for s in rest] == [5, 4, 3, 2, 1] and end is None


async def january(store: Store) -> None:
    alice_dec = render(ALICE, IdTagFormat.DEC_LE)
    # Flat 1 (two cards, two chargers, two formats).
    await start(store, "CP1", 1, alice_dec, "2026-01-05T08:00:00Z", meter=1000)
    await stop(store, "CP1", 1, "2026-01-05T10:00:00Z", 8500)  # 7.5 kWh, 2 h
    await start(store, "CP2", 2, "D2C93AE4", "2026-01-12T18:00:00Z", meter=0)
    await stop(store, "CP2", 2, "2026-01-12T19:30:00Z", 4000)  # 4 kWh, 1.5 h
    await start(store, "CP2", 3, ALICE2.canonical, "2026-01-20T18:00:00Z", meter=0)
    await stop(store, "CP2", 3, "2026-01-20T19:00:00Z", 1250)  # 1.25 kWh, 1 h
    # Flat 2: one session from December that ended in January counts in January.
    await start(store, "CP3", 4, "11223344", "2025-12-31T22:00:00Z", meter=0, connector=1)
    await stop(store, "CP3", 4, "2026-01-01T02:00:00Z", 9000)  # 9 kWh, 4 h
    # An unknown card.
    await start(store, "CP3", 5, "CAFEBABE", "2026-01-15T12:00:00Z", meter=0, connector=1)
    await stop(store, "CP3", 5, "2026-01-15T12:30:00Z", 300)
    # Open at the month's end: one ends in February, one is still going.
    await start(store, "CP1", 6, alice_dec, "2026-01-31T23:00:00Z", meter=0, connector=2)
    await stop(store, "CP1", 6, "2026-02-01T01:00:00Z", 6000)
    await start(store, "CP3", 7, "11223344", "2026-01-31T20:00:00Z", meter=0, connector=2)
    # Unclosed in January: never stopped, the connector started again.
    await start(store, "CP3", 8, "11223344", "2026-01-25T08:00:00Z", meter=0, connector=3)
    await start(store, "CP3", 9, "11223344", "2026-01-26T08:00:00Z", meter=0, connector=3)
    await stop(store, "CP3", 9, "2026-01-26T09:00:00Z", 1000)
    # February, not in January's report.
    await start(store, "CP1", 10, alice_dec, "2026-02-03T08:00:00Z", meter=0)
    await stop(store, "CP1", 10, "2026-02-03T09:00:00Z", 500)


async def report(config: Config, month: str, tz: str = "UTC") -> dict[str, Any]:
    async with open_read_only(config.store.path) as conn:
        queries = SessionQueries(conn, await CardResolver.load(conn, config))
        result = await queries.report(Month.parse(month), ZoneInfo(tz), now=NOW)
    return result.to_json()


async def test_monthly_report_per_card_and_owner(store: Store, config: Config) -> None:
    await january(store)
    data = await report(config, "2026-01")

    assert (data["start"], data["end"]) == ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")
    by_card = {c["card"] or c["id_tag"]: c for c in data["cards"]}
    assert by_card["E43AC9D2"]["sessions"] == 2
    assert by_card["E43AC9D2"]["energy_kwh"] == 11.5 and by_card["E43AC9D2"]["hours"] == 3.5
    assert by_card["04A1B2C3D4E5F6"]["energy_wh"] == 1250
    assert by_card["11223344"]["energy_wh"] == 10000  # 9 kWh from Dec 31 + CP3/3's 1 kWh
    assert by_card["11223344"]["sessions"] == 2
    assert by_card["CAFEBABE"]["known"] is False and by_card["CAFEBABE"]["energy_wh"] == 300
    owners = {o["owner"]: o for o in data["owners"]}
    assert owners["Flat 1"]["cards"] == ["04A1B2C3D4E5F6", "E43AC9D2"]
    assert owners["Flat 1"]["energy_wh"] == 12750 and owners["Flat 1"]["sessions"] == 3
    assert owners["Flat 2"]["energy_wh"] == 10000
    assert owners[None]["energy_wh"] == 300
    assert data["totals"] == {
        "sessions": 6,
        "energy_wh": 23050,
        "energy_kwh": 23.05,
        "hours": round((2 + 1.5 + 1 + 4 + 0.5 + 1) * 1.0, 2),
    }
    assert [s["transaction_id"] for s in data["open_at_month_end"]] == [7, 6]
    assert [s["transaction_id"] for s in data["unclosed"]] == [8]

    february = await report(config, "2026-02")
    assert february["totals"]["energy_wh"] == 6500  # the session open at January's end
    assert [s["transaction_id"] for s in february["open_at_month_end"]] == [7]
    assert february["unclosed"] == []


async def test_the_report_groups_owners_as_the_owner_filter_compares_them(
    store: Store, config: Config
) -> None:
    await CardStore(store.db).save_card(Card(parse_card_id("55667788"), owner=" flat 1 "))
    await start(store, "CP1", 1, "55667788", "2026-01-05T10:00:00Z")
    await stop(store, "CP1", 1, "2026-01-05T11:00:00Z", 700)
    await january(store)
    owners = [o for o in (await report(config, "2026-01"))["owners"] if o["owner"] is not None]
    # One group for "Flat 1" and " flat 1 ", as `sessions list --owner` treats them.
    (flat1,) = [o for o in owners if o["owner"].casefold() == "flat 1"]
    assert "55667788" in flat1["cards"] and flat1["energy_wh"] == 12750 + 700


async def test_month_bounds_follow_the_time_zone(store: Store, config: Config) -> None:
    # 23:30 UTC on Jan 31 is 00:30 on Feb 1 in Brussels.
    await start(store, "CP1", 1, "11223344", "2026-01-31T22:30:00Z")
    await stop(store, "CP1", 1, "2026-01-31T23:30:00Z", 1000)
    assert (await report(config, "2026-01"))["totals"]["energy_wh"] == 1000
    brussels = await report(config, "2026-01", "Europe/Brussels")
    assert brussels["totals"]["energy_wh"] == 0
    assert brussels["start"] == "2025-12-31T23:00:00Z"
    assert (await report(config, "2026-02", "Europe/Brussels"))["totals"]["energy_wh"] == 1000


async def test_empty_month(store: Store, config: Config) -> None:
    data = await report(config, "2024-02")
    assert data["cards"] == [] and data["totals"]["sessions"] == 0
    assert data["end"] == "2024-03-01T00:00:00Z"


def test_month_and_time_parsing() -> None:
    assert str(Month.parse("2026-01")) == "2026-01"
    assert Month.parse("2025-12").bounds()[1] == ts("2026-01-01")
    for bad in ("2026-13", "2026-1", "26-01", "January", "2026-00", ""):
        with pytest.raises(ValueError, match="YYYY-MM"):
            Month.parse(bad)
    assert parse_time("2026-01-01") == parse_time("2026-01-01T01:00:00+01:00")
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time("yesterday")


async def test_read_only_never_creates_or_writes(tmp_path: Path, store: Store) -> None:
    missing = tmp_path / "none.db"
    with pytest.raises(StoreError, match="no database"):
        async with open_read_only(missing):
            pass
    assert not missing.exists()
    async with open_read_only(store.db.path) as conn:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await conn.execute("DELETE FROM transactions")


async def test_schema_versions_it_cannot_read_are_refused(tmp_path: Path) -> None:
    old, new = tmp_path / "old.db", tmp_path / "new.db"
    with sqlite3.connect(old) as conn:
        conn.execute("PRAGMA user_version=1")
    with sqlite3.connect(new) as conn:
        conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="start the daemon once"):
        async with open_read_only(old):
            pass
    with pytest.raises(StoreError, match="newer than this edgegw"):
        async with open_read_only(new):
            pass
