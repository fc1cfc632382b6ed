"""The gateway's own calls reach a 2.x charger only when written in its version (a 1.6 call is
refused, nothing sent). Capping 2.0.1 chargers: tests/v201/test_capping201.py. Real sockets on
port 0."""

from __future__ import annotations

import json

import pytest

from edgegw.proxy.session import CallFailed
from edgegw.sim.charger201 import SimCharger201
from tests.conftest import GatewayFactory, gateway_url
from tests.v201.test_link201 import online
from tests.v201.test_relay201 import CHARGERS, Cloud201, cloud201  # noqa: F401


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
