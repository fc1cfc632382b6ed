"""A cloud that takes longer than ``call_timeout`` and serves one CALL at a time (issue 16).

Real CSMSs process one CALL per charger at a time (a second one while one is pending gets
``GenericError "Call already in progress"``), can take 30 s or more to answer and then answer
all the same, and answer a second StartTransaction for a card with an open transaction
``ConcurrentTx`` / ``transactionId 0``. The simulated cloud here does all of that; the
gateway runs as a process with ``call_timeout = 2``; three chargers run two sessions each
while the cloud holds, for 4 s each, every charger's first StartTransaction, its second
MeterValues and its second StopTransaction.

Nothing closes a connection to the cloud in this test, so there is no at-least-once window:
once things settle the cloud's record must equal the chargers' record exactly: every start
once and accepted, every meter value once and in order, every stop once, with the cloud's
transaction ids (never 0), no CALL refused, no CALLERROR relayed to a charger, and no
transaction left open at the cloud.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from edgegw.sim.cloud import IncomingCall, SimCloud
from tests.sync.exactly_once import (
    HANG_GUARD_S,
    PatientCharger,
    assert_exactly_once,
    everything_arrived,
    gateway_process,
)
from tests.sync.test_outage import BLOCKED, KNOWN, Charger, charge

CALL_TIMEOUT = 2.0
HOLD = 4.0  # longer than CALL_TIMEOUT, then the cloud answers all the same
HELD = {("StartTransaction", 1), ("MeterValues", 2), ("StopTransaction", 2)}
CHARGERS = ("CP00", "CP01", "CP02")
SESSIONS = 2


def slow(call: IncomingCall) -> float:
    """The cloud holds each charger's first start, second meter value and second stop."""
    return HOLD if (call.action, call.action_number) in HELD else 0.0


async def test_a_slow_serial_cloud_gets_every_message_exactly_once(tmp_path: Path) -> None:
    cloud = SimCloud(
        accepted_tags=set(KNOWN),
        blocked_tags={BLOCKED},
        serial=True,
        concurrent_tx=True,
        delay_answers=slow,
    )
    await cloud.start()
    try:
        async with (
            asyncio.timeout(HANG_GUARD_S),
            gateway_process(tmp_path, cloud.url, call_timeout=CALL_TIMEOUT) as gateway,
        ):
            drivers = [
                PatientCharger(cid, gateway.url, gateway_up=gateway.process.up) for cid in CHARGERS
            ]
            chargers = [
                Charger(i, driver, register_wh=2_000_000 + 100_000 * i)
                for i, driver in enumerate(drivers)
            ]
            try:

                async def sessions(charger: Charger) -> None:
                    for s in range(SESSIONS):
                        await charge(charger, KNOWN[(charger.index + s) % 3], samples=3)

                await asyncio.gather(*(sessions(c) for c in chargers))
                # Settle: the cloud has every message and has answered every CALL, and the
                # gateway has nothing left to send (a copy would have gone before that).
                with contextlib.suppress(TimeoutError):
                    await cloud.wait_for(lambda _r: everything_arrived(cloud, drivers), 10)
                status = await gateway.settled(lambda s: s["queued"] == 0, 5)
            finally:
                for driver in drivers:
                    await driver.close()
    finally:
        await cloud.stop()

    assert assert_exactly_once(cloud, drivers) == len(CHARGERS) * SESSIONS
    assert [(d.charger_id, d.refusals) for d in drivers if d.refusals] == []
    assert len(cloud.transactions) == len(CHARGERS) * SESSIONS
    assert [k for k, t in cloud.transactions.items() if not t.stopped] == []
    assert status["queued"] == 0 and status["parked"] == 0, status
    assert len(cloud.held) >= len(CHARGERS) * len(HELD)  # the stalls did happen
    assert gateway.exit_code == 0, gateway.process.log_tail()
    assert "Traceback" not in gateway.process.log_text()
