"""The session's one timer: a deadline that moves later is still kept, at the later time.

The session keeps an armed timer when the link's next deadline moves later or goes away (it
fires first, finds nothing due and re-arms): these tests pin that a call's deadline set after
an earlier one still ends it, at its own time and not before. Real gateway, real sockets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from edgegw.sim.cloud import SimCloud
from tests.conftest import GatewayFactory, gateway_url, raw_charger

BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}
CALL_TIMEOUT = 1.0


@pytest.fixture
async def cloud() -> AsyncIterator[SimCloud]:
    async with SimCloud() as sim:
        yield sim


async def test_a_later_deadline_fires_at_its_own_time(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(cloud_url=cloud.url, cloud={"call_timeout": CALL_TIMEOUT})
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        # A call the cloud answers at once: its deadline (now + 1 s) was armed, then settled.
        await cp.call("Heartbeat", {})
        await asyncio.sleep(CALL_TIMEOUT / 2)
        # The next one the cloud holds: its deadline is half a timeout after the first's.
        cloud.delay_answers = 60.0
        sent = time.monotonic()
        await cp.send([2, "late-1", "Heartbeat", {}])
        answer = await cp.recv(timeout=10 * CALL_TIMEOUT)
        answered = time.monotonic()
        assert answer[:2] == [3, "late-1"] and "currentTime" in answer[2]
        # The gateway answered it (the cloud still holds its answer), at its deadline, not at
        # the earlier call's.
        assert not [r for r in cloud.find(direction="out") if r.message_id == "late-1"]
        assert answered - sent >= CALL_TIMEOUT * 0.9
        # The link goes on: the next call is relayed once the cloud answers the held one.
        cloud.delay_answers = 0.0
        cloud.release_delayed()
        follow = await cp.call("Heartbeat", {})
        assert follow[0] == 3


async def test_deadlines_in_a_row_each_end_their_call(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(cloud_url=cloud.url, cloud={"call_timeout": CALL_TIMEOUT})
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        cloud.delay_answers = 60.0
        for i in range(3):  # each overdue call answered by the gateway, each at its deadline
            sent = time.monotonic()
            await cp.send([2, f"held-{i}", "Heartbeat", {}])
            answer = await cp.recv(timeout=10 * CALL_TIMEOUT)
            assert answer[:2] == [3, f"held-{i}"]
            assert time.monotonic() - sent >= CALL_TIMEOUT * 0.9
        cloud.delay_answers = 0.0
        cloud.release_delayed()  # (so the gateway owes the cloud nothing when it stops)
