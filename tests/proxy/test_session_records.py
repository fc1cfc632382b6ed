"""A charger's calls are answered while its records wait for the disk (real gateway, sockets).

The relay hands what an exchange means for the records (a session the cloud accepted, the
card it answered for, a boot) to the store's bookkeeping writer; the charger's next call never
waits for those writes. Here the database's write lock is held, as a long commit or a slow SD
card would hold it, while a charger boots, starts a session through the cloud and asks again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from edgegw.sim.cloud import SimCloud
from tests.conftest import GatewayFactory, gateway_url, raw_charger

BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}
START = {"connectorId": 1, "idTag": "GOODTAG", "meterStart": 0, "timestamp": "2026-01-01T10:00:00Z"}
DEADLOCK_GUARD_S = 30.0  # not a performance bound: before the change the calls never came back


@pytest.fixture
async def cloud() -> AsyncIterator[SimCloud]:
    async with SimCloud(accepted_tags={"GOODTAG"}) as sim:
        yield sim


async def test_calls_are_answered_while_the_records_wait_for_the_database(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(cloud_url=cloud.url)
    store = gateway.store
    assert store is not None
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        await cloud.wait_connected("CP1")
        async with store.db.transaction(), asyncio.timeout(DEADLOCK_GUARD_S):
            # The boot, the session and the card answers below all wait for this lock.
            await cp.call("BootNotification", BOOT)
            started = await cp.call("StartTransaction", START)
            authorized = await cp.call("Authorize", {"idTag": "GOODTAG"})
            beat = await cp.call("Heartbeat", {})
        assert started[2]["idTagInfo"]["status"] == "Accepted"
        assert authorized[2]["idTagInfo"]["status"] == "Accepted"
        assert "currentTime" in beat[2]
        # Once the lock is free the records are written, in order.
        [session] = await store.transactions("CP1")
        assert session.transaction_id == started[2]["transactionId"]
        assert session.origin == "cloud"


async def test_a_card_the_cloud_just_refused_is_refused_offline_at_another_charger(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    """The cache a decision reads is the one in memory, and it changes when the cloud answers:
    a refusal heard at CP1 holds at CP2 at once, though its database row still waits."""
    gateway = await make_gateway(cloud_url=cloud.url)
    store = gateway.store
    assert store is not None
    async with (
        raw_charger(gateway_url(gateway), "CP1") as cp1,
        raw_charger(gateway_url(gateway), "CP2") as cp2,
    ):
        for cp, charger_id in ((cp1, "CP1"), (cp2, "CP2")):
            await cp.call("BootNotification", BOOT)
            await cloud.wait_connected(charger_id)
        accepted = await cp1.call("Authorize", {"idTag": "GOODTAG"})
        assert accepted[2]["idTagInfo"]["status"] == "Accepted"
        await store.bookkeeping.settled()  # the card is cached as Accepted, also on disk
        async with store.db.transaction(), asyncio.timeout(DEADLOCK_GUARD_S):
            # A backlog: the boot's record waits for this lock, the card answer behind it.
            await cp1.call("BootNotification", BOOT)
            cloud.blocked_tags.add("GOODTAG")
            blocked = await cp1.call("Authorize", {"idTag": "GOODTAG"})
            assert blocked[2]["idTagInfo"]["status"] == "Blocked"
            await cloud.stop()
            await cloud.wait_disconnected("CP2")
            offline = await cp2.call("Authorize", {"idTag": "GOODTAG"})
        assert offline[2]["idTagInfo"]["status"] == "Blocked"
