"""Outages and SIGKILLs with 2.0.1 stations: the cloud's record of TransactionEvents equals the
stations' (issue 23's test): every (transactionId, seqNo) once, in seqNo order, and
``offline: true`` exactly on the events the gateway answered itself (README: the gateway sets
the flag on every event it answered and queued, and only on those).

The gateway is a real process (``tests.sync.gateway_process``), the cloud
:class:`~edgegw.sim.cloud201.SimCloud201` (serial, a little slow to answer), the stations
:class:`~edgegw.sim.charger201.SimCharger201` running sessions (Started, Updated x2, Ended) one
after another. The cloud goes away and comes back three times; during each outage the gateway is
SIGKILLed the instant a station has put a TransactionEvent on the wire, and started again on the
same port. A station re-sends a TransactionEvent that got no answer, the same frame, once
connected again, before anything new (as 2.0.1 asks of transaction messages).

Who answered an event is read on the station's side, independently of the flag: the cloud's
answers carry its ``updatedPersonalMessage``, the gateway's do not.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from edgegw.sim.cloud201 import SimCloud201
from edgegw.tasks import TaskOwner
from tests.sync.exactly_once import GatewaySite, gateway_process
from tests.sync.gateway_process import GatewayProcess
from tests.sync.test_outage import KNOWN
from tests.v201.stations201 import CLOUD_MARK, Driver, Station, judge

STATIONS = ("CP00", "CP01", "CP02", "CP03")
OUTAGES = 3
METER_GAP_S = 0.15  # between a station's events: a busy station


class Chaos:
    """Kills the gateway the instant a TransactionEvent leaves a station, when armed."""

    def __init__(self, process: GatewayProcess) -> None:
        self.process = process
        self.armed = False
        self.tasks = TaskOwner("soak201-chaos")
        self.restarted = asyncio.Event()

    def on_event(self) -> None:
        if self.armed and self.process.up.is_set():
            self.armed = False
            self.process.kill()  # the event just sent is in flight: no answer will come
            self.tasks.spawn(self._restart(), f"restart-{self.process.kills}")

    async def _restart(self) -> None:
        await self.process.restart_after_kill()
        self.restarted.set()


def _links(status: dict[str, Any], state: str) -> bool:
    """Every station's cloud link is in ``state`` (sync.status)."""
    return all(c["cloud_link"] == state for c in status["chargers"] if c["id"] in STATIONS)


async def _outage_with_a_kill(cloud: SimCloud201, chaos: Chaos, gateway: GatewaySite) -> None:
    await asyncio.sleep(1.0)  # sessions relayed while the cloud is there
    await cloud.stop()
    await gateway.settled(lambda s: _links(s, "offline"), 10)
    chaos.restarted.clear()
    chaos.armed = True
    async with asyncio.timeout(30):
        await chaos.restarted.wait()
    await asyncio.sleep(1.0)  # sessions answered by the new process while the cloud is away
    await cloud.start()


async def test_outages_and_sigkills_the_cloud_has_every_201_event_once_flagged_as_answered(
    tmp_path: Path,
) -> None:
    cloud = SimCloud201(
        tokens=dict.fromkeys(KNOWN, "Accepted"), delay_answers=0.02, personal_message=CLOUD_MARK
    )
    await cloud.start()
    drivers: list[Driver] = []
    runners = TaskOwner("soak201-stations")
    try:
        async with asyncio.timeout(120), gateway_process(tmp_path, cloud.url) as gateway:
            chaos = Chaos(gateway.process)
            drivers = [
                Driver(
                    Station(cid, gateway.url, chaos.on_event),
                    gateway.process.up,
                    KNOWN,
                    gap_s=METER_GAP_S,
                )
                for cid in STATIONS
            ]
            running = [runners.spawn(d.run(), d.station.charger_id) for d in drivers]
            for _ in range(OUTAGES):
                await _outage_with_a_kill(cloud, chaos, gateway)
            await asyncio.sleep(1.0)  # the backlog replays while new sessions go on
            for driver in drivers:
                driver.stopping.set()
            await asyncio.gather(*running)
            status = await gateway.settled(lambda s: s["queued"] == 0 and _links(s, "online"), 20)
            for driver in drivers:
                await driver.station.close()
            await chaos.tasks.close("test over")
            kills = gateway.process.kills
    finally:
        await runners.close("test over")
        await cloud.stop()

    assert kills == OUTAGES and status["queued"] == 0 and status["parked"] == 0, status
    assert gateway.exit_code == 0, gateway.process.log_tail()
    assert "Traceback" not in gateway.process.log_text()
    verdict = judge(cloud, drivers)
    assert verdict.refused == 0, "the gateway sent a CALL while one was pending"
    assert verdict.complete, (verdict.problems(), verdict.copies)
    # The run was what it claims: sessions relayed live and answered offline, kills that cut
    # events off (each kill struck one in flight, sent again afterwards).
    assert 0 < verdict.offline < verdict.events, verdict
    assert verdict.resent >= OUTAGES, verdict
    assert verdict.sessions >= 2 * len(STATIONS), verdict
