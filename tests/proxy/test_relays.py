"""One relay session per charger identity: the newest connection wins, the cloud link is one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from edgegw.sim.cloud import SimCloud
from tests.conftest import GatewayFactory, RawCharger, gateway_url

BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}


@pytest.fixture
async def cloud() -> AsyncIterator[SimCloud]:
    async with SimCloud(accepted_tags={"GOODTAG"}) as sim:
        yield sim


async def _open(url: str) -> ClientConnection:
    return await connect(f"{url}/CP1", subprotocols=[Subprotocol("ocpp1.6")], proxy=None)


async def _is_served(ws: ClientConnection) -> bool:
    """A Heartbeat gets its answer on this connection (else it was closed)."""
    charger = RawCharger(ws)
    try:
        answer = await charger.call("Heartbeat", {})
    except (ConnectionClosed, TimeoutError):
        return False
    return answer[0] == 3


async def test_connections_arriving_together_leave_exactly_one_served(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(cloud_url=cloud.url)
    url = gateway_url(gateway)
    first = await _open(url)
    assert await _is_served(first)
    await cloud.wait_connected("CP1")
    # Two more connections of the same identity at the same moment (a flapping charger).
    second, third = await asyncio.gather(_open(url), _open(url))
    try:
        await first.wait_closed()
        assert first.close_code == 1008
        served = await asyncio.gather(_is_served(second), _is_served(third))
        assert sorted(served) == [False, True], served
        loser = second if not served[0] else third
        await loser.wait_closed()
        assert loser.close_code == 1008
        # One session, one cloud connection for the identity.
        assert gateway.relays.get("CP1") is gateway.sessions["CP1"]
        assert len(gateway.relays) == 1
    finally:
        await second.close()
        await third.close()


async def test_a_reconnecting_charger_takes_over_its_session_while_the_cloud_owes(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    """A charger that leaves while the cloud still works on its call comes back to the same
    session: the cloud connection stays, the late answer is not lost."""
    cloud.delay_answers = 1.0
    gateway = await make_gateway(cloud_url=cloud.url)
    url = gateway_url(gateway)
    ws = await _open(url)
    await RawCharger(ws).send([2, "b1", "BootNotification", BOOT])
    await cloud.wait_for(lambda r: r.message_id == "b1")
    session = gateway.relays.get("CP1")
    await ws.close()
    await gateway.wait_charger("CP1", connected=False)
    assert gateway.relays.get("CP1") is session  # the cloud still owes an answer
    again = await _open(url)
    try:
        assert await _is_served(again)
        assert gateway.relays.get("CP1") is session
    finally:
        await again.close()
