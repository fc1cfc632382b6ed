"""A transaction message whose relayed answer is lost on the way reaches the cloud once.

The cloud is slow with one of the charger's transaction messages. Meanwhile the charger's
network fails without a word: the gateway does not hear of it, passes the cloud's answer on
into the dead connection, and the charger never sees it. (On a busy gateway the same happens
when a charger's close arrives a moment after the cloud's answer: the flaky ``[while away]``
failure of :mod:`tests.sync.test_resent_start`.) The charger connects again without booting
and sends the message again, as OCPP 1.6 asks of a transaction message that got no answer.
The gateway must recognise the copy and answer it as the cloud did: the cloud receives every
transaction message exactly once, and the charger keeps the cloud's transaction id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path

import pytest

from edgegw.control.client import ControlClient
from edgegw.proxy.frames import CallResult, make_call, make_error, make_result
from edgegw.proxy.local import LocalResponder
from edgegw.sim.cloud import SimCloud, nth_call
from edgegw.store.store import Store
from edgegw.tasks import TaskOwner
from tests.sync.driver import JsonDict, RetryingCharger
from tests.sync.exactly_once import (
    HANG_GUARD_S,
    assert_exactly_once,
    everything_arrived,
    gateway_process,
)
from tests.sync.test_outage import KNOWN, Charger, _AcceptEveryCard, charge
from tests.sync.test_resent_start import DroppingCharger


async def answer_passed_on(control: Path, message_id: str) -> None:
    """Until the gateway has sent the charger the answer to ``message_id`` (its message log)."""
    prefix = f"[3,{json.dumps(message_id)},"
    async with await ControlClient.connect(control) as client:
        while True:
            result = await client.call("messages", charger="CP00", limit=50)
            if any(
                f["direction"] == ">charger" and f["frame"].startswith(prefix)
                for f in result["frames"]
            ):
                return
            await asyncio.sleep(0.05)  # polling the daemon's message log


@pytest.mark.parametrize(
    "action",
    [
        "StartTransaction",
        "MeterValues",
        "StopTransaction",
    ],
)
async def test_a_transaction_message_whose_answer_is_lost_on_the_way_reaches_the_cloud_once(
    tmp_path: Path, action: str
) -> None:
    cloud = SimCloud(
        accepted_tags=set(KNOWN),
        serial=True,
        concurrent_tx=True,
        delay_answers=nth_call(1, 60.0, action=action),  # until released
    )
    await cloud.start()
    copies = 0
    resent = asyncio.Event()

    def on_sent(_charger: RetryingCharger, sent: str, _payload: JsonDict) -> None:
        nonlocal copies
        if sent == action:
            copies += 1
            if copies == 2:
                resent.set()

    tasks = TaskOwner("lost-answer-test")
    try:
        async with asyncio.timeout(HANG_GUARD_S), gateway_process(tmp_path, cloud.url) as gateway:
            up = gateway.process.up
            driver = DroppingCharger("CP00", gateway.url, gateway_up=up, on_sent=on_sent)
            charger = Charger(0, driver, register_wh=4_000_000)
            try:
                await driver.call("Heartbeat", {})  # boots while the cloud answers at once
                session = tasks.spawn(charge(charger, KNOWN[0], samples=2), "session")
                held = await cloud.wait_held(lambda c: c.action == action)
                up.clear()  # the charger waits for its network before connecting again
                lost = driver.lose_network()
                assert lost is not None
                cloud.release_delayed()
                await answer_passed_on(tmp_path / "control.sock", lost)
                up.set()
                await resent.wait()  # the charger is back and has sent the message again
                await session
                with contextlib.suppress(TimeoutError):
                    await cloud.wait_for(lambda _r: everything_arrived(cloud, [driver]), 10)
                status = await gateway.settled(lambda s: s["queued"] == 0, 5)
            finally:
                await tasks.close("test over")
                await driver.close()
    finally:
        await cloud.stop()

    assert driver.connections == 2 and driver.boots == 1  # back without booting again
    assert assert_exactly_once(cloud, [driver]) == 1
    answered = [
        a.answer for a in driver.answered if (a.action, a.payload) == (action, held.payload)
    ]
    assert len(answered) == 1  # the first copy's answer was lost
    [received] = [r for r in cloud.records if r.direction == "in" and r.payload == held.payload]
    answer = next(
        r.payload
        for r in cloud.records
        if (r.direction, r.message_id) == ("out", received.message_id)
    )
    assert answered == [answer]  # the copy got the cloud's own answer
    assert charger.sessions[0].transaction_id == 1  # the cloud's id
    assert status["queued"] == 0 and status["parked"] == 0, status
    assert driver.refusals == []
    assert gateway.exit_code == 0, gateway.process.log_tail()
    assert "Traceback" not in gateway.process.log_text()
    with contextlib.closing(sqlite3.connect(tmp_path / "edgegw.db")) as db:
        sessions = db.execute(
            "SELECT transaction_id, stopped_at IS NOT NULL FROM transactions WHERE charger_id = ?",
            ("CP00",),
        ).fetchall()
    assert sessions == [(1, 1)]


async def test_a_copy_of_a_relayed_message_is_answered_as_the_cloud_answered_it(
    tmp_path: Path,
) -> None:
    """The local responder's side: what it keeps of a relayed answer, and what is a copy."""
    store = await Store.open(tmp_path / "edgegw.db")
    try:
        responder = LocalResponder(
            store,
            standalone=False,
            heartbeat_interval=300,
            cards=_AcceptEveryCard(),
            clock=lambda: 1_772_000_000.0,
        )
        stop = {
            "transactionId": 7,
            "idTag": KNOWN[0],
            "meterStop": 900,
            "timestamp": "2026-03-02T07:06:00Z",
            "reason": "Local",
        }
        sent = make_call("CP1-5", "StopTransaction", stop)
        said = make_result("CP1-5", {"idTagInfo": {"status": "Accepted", "parentIdTag": "F"}})
        responder.relayed("CP1", sent, said)
        copy = await responder.answer_if_resent(
            "CP1", make_call("CP1-9", "StopTransaction", dict(stop))
        )
        assert isinstance(copy, CallResult)
        assert (copy.id, copy.payload) == ("CP1-9", said.payload)  # the cloud's own answer

        async def relayed_to_the_cloud(charger: str, action: str, payload: JsonDict) -> bool:
            answer = await responder.answer_if_resent(charger, make_call("x", action, payload))
            return answer is None

        assert await relayed_to_the_cloud("CP1", "StopTransaction", {**stop, "meterStop": 901})
        assert await relayed_to_the_cloud("CP2", "StopTransaction", stop)  # another charger's
        responder.relayed("CP3", sent, make_error("CP1-5", "InternalError", "try again"))
        assert await relayed_to_the_cloud("CP3", "StopTransaction", stop)  # the cloud refused it
        status = {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}
        responder.relayed("CP4", make_call("s", "StatusNotification", status), make_result("s", {}))
        assert await relayed_to_the_cloud("CP4", "StatusNotification", status)  # tx messages only
        # A later transaction message takes the place of the one before.
        values = {"connectorId": 1, "transactionId": 7, "meterValue": [{"timestamp": "T"}]}
        responder.relayed(
            "CP1", make_call("CP1-6", "MeterValues", values), make_result("CP1-6", {})
        )
        assert await relayed_to_the_cloud("CP1", "StopTransaction", stop)
        assert not await relayed_to_the_cloud("CP1", "MeterValues", values)
    finally:
        await store.close()
