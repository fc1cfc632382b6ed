"""Every OCPP 1.6 action, both directions, simulated charger ⇄ gateway ⇄ simulated cloud.

The cloud must not be able to tell the gateway is there: every frame the charger sent arrives
byte for byte, and every answer comes back unchanged. The one exception is the local list
(SendLocalList, GetLocalListVersion): the gateway owns each charger's list and answers those
itself (see ``edgegw.auth``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from edgegw.sim.charger import SimCharger
from edgegw.sim.cloud import CloudRecord, SimCloud
from tests.conftest import GatewayFactory, gateway_url

PROFILE = {
    "connectorId": 1,
    "csChargingProfiles": {
        "chargingProfileId": 7,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}],
        },
    },
}

# (action, payload, a key the charger's answer must have)
CLOUD_CALLS = [
    ("GetConfiguration", {"key": ["HeartbeatInterval"]}, "configurationKey"),
    ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "120"}, "status"),
    ("ChangeAvailability", {"connectorId": 2, "type": "Inoperative"}, "status"),
    ("ClearCache", {}, "status"),
    ("DataTransfer", {"vendorId": "edgegw", "messageId": "ping", "data": "x"}, "status"),
    ("UnlockConnector", {"connectorId": 2}, "status"),
    ("SetChargingProfile", PROFILE, "status"),
    ("GetCompositeSchedule", {"connectorId": 1, "duration": 3600}, "status"),
    ("ClearChargingProfile", {"id": 7}, "status"),
    (
        "ReserveNow",
        {
            "connectorId": 2,
            "expiryDate": "2030-01-01T00:00:00Z",
            "idTag": "TAG1",
            "reservationId": 5,
        },
        "status",
    ),
    ("CancelReservation", {"reservationId": 5}, "status"),
    ("TriggerMessage", {"requestedMessage": "Heartbeat"}, "status"),
    ("GetDiagnostics", {"location": "ftp://example.com/diag"}, None),
    (
        "UpdateFirmware",
        {"location": "ftp://example.com/fw.bin", "retrieveDate": "2030-01-01T00:00:00Z"},
        None,
    ),
    ("RemoteStartTransaction", {"connectorId": 1, "idTag": "TAG1"}, "status"),
]


def cloud_boot(cloud: SimCloud) -> CloudRecord:
    return cloud.find("BootNotification", direction="in")[0]


@pytest.fixture
async def cloud() -> AsyncIterator[SimCloud]:
    async with SimCloud(accepted_tags={"TAG1"}) as sim:
        yield sim


async def test_every_action_both_ways(cloud: SimCloud, make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(cloud_url=cloud.url)
    charger = SimCharger("CP1", gateway_url(gateway), connectors=2)
    async with charger:
        # Charger → cloud.
        assert (await charger.boot())["status"] == "Accepted"
        await charger.heartbeat()
        await charger.status(1, "Available")
        assert (await charger.authorize("TAG1"))["idTagInfo"]["status"] == "Accepted"
        assert (await charger.authorize("NOPE"))["idTagInfo"]["status"] == "Invalid"
        tx = await charger.start_transaction(1, "TAG1")
        await charger.meter_values(1)
        await charger.stop_transaction(1)
        await charger.data_transfer("edgegw", "hello")
        await charger.firmware_status("Idle")
        await charger.diagnostics_status("Idle")
        assert (charger.charger_id, tx) in cloud.transactions

        # Cloud → charger.
        for action, payload, key in CLOUD_CALLS:
            answer = await cloud.call("CP1", action, payload)
            if key is not None:
                assert key in answer, (action, answer)
        stop = await cloud.call("CP1", "RemoteStopTransaction", {"transactionId": 2})
        assert "status" in stop
        assert (await cloud.call("CP1", "Reset", {"type": "Soft"}))["status"] == "Accepted"
        # The charger's follow-ups (diagnostics upload, firmware install, reboot) come on their
        # own; let them all reach the cloud before the charger disconnects.
        await cloud.wait_for(lambda r: r.payload.get("status") == "Uploaded")
        await cloud.wait_for(lambda r: r.payload.get("status") == "Installed")
        await cloud.wait_for(
            lambda r: r.action == "BootNotification" and r.raw != cloud_boot(cloud).raw
        )
        await cloud.wait_for(lambda r: r.direction == "in" and r.raw == charger.sent[-1])

    # Everything the charger sent reached the cloud byte for byte, in order.
    cloud_in = [r.raw for r in cloud.records if r.direction == "in" and r.charger_id == "CP1"]
    assert cloud_in == charger.sent
    # The local list is the gateway's: the cloud's list calls are answered, not relayed.
    received = [a for a, _ in charger.received]
    assert "SendLocalList" not in received and "GetLocalListVersion" not in received
    # Every cloud call reached the charger with its payload intact.
    received = [a for a, _ in charger.received]
    for action, payload, _ in CLOUD_CALLS:
        assert action in received
        assert (action, payload) in charger.received
    # The gateway recorded the sessions with the cloud's transaction ids.
    assert gateway.store is not None
    rows = await gateway.store.transactions("CP1")
    assert rows[0].transaction_id == tx and rows[0].meter_stop is not None
    assert all(row.origin == "cloud" for row in rows)
    # Answers to cloud calls carried the same ids both ways.
    out_ids = {r.message_id for r in cloud.records if r.direction == "out" and r.message_type == 2}
    in_answers = {
        r.message_id for r in cloud.records if r.direction == "in" and r.message_type == 3
    }
    assert out_ids <= in_answers
    assert all(json.loads(raw)[0] in (2, 3, 4) for raw in cloud_in)


async def test_standalone_site_serves_chargers(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(auth={"unknown_cards": "accept"})
    charger = SimCharger("CP1", gateway_url(gateway))
    async with charger:
        assert (await charger.boot())["status"] == "Accepted"
        assert (await charger.authorize("ANY"))["idTagInfo"]["status"] == "Accepted"
        tx1 = await charger.start_transaction(1, "ANY")
        tx2 = await charger.start_transaction(2, "ANY")
        assert tx2 == tx1 + 1
        await charger.meter_values(1)
        await charger.stop_transaction(1)
    assert gateway.store is not None
    rows = await gateway.store.transactions("CP1")
    assert [(r.transaction_id, r.origin, r.stopped_at is not None) for r in rows] == [
        (tx1, "gateway", True),
        (tx2, "gateway", False),
    ]


async def test_standalone_rejects_unknown_cards_by_default(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway()
    charger = SimCharger("CP1", gateway_url(gateway))
    async with charger:
        await charger.boot()
        assert (await charger.authorize("ANY"))["idTagInfo"]["status"] == "Invalid"
