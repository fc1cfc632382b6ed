"""A charger that drops its connection while its StartTransaction is on the way (issue 16).

The cloud is up but slow: it holds the charger's StartTransaction. The charger's network goes
(no closing handshake), it connects again without booting and sends the same StartTransaction
again, as OCPP 1.6 asks of a transaction message that got no answer. Either the cloud answers
the first copy while the charger is back and waiting for the second (``"while back"``), or it
answers before the charger is back (``"while away"``), or the gateway passes the cloud's answer
on before it notices that the charger's connection is dead, and the answer is lost on the way
(``"lost on the way"``: the charger's network fails silently, or its close reaches the gateway
just after the cloud's answer). Nothing closes the gateway's connection
to the cloud on its own account, so the cloud must receive the StartTransaction exactly once,
and the charger must end up with one transaction id for the session: the cloud's, or a local
one that every later message reaching the cloud carries as the cloud's (never 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from edgegw.sim.cloud import SimCloud, nth_call
from edgegw.tasks import TaskOwner
from tests.sync.driver import JsonDict, RetryingCharger, _AnswerLost
from tests.sync.exactly_once import (
    HANG_GUARD_S,
    PatientCharger,
    assert_exactly_once,
    everything_arrived,
    gateway_process,
)
from tests.sync.test_outage import KNOWN, Charger, charge


class DroppingCharger(PatientCharger):
    """A charger whose network can fail under it at a moment the test chooses."""

    def drop_connection(self) -> None:
        """The connection ends without a closing handshake; the CALL in flight is unanswered."""
        ws = self._ws
        assert ws is not None, f"{self.charger_id} is not connected"
        ws.transport.abort()

    def lose_network(self) -> str | None:
        """The network fails without a word: nothing the gateway sends on this connection
        reaches the charger any more (the answer on its way is lost), and the gateway is not
        told: the connection stays open at its end until the charger's next one replaces it.

        Returns the message id of the CALL whose answer is lost (None: none in flight)."""
        ws, self._ws = self._ws, None
        assert ws is not None, f"{self.charger_id} is not connected"
        inflight = self._inflight
        if inflight is None or inflight.ws is not ws or inflight.answer.done():
            return None
        inflight.answer.set_exception(_AnswerLost())  # sent again on the next connection
        return inflight.message_id


async def relayed_start_recorded(db_path: Path) -> None:
    """Until the gateway recorded the start the cloud accepted (it passed the answer on first)."""
    while True:
        with contextlib.closing(sqlite3.connect(db_path)) as db:
            row = db.execute(
                "SELECT 1 FROM transactions WHERE charger_id = 'CP00' AND origin = 'cloud'"
            ).fetchone()
        if row is not None:
            return
        await asyncio.sleep(0.05)  # polling the gateway's records


@pytest.mark.parametrize(
    "answered",
    ["while back", "while away", "lost on the way"],
)
async def test_a_start_on_its_way_when_the_charger_drops_reaches_the_cloud_once(
    tmp_path: Path, answered: str
) -> None:
    cloud = SimCloud(
        accepted_tags=set(KNOWN),
        serial=True,
        concurrent_tx=True,
        delay_answers=nth_call(1, 60.0, action="StartTransaction"),  # until released
    )
    await cloud.start()
    starts = 0
    resent = asyncio.Event()

    def on_sent(_charger: RetryingCharger, action: str, _payload: JsonDict) -> None:
        nonlocal starts
        if action == "StartTransaction":
            starts += 1
            if starts == 2:
                resent.set()

    tasks = TaskOwner("resent-start-test")
    try:
        async with asyncio.timeout(HANG_GUARD_S), gateway_process(tmp_path, cloud.url) as gateway:
            up = gateway.process.up
            driver = DroppingCharger("CP00", gateway.url, gateway_up=up, on_sent=on_sent)
            charger = Charger(0, driver, register_wh=4_000_000)
            try:
                await driver.call("Heartbeat", {})  # boots while the cloud answers at once
                session = tasks.spawn(charge(charger, KNOWN[0], samples=2), "session")
                await cloud.wait_held(lambda c: c.action == "StartTransaction")
                if answered != "while back":
                    up.clear()  # the charger waits for its network before connecting again
                if answered == "lost on the way":
                    driver.lose_network()
                    cloud.release_delayed()
                    await relayed_start_recorded(tmp_path / "edgegw.db")
                    up.set()
                else:
                    driver.drop_connection()
                if answered == "while away":
                    cloud.release_delayed()
                    await cloud.wait_for(
                        lambda r: r.direction == "out" and r.action == "StartTransaction"
                    )
                    up.set()
                await resent.wait()  # the charger is back and has sent the start again
                cloud.release_delayed()
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
    ids = {a.answer["transactionId"] for a in driver.answered if a.action == "StartTransaction"}
    assert len(ids) == 1 and charger.sessions[0].transaction_id in ids
    assert [(k, t.stopped) for k, t in cloud.transactions.items()] == [(("CP00", 1), True)]
    assert status["queued"] == 0 and status["parked"] == 0, status
    assert driver.refusals == []
    assert gateway.exit_code == 0, gateway.process.log_tail()
    assert "Traceback" not in gateway.process.log_text()
    with contextlib.closing(sqlite3.connect(tmp_path / "edgegw.db")) as db:
        sessions = db.execute(
            "SELECT transaction_id, stopped_at IS NOT NULL FROM transactions WHERE charger_id = ?",
            ("CP00",),
        ).fetchall()
        mapped = db.execute(
            "SELECT local_id, cloud_id FROM transaction_ids WHERE charger_id = ?", ("CP00",)
        ).fetchall()
    assert [(t, closed) for t, closed in sessions] == [(charger.sessions[0].transaction_id, 1)]
    assert all(cloud_id == 1 for _local, cloud_id in mapped), mapped  # never 0, never unknown
