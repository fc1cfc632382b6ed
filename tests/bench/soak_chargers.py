"""The soak's chargers: a worker process driving a share of them through realistic sessions.

Each charger is a :class:`~tests.sync.driver.RetryingCharger` (a real OCPP-J client that sends
every unanswered call again, payload unchanged, once it has a connection) with two connectors.
A connector idles, now and then sees an unknown card tapped (Authorize, refused), and otherwise
charges: Authorize with a known card, Preparing, StartTransaction, Charging, a MeterValues every
few seconds for a few minutes, StopTransaction, Finishing, Available. Both connectors share the
charger's one connection and one CALL in flight, as OCPP-J requires.

The parent process says when the gateway goes down and comes back (``"down"``/``"up"``, and a
shared flag read at once, so that a charger whose connect fails can tell "the gateway was just
killed" from "the gateway is up and refused me"), when to wind down (``"finish"``: every open
session is stopped, nothing new starts) and when to hang up (``"close"``). The worker reports
its counters every few seconds, ``"idle"`` once its chargers are done, and their records last.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing.connection
import os
import random
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: tests.sync
from edgegw.tasks import TaskOwner
from tests.bench.soak_check import ChargerSide, is_tx, session_name
from tests.sync.driver import CallRefused, GatewayUnreachable, JsonDict, RetryingCharger
from tests.sync.record import charger_record

Pipe = multiprocessing.connection.Connection
_STATS_EVERY = 5.0
_RETRY_AFTER_UNREACHABLE = (1.0, 3.0)
_NOTES_KEPT = 20


class SharedValue(Protocol):
    """A ``multiprocessing.Value('b')``: what the parent sets before it says up or down."""

    value: int


@dataclass(frozen=True, slots=True)
class Plan:
    """What every charger of the soak does."""

    url: str
    known_tags: tuple[str, ...]
    unknown_tags: tuple[str, ...]
    connectors: int = 2
    meter_interval: float = 5.0  # s between two MeterValues of a session
    session_s: tuple[float, float] = (60.0, 360.0)  # how long a car charges
    idle_s: tuple[float, float] = (5.0, 90.0)  # between two sessions on a connector
    unknown_share: float = 0.1  # of the cars that come, this many tap an unknown card
    answer_timeout: float = 120.0  # a call unanswered this long is sent again
    seed: int = 1


@dataclass(slots=True)
class Stats:
    """One worker's counters since it started (the parent sums the workers')."""

    chargers: int = 0
    calls: int = 0  # CALL frames sent, copies included
    answered: int = 0  # calls that got their answer
    sessions_started: int = 0
    sessions_done: int = 0
    unknown_taps: int = 0
    wrong_auth: int = 0  # an answer that was not what the card deserved
    answer_timeouts: int = 0
    unreachable: int = 0  # connect failed while the parent said the gateway was up
    crashed: int = 0  # chargers whose script ended with an exception
    refused: dict[str, int] = field(default_factory=dict)  # CALLERROR per action
    connections: int = 0
    boots: int = 0
    latency_max_s: float = 0.0
    latencies: list[float] = field(default_factory=list)  # s, every answered call (final only)
    cpu_s: float = 0.0
    notes: list[str] = field(default_factory=list)  # the first few odd things, verbatim


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class GatewayUp(asyncio.Event):
    """``gateway_up`` for :class:`RetryingCharger` across processes.

    ``is_set`` reads the shared flag (true the moment the parent says so); ``wait`` sleeps on
    this process's event, which the parent's ``"up"`` message sets.
    """

    def __init__(self, flag: SharedValue) -> None:
        super().__init__()
        self._flag = flag

    def is_set(self) -> bool:
        return bool(self._flag.value)

    async def wait(self) -> bool:  # type: ignore[override]
        while not self._flag.value:
            self.clear()
            await super().wait()
        return True


class Pulse:
    """Wakes every waiter each time it fires (the gateway is back: reconnect)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self) -> None:
        await self._event.wait()


class SoakDriver(RetryingCharger):
    """The driver connects lazily, on its next call; a real charger reconnects at once."""

    @property
    def connected(self) -> bool:
        return self._ws is not None


