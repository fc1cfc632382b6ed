"""A 2.0.1 charger's invalid transaction messages reach the cloud; other invalid calls are
refused. Real sockets on port 0."""

from __future__ import annotations

import json

import pytest

from edgegw.sim import SimCallError
from edgegw.sim.charger201 import SimCharger201
from tests.conftest import GatewayFactory, gateway_url
from tests.v201.test_relay201 import CHARGERS, Cloud201, cloud201  # noqa: F401


def _invalid_transaction_event() -> dict[str, object]:
    """Valid but for a measurand context outside 2.0.1's enum (Alfen sends such in 1.6)."""
    return {
        "eventType": "Updated",
        "timestamp": "2026-12-07T10:00:00Z",
        "triggerReason": "MeterValuePeriodic",
        "seqNo": 1,
        "transactionInfo": {"transactionId": "tx-1"},
        "meterValue": [
            {
                "timestamp": "2026-12-07T10:00:00Z",
                "sampledValue": [
                    {"value": 16.0, "measurand": "Current.Import", "context": "CurrentMax"}
                ],
            }
        ],
    }


async def test_invalid_transaction_messages_are_relayed_not_refused(
    cloud201: Cloud201,  # noqa: F811
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(cloud_url=cloud201.url, chargers=CHARGERS)
    event = _invalid_transaction_event()
    meter_values = {"evseId": 1, "meterValue": event["meterValue"]}
    async with SimCharger201("CS201", gateway_url(gateway)) as cs:
        await cs.boot()
        for action, payload in (("TransactionEvent", event), ("MeterValues", meter_values)):
            message_id = cs.next_id()
            text = json.dumps([2, message_id, action, payload])
            await cs.send_raw(text)
            await cs.heartbeat()  # a round trip through the cloud: the call went before it
            assert cloud201.raw("CS201", "in", message_id) == text  # byte for byte
        with pytest.raises(SimCallError) as refused:  # other invalid calls: still refused
            await cs.call("Authorize", {"idToken": {"idToken": "GOOD"}})  # no type
        assert refused.value.code == "OccurrenceConstraintViolation"
