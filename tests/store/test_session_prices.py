"""A session's price is fixed when its stop is recorded, over times checked against the gateway's.

Real parts: the daemon's store writing a real database, the card authority (an
:class:`Authorizer` on that database) pricing each stop through :class:`SiteCards`, and the
session queries reading the file read-only as the CLI does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edgegw.auth.access import CardGroup
from edgegw.auth.authority import SiteCards
from edgegw.auth.authorizer import Authorizer
from edgegw.auth.idtags import parse_card_id
from edgegw.auth.locallist import Card
from edgegw.config import Config, parse_config
from edgegw.store.db import Database
from edgegw.store.schema import MIGRATIONS
from edgegw.store.sessions import (
    CardResolver,
    Month,
    Session,
    SessionQueries,
    open_read_only,
    parse_time,
)
from edgegw.store.store import StopFacts, Store
from edgegw.store.tariffs import Priced

ALICE = parse_card_id("E43AC9D2")

JUNE = {
    "name": "residents",
    "per_kwh": 0.30,
    "per_hour": 1.0,
    "card_groups": ["residents"],
}
JULY = {"name": "residents-july", "per_kwh": 0.90, "card_groups": ["residents"]}
VISITORS = {"name": "visitors", "per_kwh": 0.50}


class Clock:
    """The gateway's clock: set to when each message arrives."""

    def __init__(self, at: str) -> None:
        self.now = parse_time(at)

    def __call__(self) -> float:
        return self.now

    def at(self, text: str) -> None:
        self.now = parse_time(text)


def site_config(tmp_path: Path, *tariffs: dict[str, Any]) -> Config:
    return parse_config(
        {
            "store": {"path": str(tmp_path / "gw.db")},
            "chargers": [{"id": "CP1"}],
            "tariffs": list(tariffs),
        }
    )


@pytest.fixture
def clock() -> Clock:
    return Clock("2026-06-10T08:00:00Z")


@pytest.fixture
async def daemon(tmp_path: Path, clock: Clock) -> AsyncIterator[tuple[Store, Authorizer, Config]]:
    """The daemon's store and card authority, June's tariffs, Alice a resident."""
    config = site_config(tmp_path, JUNE, VISITORS)
    store = await Store.open(config.store.path, clock=clock)
    authorizer = await Authorizer.open(store.db, config.auth, clock=clock)
    store.pricer = SiteCards(authorizer, config).price_stop
    await authorizer.add_card(Card(ALICE, owner="Flat 1"))
    await authorizer.change_access(
        lambda a: a.with_card_group(CardGroup("residents", frozenset({ALICE.key})))
    )
    try:
        yield store, authorizer, config
    finally:
        await authorizer.close()
        await store.close()


async def session(
    store: Store,
    clock: Clock,
    tx: int,
    charger_times: tuple[str, str],
    gateway_times: tuple[str, str],
    *,
    meters: tuple[int, int] = (0, 10_000),
) -> None:
    """A session whose charger said ``charger_times``; the gateway got its messages at
    ``gateway_times``."""
    clock.at(gateway_times[0])
    await store.transaction_started(
        "CP1",
        {
            "connectorId": 1,
            "idTag": "E43AC9D2",
            "meterStart": meters[0],
            "timestamp": charger_times[0],
        },
        tx,
        origin="gateway",
    )
    clock.at(gateway_times[1])
    stopped = {"transactionId": tx, "meterStop": meters[1], "timestamp": charger_times[1]}
    assert await store.transaction_stopped("CP1", stopped)


async def read(config: Config) -> list[Session]:
    async with open_read_only(config.store.path) as conn:
        return await SessionQueries(conn, await CardResolver.load(conn, config)).sessions()


async def report(config: Config, month: str) -> dict[str, Any]:
    async with open_read_only(config.store.path) as conn:
        queries = SessionQueries(conn, await CardResolver.load(conn, config))
        found = await queries.report(Month.parse(month), now=parse_time("2026-08-01"))
        return found.to_json()


async def test_a_june_session_keeps_its_june_price_after_the_tariffs_and_groups_change(
    tmp_path: Path, clock: Clock, daemon: tuple[Store, Authorizer, Config]
) -> None:
    store, authorizer, june = daemon
    times = ("2026-06-10T08:00:00Z", "2026-06-10T10:00:00Z")
    await session(store, clock, 1, times, times)  # 2 h, 10 kWh: 2 * 1.00 + 10 * 0.30
    (priced,) = await read(june)
    assert (priced.tariff, priced.cost, priced.card_groups) == ("residents", 5.0, ("residents",))

    # July: the residents pay more, and Alice leaves the residents' group.
    await authorizer.change_access(lambda a: a.without_card_group("residents"))
    july = site_config(tmp_path, JULY, VISITORS)

    (shown,) = await read(july)
    assert (shown.tariff, shown.cost) == ("residents", 5.0)
    billed = await report(july, "2026-06")
    assert billed["totals"]["cost"] == 5.0
    assert [(c["owner"], c["cost"]) for c in billed["cards"]] == [("Flat 1", 5.0)]
    # Her June session counts for the group she was in when it was priced.
    assert [(g["group"], g["cost"]) for g in billed["groups"]] == [("residents", 5.0)]


