"""A 2.x charger's connection mirrors its cloud connection (OCPP 2.0.1 Part 4 §6.3, Local
Controller): when the cloud goes, or cannot be reached, the charger is disconnected, so the
station itself goes offline and queues its transaction events; nothing is answered for it
locally. 1.6 chargers keep their offline answers. Real sockets on port 0."""

from __future__ import annotations

import json

from websockets.asyncio.server import serve
from websockets.typing import Subprotocol

from edgegw.sim.charger import SimCharger
from edgegw.sim.charger201 import SimCharger201
from tests.conftest import GatewayFactory, gateway_url
from tests.v201.test_relay201 import CHARGERS, Cloud201

CLOUD_UNREACHABLE = (1011, "cloud unreachable")


async def _closed(cs: SimCharger201) -> tuple[int | None, str | None]:
    code = await cs.wait_closed(timeout=10)
    return code, cs.close_reason


async def test_a_201_charger_goes_offline_with_its_cloud_and_its_events_follow(
    make_gateway: GatewayFactory,
) -> None:
    cloud = Cloud201(subprotocols=("ocpp2.0.1", "ocpp1.6"))
    protocols = [Subprotocol(p) for p in cloud.subprotocols]
    server = await serve(cloud.handler, "127.0.0.1", 0, subprotocols=protocols)
    port = server.sockets[0].getsockname()[1]
    cloud.url = f"ws://127.0.0.1:{port}/csms"
    gateway = await make_gateway(cloud_url=cloud.url, chargers=CHARGERS)
    url = gateway_url(gateway)
    cs = SimCharger201("CS201", url)
    async with SimCharger("CP16", url) as cp:
        await cs.connect()
        try:
            await cs.boot()
            assert (await cp.boot())["status"] == "Accepted"
            tx, _ = await cs.start(1, "GOOD")
            # The cloud goes away: the 2.x charger is disconnected, the 1.6 one stays.
            server.close()
            await server.wait_closed()
            assert await _closed(cs) == CLOUD_UNREACHABLE
            assert (await cp.boot())["status"] == "Accepted"  # answered by the gateway
            # It comes back while the cloud is still away: disconnected again, nothing answered.
            await cs.connect()
            assert await _closed(cs) == CLOUD_UNREACHABLE
            # The cloud returns: the station reconnects and sends what it queued itself.
            server = await serve(cloud.handler, "127.0.0.1", port, subprotocols=protocols)
            await cs.connect()
            await cs.meter(1, 16.0, 1200.0)
            await cs.stop(1)
            assert cs.connected
        finally:
            await cs.close()
            server.close()
            await server.wait_closed()
    events = [kw for a, kw in cloud.heard["CS201"] if a == "TransactionEvent"]
    assert [(e["event_type"], e["seq_no"]) for e in events] == [
        ("Started", 0),
        ("Updated", 1),
        ("Ended", 2),
    ]
    assert {e["transaction_info"]["transaction_id"] for e in events} == {tx.transaction_id}


async def test_a_201_charger_is_disconnected_when_its_cloud_cannot_be_reached(
    make_gateway: GatewayFactory,
) -> None:
    cloud = Cloud201()
    server = await serve(cloud.handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()  # a known port, nobody listens
    gateway = await make_gateway(cloud_url=f"ws://127.0.0.1:{port}/csms", chargers=CHARGERS)
    cs = SimCharger201("CS201", gateway_url(gateway))
    await cs.connect()
    try:
        boot = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}
        await cs.send_raw(json.dumps([2, cs.next_id(), "BootNotification", boot]))
        assert await _closed(cs) == CLOUD_UNREACHABLE
    finally:
        await cs.close()
    assert not [t for t in cs.received if t.startswith("[3,")]
