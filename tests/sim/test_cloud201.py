"""SimCloud201, the simulated OCPP 2.0.1 CSMS: answers, records, real-CSMS behaviours.

Stations are :class:`~edgegw.sim.charger201.SimCharger201` or a frame-level client
(``tests.conftest.raw_charger``) when a test needs two CALLs to overlap on the wire.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from ocpp.v201 import call_result
from ocpp.v201.enums import Action
from websockets.exceptions import ConnectionClosed

from edgegw.sim.charger201 import SimCharger201
from edgegw.sim.cloud import CALL_IN_PROGRESS, IncomingCall, Stall, nth_call
from edgegw.sim.cloud201 import SimCloud201, by_transaction
from edgegw.tasks import TaskOwner
from tests.conftest import raw_charger

CARD = "04A1B2C3"
BLOCKED = "04B10C4D"


@pytest.fixture
async def cloud() -> AsyncIterator[SimCloud201]:
    async with SimCloud201(
        tokens={CARD: "Accepted", BLOCKED: "Blocked"}, personal_message="from the cloud"
    ) as sim:
        yield sim


def _valid(action: str, answer: dict[str, object]) -> None:
    """The answer fits the ocpp library's 2.0.1 dataclass for ``action`` (no unknown field)."""
    names = {
        "BootNotification": call_result.BootNotification,
        "Authorize": call_result.Authorize,
        "TransactionEvent": call_result.TransactionEvent,
        "Heartbeat": call_result.Heartbeat,
    }
    fields = set(names[action].__dataclass_fields__)
    snake = {"".join("_" + c.lower() if c.isupper() else c for c in k) for k in answer}
    assert snake <= fields, (action, answer)


async def test_a_station_is_answered_and_its_transaction_events_recorded(
    cloud: SimCloud201,
) -> None:
    async with SimCharger201("CS-1", cloud.url) as cs:
        boot = await cs.boot()
        assert boot["status"] == "Accepted" and boot["interval"] == 300
        _valid("BootNotification", boot)
        assert (await cs.authorize(CARD))["idTokenInfo"] == {"status": "Accepted"}
        assert (await cs.authorize(CARD.lower()))["idTokenInfo"] == {"status": "Accepted"}
        assert (await cs.authorize(BLOCKED))["idTokenInfo"] == {"status": "Blocked"}
        assert (await cs.authorize("04FFFFFF"))["idTokenInfo"] == {"status": "Invalid"}
        tx, started = await cs.start(1, CARD)
        _valid("TransactionEvent", started)
        assert started["idTokenInfo"] == {"status": "Accepted"}
        assert started["updatedPersonalMessage"] == {"format": "UTF8", "content": "from the cloud"}
        updated = await cs.meter(1, 16.0, 1500.0)
        assert "idTokenInfo" not in updated  # only for an event with an idToken
        await cs.stop(1)
    events = cloud.events
    assert [(e.event_type, e.seq_no, e.offline) for e in events] == [
        ("Started", 0, False),
        ("Updated", 1, False),
        ("Ended", 2, False),
    ]
    assert {e.transaction_id for e in events} == {tx.transaction_id}
    assert cloud.seq_nos("CS-1", tx.transaction_id) == [0, 1, 2]
    assert by_transaction(events) == {("CS-1", tx.transaction_id): [0, 1, 2]}
    # Each recorded event is the frame as the station sent it, byte for byte.
    sent = [t for t in cs.sent if json.loads(t)[2] == Action.transaction_event]
    assert [e.raw for e in events] == sent
    assert all(e.timestamp == json.loads(e.raw)[3]["timestamp"] for e in events)


async def test_the_offline_flag_is_recorded_as_it_arrived(cloud: SimCloud201) -> None:
    async with raw_charger(cloud.url, "CS-2", subprotocols=["ocpp2.0.1"]) as station:
        event = {
            "eventType": "Updated",
            "timestamp": "2026-12-07T10:00:00.000Z",
            "triggerReason": "MeterValuePeriodic",
            "seqNo": 7,
            "transactionInfo": {"transactionId": "tx-a"},
            "offline": True,
        }
        answer = await station.call("TransactionEvent", event)
        assert answer[0] == 3
    (taken,) = cloud.events
    assert (taken.transaction_id, taken.seq_no, taken.offline) == ("tx-a", 7, True)