async def test_a_session_without_a_stored_price_is_priced_when_shown(
    tmp_path: Path, clock: Clock, daemon: tuple[Store, Authorizer, Config]
) -> None:
    store, _, june = daemon
    store.pricer = None  # recorded by a daemon that did not price it
    times = ("2026-06-10T08:00:00Z", "2026-06-10T10:00:00Z")
    await session(store, clock, 1, times, times)
    (shown,) = await read(june)
    assert (shown.tariff, shown.cost, shown.card_groups) == ("residents", 5.0, None)
    (july,) = await read(site_config(tmp_path, JULY, VISITORS))
    assert (july.tariff, july.cost) == ("residents-july", 9.0)  # 10 kWh at 0.90, today's


async def test_a_pricer_that_fails_leaves_the_stop_recorded(
    clock: Clock, daemon: tuple[Store, Authorizer, Config]
) -> None:
    store, _, june = daemon

    def broken(facts: StopFacts) -> Priced | None:
        raise RuntimeError(facts.charger_id)

    store.pricer = broken
    times = ("2026-06-10T08:00:00Z", "2026-06-10T10:00:00Z")
    await session(store, clock, 1, times, times)
    (shown,) = await read(june)
    assert shown.stopped_ts == parse_time(times[1]) and shown.cost == 5.0  # priced when shown


@pytest.mark.parametrize("priced_at_stop", [True, False], ids=["at-stop", "when-shown"])
async def test_a_charger_clock_reset_to_1970_is_priced_over_the_gateways_times(
    clock: Clock, daemon: tuple[Store, Authorizer, Config], priced_at_stop: bool
) -> None:
    store, _, june = daemon
    if not priced_at_stop:
        store.pricer = None
    # The charger lost its clock in a power cut: it starts "in 1970", then gets the time.
    gateway = ("2026-06-10T08:00:00Z", "2026-06-10T11:00:00Z")
    await session(store, clock, 1, ("1970-01-01T00:00:12Z", gateway[1]), gateway)
    (shown,) = await read(june)
    assert shown.gateway_times == ("start",)
    assert shown.cost == pytest.approx(3 * 1.0 + 10 * 0.30)  # 3 h, not 56 years
    assert shown.to_json()["cost_times"] == "gateway: start"


async def test_a_charger_a_few_seconds_off_keeps_its_own_times(
    clock: Clock, daemon: tuple[Store, Authorizer, Config]
) -> None:
    store, _, june = daemon
    charger = ("2026-06-10T08:00:00Z", "2026-06-10T10:00:00Z")
    gateway = ("2026-06-10T08:00:40Z", "2026-06-10T10:04:00Z")  # within the tolerance
    await session(store, clock, 1, charger, gateway)
    (shown,) = await read(june)
    assert (shown.cost, shown.gateway_times) == (5.0, ())
    assert shown.to_json()["cost_times"] == "charger"


async def test_a_stop_stamped_far_in_the_future_is_priced_at_the_gateways_stop(
    clock: Clock, daemon: tuple[Store, Authorizer, Config]
) -> None:
    store, _, june = daemon
    gateway = ("2026-06-10T08:00:00Z", "2026-06-10T09:00:00Z")
    await session(store, clock, 1, (gateway[0], "2036-06-10T09:00:00Z"), gateway)
    (shown,) = await read(june)
    assert shown.cost == pytest.approx(1.0 + 3.0)  # 1 h, not ten years and an hour
    assert shown.gateway_times == ("stop",)
    # What the charger said is still what the session shows.
    assert shown.stopped_ts == parse_time("2036-06-10T09:00:00Z")


async def test_schema_4_adds_the_price_columns_to_a_schema_3_database(tmp_path: Path) -> None:
    assert len(MIGRATIONS) >= 4  # later steps run on top
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        for step in MIGRATIONS[:3]:
            conn.executescript(step)
        conn.execute("PRAGMA user_version=3")
        conn.execute(
            "INSERT INTO transactions (charger_id, connector_id, transaction_id, origin, id_tag,"
            " meter_start, started_at, meter_stop, stopped_at, recorded_at) VALUES"
            " ('CP1', 1, 1, 'gateway', 'E43AC9D2', 0, '2026-05-01T08:00:00Z', 4000,"
            " '2026-05-01T09:00:00Z', ?)",
            (parse_time("2026-05-01T08:00:00Z"),),
        )
    conn.close()
    await (await Database.open(path)).close()
    with sqlite3.connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(transactions)")}
        row = conn.execute("SELECT tariff, cost, card_groups, stop_recorded_at FROM transactions")
        assert row.fetchone() == (None, None, None, None)
    conn.close()
    assert {"stop_recorded_at", "tariff", "cost", "card_groups"} <= columns


async def test_a_session_recorded_before_schema_4_is_priced_when_shown(
    tmp_path: Path, clock: Clock
) -> None:
    config = site_config(tmp_path, VISITORS)
    store = await Store.open(config.store.path, clock=clock)
    try:
        async with store.db.transaction() as conn:  # as schema 3 left it: no stop time, no price
            await conn.execute(
                "INSERT INTO transactions (charger_id, connector_id, transaction_id, origin,"
                " id_tag, meter_start, started_at, meter_stop, stopped_at, recorded_at) VALUES"
                " ('CP1', 1, 1, 'gateway', 'CAFE', 0, '2026-05-01T08:00:00Z', 4000,"
                " '2026-05-01T09:00:00Z', ?)",
                (parse_time("2026-05-01T08:00:00Z"),),
            )
    finally:
        await store.close()
    (shown,) = await read(config)
    assert (shown.tariff, shown.cost, shown.gateway_times) == ("visitors", 2.0, ())
