"""2.x chargers are kept away from what the gateway can only do in 1.6: load capping, its own
calls. Real sockets on port 0."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from websockets.exceptions import ConnectionClosed

from edgegw.proxy.session import CallFailed
from edgegw.sim.charger201 import SimCharger201
from edgegw.sim.meter import SimMeter
from tests.conftest import GatewayFactory, gateway_url, raw_charger
from tests.v201.test_link201 import online
from tests.v201.test_relay201 import CHARGERS, Cloud201, cloud201  # noqa: F401

CAPPED = (
    "subprotocol ocpp1.6 required (this site caps load; OCPP 2.x chargers cannot be capped yet)"
)


@pytest.fixture
async def meter() -> AsyncIterator[SimMeter]:
    async with SimMeter("eastron-sdm630") as sim:
        yield sim


async def test_a_capped_site_takes_no_2_x_charger(
    cloud201: Cloud201,  # noqa: F811
    make_gateway: GatewayFactory,
    meter: SimMeter,
) -> None:
    gateway = await make_gateway(
        cloud_url=cloud201.url,
        chargers=CHARGERS,
        site={"limit_a": 20},
        buses={"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
        meters=[{"profile": "eastron-sdm630", "poll_interval": 0.5}],
    )
    async with raw_charger(gateway_url(gateway), "CS201", subprotocols=["ocpp2.0.1"]) as cp:
        assert cp.ws.subprotocol is None
        with pytest.raises(ConnectionClosed):
            await cp.ws.recv()
        assert cp.ws.close_code == 1002
        assert cp.ws.close_reason == CAPPED
    async with raw_charger(
        gateway_url(gateway), "CS201", subprotocols=["ocpp2.0.1", "ocpp1.6"]
    ) as cp:
        assert cp.ws.subprotocol == "ocpp1.6"
    assert ["ocpp2.0.1"] not in cloud201.offered  # the refused charger never reached the cloud


def test_the_link_sends_no_gateway_call_to_a_2_x_charger() -> None:
    link = online()
    message_id, out = link.gateway_call("GetConfiguration", {})
    assert [type(c).__name__ for c in out] == ["GatewayDone"]
    done = out[0]
    assert done.message_id == message_id  # type: ignore[union-attr]
    assert done.answer is None  # type: ignore[union-attr]
    assert done.reason == "charger speaks ocpp2.0.1: GetConfiguration not sent"  # type: ignore[union-attr]
    assert link.queued_to_charger == 0


async def test_a_gateway_call_to_a_2_x_charger_fails_and_sends_nothing(
    cloud201: Cloud201,  # noqa: F811
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(cloud_url=cloud201.url, chargers=CHARGERS)
    async with SimCharger201("CS201", gateway_url(gateway)) as cs:
        await cs.boot()
        with pytest.raises(CallFailed, match=r"charger speaks ocpp2\.0\.1: Reset not sent"):
            await gateway.call("CS201", "Reset", {"type": "Soft"}, timeout=5)
        await cs.heartbeat()  # a round trip: anything sent before it has arrived
        calls = [json.loads(t)[2] for t in cs.received if json.loads(t)[0] == 2]
        assert calls == []
