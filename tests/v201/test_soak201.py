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
import json
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake

from edgegw.sim import SimCallError
from edgegw.sim.charger201 import SimCharger201
from edgegw.sim.cloud201 import SimCloud201
from edgegw.tasks import TaskOwner
from tests.sync.exactly_once import GatewaySite, gateway_process
from tests.sync.gateway_process import GatewayProcess
from tests.sync.test_outage import KNOWN

STATIONS = ("CP00", "CP01", "CP02", "CP03")
OUTAGES = 3
CLOUD_MARK = "answered by the cloud"
METER_GAP_S = 0.15  # between a station's events: a busy station, not a timed assertion


class Station(SimCharger201):
    """A station that tells ``on_event`` each time a TransactionEvent leaves it."""

    def __init__(self, charger_id: str, url: str, on_event: Callable[[], None]) -> None:
        super().__init__(charger_id, url, call_timeout=15)
        self._on_event = on_event

    async def send_raw(self, text: str) -> None:
        await super().send_raw(text)
        if '"TransactionEvent"' in text:
            self._on_event()


class Driver:
    """Runs sessions on one station until told to stop; keeps what got no answer and sends it
    again, the same frame, once connected again."""

    def __init__(self, station: Station, up: asyncio.Event) -> None:
        self.station = station
        self.up = up
        self.unanswered: deque[str] = deque()
        self.resent = 0
        self.sessions = 0
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        while True:
            await self._connected()
            if self.stopping.is_set() and not self.station.transactions:
                return
            try:
                if 1 not in self.station.transactions:
                    await self._event(lambda: self.station.start(1, KNOWN[self.sessions % 3]))
                    self.sessions += 1
                for step in (1, 2):
                    await asyncio.sleep(METER_GAP_S)
                    await self._event(partial(self.station.meter, 1, 16.0, 500.0 * step))
                await asyncio.sleep(METER_GAP_S)
                await self._event(lambda: self.station.stop(1))
            except (ConnectionError, ConnectionClosed, TimeoutError):
                continue  # reconnect; what got no answer goes first

    async def _connected(self) -> None:
        while not self.station.connected:
            await self.up.wait()
            try:
                await self.station.connect()
                await self.station.boot()
                while self.unanswered:
                    await self.station.call("TransactionEvent", {}, raw=self.unanswered[0])
                    self.unanswered.popleft()
                    self.resent += 1
            except (OSError, InvalidHandshake, ConnectionError, ConnectionClosed, TimeoutError):
                await self.station.close()
                await asyncio.sleep(0.1)  # a station's reconnect interval

    async def _event(self, send: Callable[[], Awaitable[Any]]) -> None:
        before = len(self.station.sent)
        try:
            await send()
        except (ConnectionError, ConnectionClosed, TimeoutError):
            if len(self.station.sent) > before:  # it went out: the cloud may not have it
                self.unanswered.append(self.station.sent[before])
            raise ConnectionError("no answer") from None
        except SimCallError as exc:  # never expected: the gateway stores or relays every one
            raise AssertionError(f"{self.station.charger_id}: {exc}") from exc


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


def _sent_events(station: SimCharger201) -> dict[tuple[str, int], str]:
    """Each TransactionEvent the station sent (copies once): (transaction id, seqNo) -> id."""
    events: dict[tuple[str, int], str] = {}
    for raw in station.sent:
        frame = json.loads(raw)
        if frame[2] == "TransactionEvent":
            payload = frame[3]
            key = (payload["transactionInfo"]["transactionId"], payload["seqNo"])
            events.setdefault(key, frame[1])
    return events


def _answers(station: SimCharger201) -> dict[str, dict[str, Any]]:
    answers: dict[str, dict[str, Any]] = {}
    for raw in station.received:
        frame = json.loads(raw)
        if frame[0] == 3:
            answers[frame[1]] = frame[2]
    return answers


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
                Driver(Station(cid, gateway.url, chaos.on_event), gateway.process.up)
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
    assert cloud.refused == [], "the gateway sent a CALL while one was pending"
    flags = {True: 0, False: 0}
    for driver in drivers:
        cid = driver.station.charger_id
        sent = _sent_events(driver.station)
        answers = _answers(driver.station)
        taken = [e for e in cloud.events if e.charger_id == cid]
        keys = [(e.transaction_id, e.seq_no) for e in taken]
        twice = [
            (e.seq_no, e.event_type, e.offline, e.message_id)
            for e in taken
            if keys.count((e.transaction_id, e.seq_no)) > 1
        ]
        assert not twice, f"{cid}: events reached the cloud twice: {twice}"
        assert set(keys) == set(sent), f"{cid}: {set(sent) ^ set(keys)}"
        by_tx: dict[str, list[int]] = {}
        for tx, seq in keys:
            by_tx.setdefault(tx, []).append(seq)
        assert all(seqs == sorted(seqs) for seqs in by_tx.values()), (cid, by_tx)
        for event in taken:
            answer = answers[sent[event.transaction_id, event.seq_no]]
            by_gateway = answer.get("updatedPersonalMessage", {}).get("content") != CLOUD_MARK
            assert event.offline == by_gateway, (cid, event.seq_no, event.offline, answer)
            flags[event.offline] += 1
        assert not driver.unanswered
    # The run was what it claims: sessions relayed live and answered offline, kills that cut
    # events off (each kill struck one in flight, sent again afterwards).
    assert flags[True] > 0 and flags[False] > 0, flags
    assert sum(d.resent for d in drivers) >= OUTAGES
    assert sum(d.sessions for d in drivers) >= 2 * len(STATIONS)
