"""A 2.0.1 station's card cache keeps the kinds of token apart (issue 23): the cloud's answer
about an RFID card (``ISO14443``) says nothing of a keypad code (``KeyCode``) of the same text,
nor the other way round. Real sockets on port 0, the cloud made of the ``ocpp`` library's v201
handlers (it accepts the token ``GOOD`` whatever its type)."""

from __future__ import annotations

import pytest

from edgegw.sim.charger201 import SimCharger201
from tests.conftest import GatewayFactory, gateway_url
from tests.v201.test_offline201 import _cloud_server, _stop
from tests.v201.test_relay201 import Cloud201

CHARGERS = [{"id": "CS201", "idtag_format": "hex_reversed"}]


@pytest.mark.parametrize(("learnt", "other"), [("ISO14443", "KeyCode"), ("KeyCode", "ISO14443")])
async def test_an_answer_about_one_kind_of_token_decides_only_that_kind_offline(
    make_gateway: GatewayFactory, learnt: str, other: str
) -> None:
    cloud = Cloud201()
    server, _ = await _cloud_server(cloud)
    gateway = await make_gateway(cloud_url=cloud.url, chargers=CHARGERS)
    async with SimCharger201("CS201", gateway_url(gateway)) as cs:
        try:
            await cs.boot()
            assert (await cs.authorize("GOOD", learnt))["idTokenInfo"]["status"] == "Accepted"
        finally:
            await _stop(server)
        # offline: the kind the cloud answered about is accepted from the cache, the other not
        assert (await cs.authorize("GOOD", learnt))["idTokenInfo"]["status"] == "Accepted"
        assert (await cs.authorize("GOOD", other))["idTokenInfo"]["status"] == "Invalid"
    heard = [t["type"] for a, t in cloud.heard["CS201"] if a == "Authorize"]
    assert heard == [learnt]  # the other two were answered by the gateway
