"""SimCloud's real-CSMS behaviours: serial processing, slow answers, ConcurrentTx, restarts.

A frame-level client (``tests.conftest.raw_charger``) puts exactly the frames a test writes on
the wire, so two CALLs can overlap the way a gateway that stopped waiting sends them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from edgegw.sim.cloud import (
    CALL_IN_PROGRESS,
    IncomingCall,
    SimCloud,
    Stall,
    nth_call,
    stall_between,
)
from edgegw.tasks import TaskOwner
from tests.conftest import RawCharger, raw_charger

TAG = "04A1B2C3"
BOOT = {"chargePointVendor": "edgegw-test", "chargePointModel": "raw"}


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def incoming(action: str, number: int = 1, action_number: int = 1) -> IncomingCall:
    return IncomingCall("CP-1", action, {}, number, action_number, 0.0)


def start(tag: str = TAG, connector: int = 1, meter: int = 0) -> dict[str, Any]:
    return {
        "connectorId": connector,
        "idTag": tag,
        "meterStart": meter,
        "timestamp": "2026-12-07T10:00:00Z",
    }


def stop(tx: int, meter: int = 100) -> dict[str, Any]:
    return {"transactionId": tx, "meterStop": meter, "timestamp": "2026-12-07T11:00:00Z"}


async def send_call(charger: RawCharger, message_id: str, action: str, payload: Any) -> None:
    await charger.send([2, message_id, action, payload])


@pytest.fixture
def stall() -> Stall:
    return Stall()


@pytest.fixture
async def serial_cloud(stall: Stall) -> AsyncIterator[SimCloud]:
    async with SimCloud(accepted_tags={TAG}, serial=True, delay_answers=stall) as cloud:
        yield cloud


# ------------------------------------------------------------------ serial processing


async def test_a_serial_cloud_refuses_a_call_while_one_is_pending(
    serial_cloud: SimCloud, stall: Stall
) -> None:
    cloud = serial_cloud
    async with raw_charger(cloud.url, "CP-1") as charger:
        stall.begin(60)
        await send_call(charger, "a", "StartTransaction", start())
        held = await cloud.wait_held()
        assert (held.action, held.number) == ("StartTransaction", 1)
        await send_call(charger, "b", "Heartbeat", {})
        refusal = await charger.recv()
        assert refusal == [4, "b", "GenericError", CALL_IN_PROGRESS, {}]
        assert [(r.message_id, r.action) for r in cloud.refused] == [("b", "Heartbeat")]

        stall.end()
        cloud.release_delayed()  # the backend recovers: the pending CALL is answered after all
        answer = await charger.recv()
        assert answer[:2] == [3, "a"] and answer[2]["transactionId"] == 1
        # Nothing pending any more: the next CALL is processed.
        assert (await charger.call("Heartbeat", {}))[0] == 3
    assert len(cloud.refused) == 1
    assert stall.stalled == 1
    # The record shows every frame in order, the refused CALL and its CALLERROR included.
    assert [(r.direction, r.message_type, r.message_id) for r in cloud.records[:4]] == [
        ("in", 2, "a"),
        ("in", 2, "b"),
        ("out", 4, "b"),
        ("out", 3, "a"),
    ]


async def test_a_cloud_that_is_not_serial_answers_overlapping_calls_in_turn() -> None:
    async with (
        SimCloud(delay_answers=nth_call(1, 0.2)) as cloud,
        raw_charger(cloud.url, "CP-1") as charger,
    ):
        await send_call(charger, "a", "Heartbeat", {})
        await cloud.wait_held()
        await send_call(charger, "b", "Heartbeat", {})
        assert [(await charger.recv())[:2] for _ in range(2)] == [[3, "a"], [3, "b"]]
    assert cloud.refused == []


async def test_a_serial_cloud_still_reads_the_answers_to_its_own_calls(
    serial_cloud: SimCloud, stall: Stall
) -> None:
    cloud = serial_cloud
    tasks = TaskOwner("test")
    async with raw_charger(cloud.url, "CP-1") as charger:
        stall.begin(60)
        await send_call(charger, "a", "Heartbeat", {})
        await cloud.wait_held()
        reset = tasks.spawn(cloud.call("CP-1", "Reset", {"type": "Soft"}), "reset")
        call = await charger.recv()
        assert call[0] == 2 and call[2] == "Reset"
        await charger.send([3, call[1], {"status": "Accepted"}])
        assert await reset == {"status": "Accepted"}  # while the Heartbeat is still pending
        cloud.release_delayed()
        assert (await charger.recv())[:2] == [3, "a"]
    await tasks.close()
    assert cloud.refused == []


async def test_each_connection_of_a_serial_cloud_has_its_own_pending_call(
    serial_cloud: SimCloud, stall: Stall
) -> None:
    cloud = serial_cloud
    async with raw_charger(cloud.url, "CP-1") as one, raw_charger(cloud.url, "CP-2") as two:
        stall.begin(60)
        await send_call(one, "a", "Heartbeat", {})
        await cloud.wait_held()
        stall.end()
        assert (await two.call("Heartbeat", {}))[0] == 3  # CP-2 is not held up by CP-1
        cloud.release_delayed()
        assert (await one.recv())[:2] == [3, "a"]
    assert cloud.refused == []


async def test_a_call_pending_when_the_charger_leaves_is_processed_and_its_answer_lost(
    serial_cloud: SimCloud, stall: Stall
) -> None:
    cloud = serial_cloud
    async with raw_charger(cloud.url, "CP-1") as charger:
        stall.begin(60)
        await send_call(charger, "a", "StartTransaction", start())
        await cloud.wait_held()
    await cloud.wait_disconnected("CP-1")
    cloud.release_delayed()
    answer = await cloud.wait_for(lambda r: r.direction == "out" and r.message_id == "a")
    assert answer.payload["transactionId"] == 1
    assert ("CP-1", 1) in cloud.transactions  # the CSMS committed it ...
    await cloud.wait_for(lambda _r: "a" in cloud.unsent)  # ... and its answer never left


# ------------------------------------------------------------------ answer delays


def test_nth_call_delays_only_the_chosen_call() -> None:
    every = nth_call(2, 5.0)
    assert [every(incoming("Heartbeat", n)) for n in (1, 2, 3)] == [0.0, 5.0, 0.0]
    starts = nth_call(2, 7.0, action="StartTransaction")
    assert starts(incoming("StartTransaction", number=9, action_number=2)) == 7.0
    assert starts(incoming("StartTransaction", number=2, action_number=1)) == 0.0
    assert starts(incoming("MeterValues", number=2, action_number=2)) == 0.0
    other = nth_call(1, 3.0, charger_id="CP-2")
    assert other(incoming("Heartbeat")) == 0.0


def test_stall_between_holds_calls_until_the_end_of_the_window() -> None:
    clock = FakeClock(100.0)
    delay = stall_between(110.0, 115.0, clock=clock)
    assert delay(incoming("Heartbeat")) == 0.0
    clock.now = 111.0
    assert delay(incoming("Heartbeat")) == 4.0
    clock.now = 115.0
    assert delay(incoming("Heartbeat")) == 0.0


def test_a_stall_holds_what_arrives_while_it_lasts() -> None:
    clock = FakeClock()
    stall = Stall(clock)
    assert stall(incoming("Heartbeat")) == 0.0
    stall.begin(5.0)
    clock.now += 2.0
    assert stall.active and stall(incoming("Heartbeat")) == 3.0
    stall.begin(1.0)  # a shorter stall does not cut the current one
    assert stall(incoming("Heartbeat")) == 3.0
    stall.end()
    assert stall(incoming("Heartbeat")) == 0.0
    assert stall.stalled == 2


async def test_the_delay_function_sees_each_call_numbered_per_charger() -> None:
    seen: list[tuple[str, str, int, int]] = []

    def record(call: IncomingCall) -> float:
        seen.append((call.charger_id, call.action, call.number, call.action_number))
        return 0.0

    cloud = SimCloud(delay_answers=record)
    await cloud.start()
    try:
        async with raw_charger(cloud.url, "CP-1") as one:
            await one.call("BootNotification", BOOT)
            await one.call("Heartbeat", {})
        await cloud.stop()
        await cloud.start()  # the count goes on across a restart and a new connection
        async with raw_charger(cloud.url, "CP-1") as one, raw_charger(cloud.url, "CP-2") as two:
            await one.call("Heartbeat", {})
            await two.call("Heartbeat", {})
    finally:
        await cloud.stop()
    assert seen == [
        ("CP-1", "BootNotification", 1, 1),
        ("CP-1", "Heartbeat", 2, 1),
        ("CP-1", "Heartbeat", 3, 2),
        ("CP-2", "Heartbeat", 1, 1),
    ]


# ------------------------------------------------------------------ transactions


async def test_concurrent_tx_for_a_card_with_an_open_transaction_at_that_charger() -> None:
    async with (
        SimCloud(accepted_tags={TAG, "CAFE0001"}, concurrent_tx=True) as cloud,
        raw_charger(cloud.url, "CP-1") as one,
        raw_charger(cloud.url, "CP-2") as two,
    ):
        assert (await one.call("StartTransaction", start()))[2]["transactionId"] == 1
        again = await one.call("StartTransaction", start(connector=2, meter=5))
        assert again[2] == {"transactionId": 0, "idTagInfo": {"status": "ConcurrentTx"}}
        lower = await one.call("StartTransaction", start(TAG.lower(), connector=2))
        assert lower[2]["idTagInfo"]["status"] == "ConcurrentTx"  # idTags compare folded
        # Another card at the same charger, the same card at another charger: new sessions.
        assert (await one.call("StartTransaction", start("CAFE0001", 2)))[2]["transactionId"] == 2
        assert (await two.call("StartTransaction", start()))[2]["transactionId"] == 1
        await one.call("StopTransaction", stop(1))
        after = await one.call("StartTransaction", start(meter=100))
        assert after[2] == {"transactionId": 3, "idTagInfo": {"status": "Accepted"}}
    assert sorted(cloud.transactions) == [("CP-1", 1), ("CP-1", 2), ("CP-1", 3), ("CP-2", 1)]


async def test_without_concurrent_tx_every_start_is_a_new_transaction() -> None:
    async with SimCloud() as cloud, raw_charger(cloud.url, "CP-1") as charger:
        assert (await charger.call("StartTransaction", start()))[2]["transactionId"] == 1
        assert (await charger.call("StartTransaction", start()))[2]["transactionId"] == 2


async def test_a_restart_forgets_nothing_and_drops_what_was_pending(stall: Stall) -> None:
    cloud = SimCloud(accepted_tags={TAG}, serial=True, concurrent_tx=True, delay_answers=stall)
    await cloud.start()
    try:
        port = cloud.port
        async with raw_charger(cloud.url, "CP-1") as charger:
            assert (await charger.call("StartTransaction", start()))[2]["transactionId"] == 1
            stall.begin(60)
            await send_call(charger, "pending", "StartTransaction", start("CAFE0001"))
            await cloud.wait_held()
            await send_call(charger, "overlap", "Heartbeat", {})
            assert (await charger.recv())[:2] == [4, "overlap"]
            await cloud.stop()  # the CSMS goes down while processing "pending"
            await charger.ws.wait_closed()
        stall.end()
        await cloud.start()
        assert cloud.port == port
        async with raw_charger(cloud.url, "CP-1") as charger:
            # The open transaction is remembered: the same card is a ConcurrentTx ...
            again = await charger.call("StartTransaction", start(meter=7))
            assert again[2]["idTagInfo"]["status"] == "ConcurrentTx"
            await charger.call("StopTransaction", stop(1))
            # ... the dropped start had no effect, and the numbering goes on.
            later = await charger.call("StartTransaction", start("CAFE0001"))
            assert later[2]["transactionId"] == 2
    finally:
        await cloud.stop()
    assert [r.message_id for r in cloud.refused] == ["overlap"]
    pending = [r for r in cloud.records if r.message_id == "pending"]
    assert [(r.direction, r.message_type) for r in pending] == [("in", 2)]  # never answered
    assert sorted(cloud.transactions) == [("CP-1", 1), ("CP-1", 2)]
    assert cloud.transactions[("CP-1", 1)].stopped
    starts = cloud.find("StartTransaction", direction="in")
    assert [json.loads(r.raw)[3]["idTag"] for r in starts] == [TAG, "CAFE0001", TAG, "CAFE0001"]
