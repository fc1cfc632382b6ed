"""Charger actions on an OCPP 2.0.1 station: stop, unlock, reset and enable/disable are sent
in 2.0.1 form (RequestStopTransaction with the station's own string id, UnlockConnector with
evseId + connectorId, Reset OnIdle/Immediate, ChangeAvailability with operationalStatus and
evse), each valid against the ``ocpp`` library's v201 schemas. A real daemon relaying to a
CSMS written on the ``ocpp`` library's v201 package, a simulated 2.0.1 station, the control
socket and a real mosquitto, all on real sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ocpp.messages import get_validator

from edgegw.control import ControlClient, RemoteError
from edgegw.daemon import Gateway
from edgegw.sim import JsonDict
from edgegw.sim.charger201 import SimCharger201
from edgegw.store.journal import EventFilter
from tests.conftest import GatewayFactory, gateway_url
from tests.mqtt.conftest import PREFIX, Mosquitto, Recorder, mosquitto, publish, telemetry  # noqa: F401
from tests.v201.test_relay201 import CHARGERS, Cloud201, cloud201  # noqa: F401

CARD = "04A1B2C3"


def _station(gateway: Gateway) -> SimCharger201:
    """A 2.0.1 station that answers the actions the simulator leaves to a test."""
    return SimCharger201(
        "CS201",
        gateway_url(gateway),
        handlers={
            "UnlockConnector": lambda _p: {"status": "Unlocked"},
            "ChangeAvailability": lambda _p: {"status": "Accepted"},
        },
    )


def _valid(action: str, payload: JsonDict) -> JsonDict:
    get_validator(2, action, "2.0.1").validate(payload)
    return payload


async def _running(gateway: Gateway, cs: SimCharger201) -> str:
    """Start a session on EVSE 1; its transaction id once the live state has it."""
    await cs.boot()
    await cs.status(1, "Occupied")
    tx, _ = await cs.start(1, CARD)
    assert gateway.live is not None
    async with asyncio.timeout(10):
        while True:
            charger = gateway.live.charger("CS201")
            if charger is not None and any(c.session for c in charger.connectors):
                return tx.transaction_id
            await gateway.live.wait_refreshed()


async def test_the_actions_reach_a_201_station_in_201_form(
    cloud201: Cloud201,  # noqa: F811
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(cloud_url=cloud201.url, chargers=CHARGERS)
    async with (
        _station(gateway) as cs,
        await ControlClient.connect(gateway.config.control.socket) as client,
    ):
        tx = await _running(gateway, cs)
        stopped = await client.call("chargers.stop_session", charger="CS201")
        assert stopped["action"] == "RequestStopTransaction" and stopped["status"] == "Accepted"
        assert stopped["sessions"] == [{"connector": 1, "transaction_id": tx, "status": "Accepted"}]
        by_id = await client.call("chargers.stop_session", charger="CS201", transaction_id=tx)
        assert by_id["status"] == "Accepted"

        unlocked = await client.call("chargers.unlock", charger="CS201", connector=1)
        assert unlocked["status"] == "Unlocked"
        second_plug = await client.call("chargers.unlock", charger="CS201", connector=2, plug=2)
        soft = await client.call("chargers.reset", charger="CS201", type="Soft")
        now = await client.call("chargers.reset", charger="CS201", type="immediate", evse=1)
        with pytest.raises(RemoteError, match="'OnIdle' or 'Immediate'"):
            await client.call("chargers.reset", charger="CS201", type="Sideways")
        off = await client.call("chargers.availability", charger="CS201", available=False)
        evse_on = await client.call(
            "chargers.availability", charger="CS201", available=True, connector=2
        )
        assert all(r["status"] == "Accepted" for r in (soft, now, off, evse_on))

    sent = [(a, p) for a, p in cs.calls_received if a not in {"GetVariables", "SetVariables"}]
    assert [(a, _valid(a, p)) for a, p in sent] == [
        ("RequestStopTransaction", {"transactionId": tx}),
        ("RequestStopTransaction", {"transactionId": tx}),
        ("UnlockConnector", {"evseId": 1, "connectorId": 1}),
        ("UnlockConnector", {"evseId": 2, "connectorId": 2}),
        ("Reset", {"type": "OnIdle"}),
        ("Reset", {"type": "Immediate", "evseId": 1}),
        ("ChangeAvailability", {"operationalStatus": "Inoperative"}),
        ("ChangeAvailability", {"operationalStatus": "Operative", "evse": {"id": 2}}),
    ]
    assert second_plug["request"] == {"evseId": 2, "connectorId": 2}
    assert gateway.journal is not None
    (entry, _) = await gateway.journal.read(
        5, EventFilter(kinds=("action.RequestStopTransaction",))
    )
    assert entry.message.startswith(f"stop transaction {tx} on EVSE 1: Accepted")


async def test_a_201_session_stopped_over_mqtt(
    cloud201: Cloud201,  # noqa: F811
    make_gateway: GatewayFactory,
    mosquitto: Mosquitto,  # noqa: F811
) -> None:
    gateway = await make_gateway(
        cloud_url=cloud201.url, chargers=CHARGERS, mqtt=mosquitto.section(commands_enabled=True)
    )
    stop = f"{PREFIX}/charger/CS201/stop/set"
    async with (
        telemetry(gateway) as (_live, publisher),
        Recorder(mosquitto) as recorder,
        _station(gateway) as cs,
    ):
        await publisher.wait_online()
        tx = await _running(gateway, cs)
        await publish(mosquitto, stop, f'{{"transaction_id": "{tx}", "request_id": "s1"}}')
        result: dict[str, Any] = await recorder.wait_json(
            stop.removesuffix("/set") + "/result", lambda r: r["request_id"] == "s1"
        )
        assert result["ok"] is True, result
        assert result["detail"] == f"stopping connector 1 (transaction {tx})"
    wanted = ("RequestStopTransaction", {"transactionId": tx})
    assert wanted in cs.calls_received and _valid(*wanted)
    assert not [a for a, _p in cs.calls_received if a == "RemoteStopTransaction"]