class Charger:
    """One charger: its driver, its connectors' registers and its counters."""

    def __init__(
        self,
        charger_id: str,
        plan: Plan,
        *,
        up: GatewayUp,
        finishing: asyncio.Event,
        stats: Stats,
        rng: random.Random,
    ) -> None:
        self.id = charger_id
        self.plan = plan
        self.driver = SoakDriver(charger_id, plan.url, gateway_up=up)
        self.finishing = finishing
        self.stats = stats
        self.rng = rng
        self.lock = asyncio.Lock()
        self.registers = {c: rng.randrange(1_000_000, 9_000_000) for c in self.connectors}

    @property
    def connectors(self) -> range:
        return range(1, self.plan.connectors + 1)

    async def run(self) -> None:
        await asyncio.sleep(self.rng.uniform(0, 5))  # spread the first boot storm
        await self.call("Heartbeat", {})  # connects and boots (Boot, Status of connector 1)
        for connector in self.connectors:
            if connector > 1:
                await self.status(connector, "Available")
        await asyncio.gather(*(self.connector(c) for c in self.connectors))

    async def run_safely(self) -> None:
        """:meth:`run`, noting a crash instead of ending the worker (the record still counts)."""
        try:
            await self.run()
        except Exception as exc:  # a soak reports failures, it does not stop on them
            self.stats.crashed += 1
            self.note(f"{self.id}: crashed: {exc!r}")

    async def stay_connected(self, restarted: Pulse) -> None:
        """After every gateway restart, connect again (a Heartbeat) unless a call already did."""
        while True:
            await restarted.wait()
            await asyncio.sleep(self.rng.uniform(0, 2))  # a charger's reconnect jitter
            if not self.driver.connected and not self.lock.locked():
                await self.call("Heartbeat", {})

    async def call(self, action: str, payload: JsonDict) -> JsonDict | None:
        """Send until answered (the driver re-sends on reconnect; here: after a timeout too)."""
        async with self.lock:
            started = time.monotonic()
            while True:
                try:
                    async with asyncio.timeout(self.plan.answer_timeout):
                        answer = await self.driver.call(action, payload)
                except TimeoutError:
                    self.stats.answer_timeouts += 1
                    self.note(f"{self.id}: no answer to {action} in {self.plan.answer_timeout} s")
                    continue
                except GatewayUnreachable as exc:
                    self.stats.unreachable += 1
                    self.note(str(exc))
                    await asyncio.sleep(self.rng.uniform(*_RETRY_AFTER_UNREACHABLE))
                    continue
                except CallRefused as exc:
                    self.stats.refused[action] = self.stats.refused.get(action, 0) + 1
                    self.note(str(exc))
                    return None
                took = time.monotonic() - started
                self.stats.latencies.append(took)
                self.stats.latency_max_s = max(self.stats.latency_max_s, took)
                return answer

    def note(self, text: str) -> None:
        if len(self.stats.notes) < _NOTES_KEPT:
            self.stats.notes.append(f"{_now()} {text}")

    async def status(self, connector: int, status: str) -> None:
        if connector == 1:
            self.driver.connector_status = status  # what the driver reports after a reboot
        await self.call(
            "StatusNotification",
            {
                "connectorId": connector,
                "errorCode": "NoError",
                "status": status,
                "timestamp": _now(),
            },
        )

    async def pause(self, seconds: float) -> bool:
        """Wait ``seconds`` of simulated life; False if the soak is winding down meanwhile."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.finishing.wait()
        return not self.finishing.is_set()

    async def connector(self, connector: int) -> None:
        while await self.pause(self.rng.uniform(*self.plan.idle_s)):
            if self.rng.random() < self.plan.unknown_share:
                await self.tap_unknown()
            else:
                await self.session(connector)

    async def tap_unknown(self) -> None:
        tag = self.rng.choice(self.plan.unknown_tags)
        answer = await self.call("Authorize", {"idTag": tag})
        self.stats.unknown_taps += 1
        if answer is not None and answer["idTagInfo"]["status"] == "Accepted":
            self.stats.wrong_auth += 1
            self.note(f"{self.id}: unknown card {tag} accepted: {answer}")

    async def session(self, connector: int) -> None:
        tag = self.rng.choice(self.plan.known_tags)
        answer = await self.call("Authorize", {"idTag": tag})
        if answer is None or answer["idTagInfo"]["status"] != "Accepted":
            self.stats.wrong_auth += 1
            self.note(f"{self.id}: known card {tag} not accepted: {answer}")
            return
        await self.status(connector, "Preparing")
        start = {
            "connectorId": connector,
            "idTag": tag,
            "meterStart": self.registers[connector],
            "timestamp": _now(),
        }
        started = await self.call("StartTransaction", start)
        if started is None:
            await self.status(connector, "Available")
            return
        self.stats.sessions_started += 1
        if started["idTagInfo"]["status"] != "Accepted":
            self.stats.wrong_auth += 1
            self.note(f"{self.id}: start with {tag} answered {started}")
        tx = int(started["transactionId"])
        await self.status(connector, "Charging")
        amps = self.rng.choice((10.0, 16.0, 32.0))
        watts = round(amps * 230 * 3)
        deadline = time.monotonic() + self.rng.uniform(*self.plan.session_s)
        last: JsonDict | None = None
        while time.monotonic() < deadline and await self.pause(self.plan.meter_interval):
            self.registers[connector] += max(1, round(watts * self.plan.meter_interval / 3600))
            last = self.sample(connector, amps, watts)
            await self.call(
                "MeterValues",
                {"connectorId": connector, "transactionId": tx, "meterValue": [last]},
            )
        self.registers[connector] += 7
        stop: JsonDict = {
            "transactionId": tx,
            "idTag": tag,
            "meterStop": self.registers[connector],
            "timestamp": _now(),
            "reason": "Local",
        }
        if last is not None and self.rng.random() < 0.3:
            stop["transactionData"] = [last]  # SampledDataTxEnded, as some chargers send
        await self.call("StopTransaction", stop)
        self.stats.sessions_done += 1
        await self.status(connector, "Finishing")
        await self.status(connector, "Available")

    def sample(self, connector: int, amps: float, watts: int) -> JsonDict:
        current = [
            {"value": f"{amps:.1f}", "measurand": "Current.Import", "phase": p, "unit": "A"}
            for p in ("L1", "L2", "L3")
        ]
        return {
            "timestamp": _now(),
            "sampledValue": [
                {
                    "value": str(self.registers[connector]),
                    "context": "Sample.Periodic",
                    "measurand": "Energy.Active.Import.Register",
                    "unit": "Wh",
                },
                {"value": str(watts), "measurand": "Power.Active.Import", "unit": "W"},
                *current,
            ],
        }

    def side(self) -> ChargerSide:
        """What the cloud must have received from this charger, for :mod:`soak_check`."""
        given: dict[int, str] = {}
        clashes: list[int] = []
        for answered in self.driver.answered:
            if answered.action != "StartTransaction":
                continue
            tx = int(answered.answer["transactionId"])
            name = session_name(answered.payload)
            if given.get(tx, name) != name:
                clashes.append(tx)
            given[tx] = name
        tx_frames = 0
        for raw in self.driver.sent:
            frame = json.loads(raw)
            tx_frames += is_tx(frame[2], frame[3])
        return ChargerSide(self.id, charger_record(self.driver.sent), tx_frames, given, clashes)


def _totals(chargers: list[Charger], stats: Stats, *, final: bool) -> dict[str, Any]:
    stats.calls = sum(len(c.driver.sent) for c in chargers)
    stats.answered = sum(len(c.driver.answered) for c in chargers)
    stats.connections = sum(c.driver.connections for c in chargers)
    stats.boots = sum(c.driver.boots for c in chargers)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats.cpu_s = usage.ru_utime + usage.ru_stime
    out = asdict(stats)
    if not final:
        out["latencies"] = []  # only the last report carries them
    return out


async def _worker(
    charger_ids: list[str], plan: Plan, pipe: Pipe, flag: SharedValue, log_path: Path
) -> None:
    logging.basicConfig(
        filename=log_path, level=logging.WARNING, format="%(asctime)s %(name)s %(message)s"
    )
    loop = asyncio.get_running_loop()
    up = GatewayUp(flag)
    if flag.value:
        up.set()
    finishing = asyncio.Event()
    closing = asyncio.Event()

    restarted = Pulse()

    def on_message() -> None:
        try:
            while pipe.poll():
                handle(pipe.recv())
        except (EOFError, OSError):
            os._exit(3)  # the parent is gone: nobody will read what this worker has

    def handle(message: str) -> None:
        if message == "up":
            up.set()
            restarted.fire()
        elif message == "down":
            up.clear()
        elif message == "finish":
            finishing.set()
        elif message == "close":
            closing.set()

    loop.add_reader(pipe.fileno(), on_message)
    stats = Stats(chargers=len(charger_ids))
    rng = random.Random(f"{plan.seed}:{charger_ids[0] if charger_ids else ''}")
    chargers = [
        Charger(cid, plan, up=up, finishing=finishing, stats=stats, rng=random.Random(rng.random()))
        for cid in charger_ids
    ]

    async def report() -> None:
        while True:
            await asyncio.sleep(_STATS_EVERY)  # a reporting period, not a readiness wait
            pipe.send(("stats", _totals(chargers, stats, final=False)))

    tasks = TaskOwner("soak-worker")
    reporter = tasks.spawn(report(), "report")
    for charger in chargers:
        tasks.spawn(charger.stay_connected(restarted), f"reconnect-{charger.id}")
    try:
        await asyncio.gather(*(c.run_safely() for c in chargers))
        reporter.cancel()
        pipe.send(("idle", _totals(chargers, stats, final=False)))
        await closing.wait()
    finally:
        await tasks.close("the chargers are done")
    sides = [c.side() for c in chargers]
    pipe.send(("done", _totals(chargers, stats, final=True), sides))
    await asyncio.gather(*(c.driver.close() for c in chargers))  # a busy gateway: at once
    loop.remove_reader(pipe.fileno())


def worker_main(
    charger_ids: list[str], plan: Plan, pipe: Pipe, flag: SharedValue, log_path: Path
) -> None:
    """Entry point of a worker process (``multiprocessing`` spawn target)."""
    asyncio.run(_worker(charger_ids, plan, pipe, flag, log_path))