async def test_a_second_call_while_one_is_pending_is_refused() -> None:
    stall = Stall()
    async with (
        SimCloud201(delay_answers=stall) as cloud,
        raw_charger(cloud.url, "CS-3", subprotocols=["ocpp2.0.1"]) as station,
    ):
        stall.begin(60)
        await station.send([2, "a", "Heartbeat", {}])
        await station.send([2, "b", "Heartbeat", {}])
        refused = await station.recv()
        assert refused == [4, "b", "GenericError", CALL_IN_PROGRESS, {}]
        assert [r.message_id for r in cloud.refused] == ["b"]
        stall.end()
        await cloud.stop()  # the held CALL is dropped, not answered
        assert cloud.dropped == ["a"]


async def test_a_cloud_that_is_not_serial_answers_overlapping_calls_in_turn() -> None:
    async with (
        SimCloud201(serial=False, delay_answers=0.05) as cloud,
        raw_charger(cloud.url, "CS-4", subprotocols=["ocpp2.0.1"]) as station,
    ):
        await station.send([2, "a", "Heartbeat", {}])
        await station.send([2, "b", "Heartbeat", {}])
        assert [(await station.recv())[:2], (await station.recv())[:2]] == [[3, "a"], [3, "b"]]
        assert cloud.refused == []


async def test_an_outage_keeps_the_port_and_the_record_and_drops_what_was_pending() -> None:
    second = nth_call(2, 60, action="TransactionEvent")
    arrived = asyncio.Event()

    def delay(call: IncomingCall) -> float:
        seconds = second(call)
        if seconds:
            arrived.set()
        return seconds

    cloud = SimCloud201(delay_answers=delay)
    await cloud.start()
    port = cloud.port
    cs = SimCharger201("CS-5", cloud.url, call_timeout=30)
    tasks = TaskOwner("test-outage")
    try:
        await cs.connect()
        tx, _ = await cs.start(1, None, trigger="CablePluggedIn")
        pending = tasks.spawn(cs.meter(1, 10.0, 100.0), "meter")
        async with asyncio.timeout(5):
            await arrived.wait()  # the second event is being processed at the cloud
        await cloud.stop()  # the CSMS goes down processing it: no effect, no answer
        with pytest.raises((ConnectionError, ConnectionClosed)):
            await pending
        assert not cloud.running and cloud.seq_nos("CS-5") == [0]
        assert len(cloud.dropped) == 1
        await cloud.start()
        assert cloud.port == port
        await cs.close()
        await cs.connect()
        await cs.stop(1)
    finally:
        await tasks.close("test over")
        await cs.close()
        await cloud.stop()
    assert cloud.seq_nos("CS-5", tx.transaction_id) == [0, 2]


async def test_a_client_without_ocpp201_is_closed_after_the_handshake(
    cloud: SimCloud201,
) -> None:
    async with raw_charger(cloud.url, "CS-6", subprotocols=["ocpp1.6"]) as station:
        with pytest.raises(ConnectionClosed) as closed:
            await station.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1002
    assert cloud.offered == [("ocpp1.6",)]


async def test_the_cloud_calls_a_station(cloud: SimCloud201) -> None:
    async with SimCharger201("CS-7", cloud.url) as cs:
        await cs.boot()
        await cloud.wait_connected("CS-7")
        tx, _ = await cs.start(1, CARD)
        answer = await cloud.call(
            "CS-7", "RequestStopTransaction", {"transactionId": tx.transaction_id}
        )
        assert answer == {"status": "Accepted"}
    with pytest.raises(ConnectionError):
        await cloud.call("CS-7", "Reset", {"type": "Immediate"})
