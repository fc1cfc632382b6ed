"""A charger gets its frames in the order the relay decided them, though most are sent at once.

The session sends a frame from the task that received what it answers, without a hand-off,
only while nothing is queued for its executor; once something is (a commit to the outbox that
waits for the database), every frame after it queues behind it. Real gateway, real sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from edgegw.sim.cloud import SimCloud
from tests.conftest import GatewayFactory, gateway_url, raw_charger

BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}
START = {"connectorId": 1, "idTag": "GOODTAG", "meterStart": 0, "timestamp": "2026-01-01T10:00:00Z"}
LOCAL_LIST = {
    "listVersion": 7,
    "updateType": "Full",
    "localAuthorizationList": [{"idTag": "CARD1", "idTagInfo": {"status": "Accepted"}}],
}
GUARD_S = 30.0  # not a performance bound: a guard against a hang


@pytest.fixture
async def cloud() -> AsyncIterator[SimCloud]:
    async with SimCloud(accepted_tags={"GOODTAG"}) as sim:
        yield sim


async def until(predicate: Callable[[], bool]) -> None:
    """Wait until the gateway's message log shows a frame was read (it has no event for it)."""
    while not predicate():  # noqa: ASYNC110 - sampling the gateway's message log
        await asyncio.sleep(0.01)


async def test_a_relayed_call_never_overtakes_an_answer_waiting_for_the_database(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    """The cloud sends a SendLocalList, which the gateway answers itself once the list is
    stored, and the store waits (the database's write lock is held). Meanwhile the charger
    sends a Heartbeat. The cloud must get the SendLocalList's answer first: it was decided
    first, and the Heartbeat, relayed while it was queued, goes after it."""
    gateway = await make_gateway(cloud_url=cloud.url)
    store = gateway.store
    assert store is not None

    def logged(direction: str, text: str) -> Callable[[], bool]:
        return lambda: any(
            f.direction == direction and text in f.frame for f in store.message_log("CP1")
        )

    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        await cloud.wait_connected("CP1")
        async with asyncio.timeout(GUARD_S):
            async with store.db.transaction():
                update = asyncio.ensure_future(  # noqa: TID251 - a test's own short task
                    cloud.call("CP1", "SendLocalList", LOCAL_LIST, timeout=GUARD_S)
                )
                await until(logged("cloud>", "SendLocalList"))  # read, waiting for the store
                await cp.send([2, "beat-1", "Heartbeat", {}])
                await until(logged("charger>", "beat-1"))  # read and relayed (or queued)
            assert await update == {"status": "Accepted"}
            beat = await cp.recv()
            assert beat[:2] == [3, "beat-1"]
        received = [
            (r.message_type, r.action) for r in cloud.find(charger_id="CP1", direction="in")
        ]
        assert received[-2:] == [(3, "SendLocalList"), (2, "Heartbeat")], received
