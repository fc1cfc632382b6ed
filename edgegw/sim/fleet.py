"""A fleet of simulated chargers that charge, heartbeat and reconnect on their own.

``edgegw demo`` and an installer trying a site need traffic that looks like a car park:
several chargers booting, drivers tapping random cards on random connectors, meter values
flowing, sessions ending, and chargers that come back by themselves after the gateway or
the network went away. SimFleet drives :class:`~edgegw.sim.charger.SimCharger` objects that
way until it is stopped, counts what happened, and logs one line per session start and stop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from websockets.exceptions import ConnectionClosed, InvalidHandshake

from edgegw.sim import SimCallError, Waiters
from edgegw.sim.charger import SimCharger
from edgegw.sim.lifecycle import StartedSim
from edgegw.tasks import TaskOwner

__all__ = ["FleetStats", "SimFleet"]

log = logging.getLogger("edgegw.sim")

_RECONNECT_MIN = 0.2
_RECONNECT_MAX = 5.0


@dataclasses.dataclass(slots=True)
class FleetStats:
    """Counters for the demo to print; ``messages_sent`` counts every frame chargers sent."""

    sessions_started: int = 0
    sessions_refused: int = 0
    sessions_completed: int = 0
    call_errors: int = 0
    disconnects: int = 0
    messages_sent: int = 0


class SimFleet(StartedSim):
    """Runs one :class:`SimCharger` per id against ``url`` until :meth:`stop`.

    Each charger connects, boots, reports every connector Available, then sessions start at
    random (a random tag from ``tags`` on a random free connector, about ``session_seconds``
    long with MeterValues every ``meter_interval`` seconds) while it heartbeats every
    ``heartbeat_interval`` seconds. CALLERRORs are counted and survived; a lost connection is
    retried with exponential backoff and jitter. ``seed`` makes the choices repeatable.
    """

    def __init__(
        self,
        url: str,
        charger_ids: Iterable[str],
        *,
        tags: Sequence[str],
        password_for: Callable[[str], str | None] | Mapping[str, str] | None = None,
        session_seconds: float = 60.0,
        meter_interval: float = 10.0,
        heartbeat_interval: float = 300.0,
        seed: int | str | None = None,
        connectors: int = 2,
    ) -> None:
        if not tags:
            raise ValueError("a fleet needs at least one tag to tap")
        if session_seconds <= 0 or meter_interval <= 0 or heartbeat_interval <= 0:
            raise ValueError("session_seconds, meter_interval and heartbeat_interval must be > 0")
        self.url = url
        self.tags = list(tags)
        self.session_seconds = session_seconds
        self.meter_interval = meter_interval
        self.heartbeat_interval = heartbeat_interval
        self.seed = seed
        if isinstance(password_for, Mapping):
            passwords = dict(password_for)
            lookup: Callable[[str], str | None] = passwords.get
        else:
            lookup = password_for or (lambda _cid: None)
        self.chargers: dict[str, SimCharger] = {
            cid: SimCharger(cid, url, password=lookup(cid), connectors=connectors, history=200)
            for cid in charger_ids
        }
        self._stats = FleetStats()
        self._waiters: Waiters[FleetStats] = Waiters()
        self._owner: TaskOwner | None = None

    @property
    def stats(self) -> FleetStats:
        """A snapshot of the counters."""
        return dataclasses.replace(
            self._stats, messages_sent=sum(c.frames_sent for c in self.chargers.values())
        )

    async def wait_until(
        self, predicate: Callable[[FleetStats], bool], timeout: float = 10
    ) -> None:
        """Return once the counters satisfy ``predicate`` (checked at every change, no polling)."""
        await self._waiters.wait(predicate, [self.stats], timeout, "the sim fleet's counters")

    def _count(self, counter: str) -> None:
        setattr(self._stats, counter, getattr(self._stats, counter) + 1)
        self._waiters.notify(self.stats)

    async def start(self) -> None:
        if self._owner is not None:
            raise RuntimeError("SimFleet is already running")
        self._owner = TaskOwner("sim-fleet")
        for cid, charger in self.chargers.items():
            rng = random.Random(f"{self.seed}/{cid}") if self.seed is not None else random.Random()
            self._owner.spawn(self._run(charger, rng), cid)
        log.info("sim fleet: %d chargers towards %s", len(self.chargers), self.url)

    async def stop(self) -> None:
        owner, self._owner = self._owner, None
        if owner is not None:
            await owner.close()
        for charger in self.chargers.values():
            await charger.close()

    # ------------------------------------------------------------------ per charger

    async def _run(self, charger: SimCharger, rng: random.Random) -> None:
        """Connect, drive, and reconnect with backoff whenever the connection is lost."""
        delay = _RECONNECT_MIN
        failing = False
        while True:
            try:
                await charger.connect()
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                if not failing:
                    log.info(
                        "sim charger %s cannot connect (%s); retrying", charger.charger_id, exc
                    )
                failing = True
                await asyncio.sleep(delay + rng.uniform(0, delay))  # backoff, not readiness
                delay = min(delay * 2, _RECONNECT_MAX)
                continue
            if failing:
                log.info("sim charger %s connected", charger.charger_id)
            failing, delay = False, _RECONNECT_MIN
            try:
                await self._online(charger, rng)
            except (ConnectionClosed, ConnectionError, TimeoutError, SimCallError) as exc:
                log.info("sim charger %s lost its session: %s", charger.charger_id, exc)
            finally:
                await charger.close()
            self._count("disconnects")
            log.info("sim charger %s disconnected; reconnecting", charger.charger_id)
            await asyncio.sleep(delay + rng.uniform(0, delay))

    async def _online(self, charger: SimCharger, rng: random.Random) -> None:
        while True:
            result = await charger.boot()
            if result["status"] == "Accepted":
                break
            # Pending/Rejected: OCPP says wait `interval` before booting again.
            await asyncio.sleep(min(float(result.get("interval") or 10), 30.0))
        for connector in range(1, charger.connectors + 1):
            if charger.session(connector) is not None:  # cut off by the last disconnect
                await charger.end_session(connector, "Other")
            else:
                await charger.status(connector, "Available")
        owner = TaskOwner(f"sim-fleet/{charger.charger_id}")
        try:
            owner.spawn(self._heartbeats(charger), "heartbeat")
            owner.spawn(self._sessions(charger, rng, owner), "sessions")
            await charger.wait_closed()
        finally:
            await owner.close()

    async def _heartbeats(self, charger: SimCharger) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await charger.heartbeat()
            except SimCallError as exc:
                self._count("call_errors")
                log.warning("sim charger %s: Heartbeat refused: %s", charger.charger_id, exc)
            except (ConnectionClosed, ConnectionError):
                return

    async def _sessions(self, charger: SimCharger, rng: random.Random, owner: TaskOwner) -> None:
        """Start a session on a random free connector every so often."""
        gap = self.session_seconds / charger.connectors
        while True:
            await asyncio.sleep(rng.uniform(0.25, 1.0) * gap)  # time between drivers
            free = [c for c in range(1, charger.connectors + 1) if charger.is_free(c)]
            if free:
                connector, tag = rng.choice(free), rng.choice(self.tags)
                owner.spawn(self._session(charger, connector, tag), f"session-{connector}")

    async def _session(self, charger: SimCharger, connector: int, tag: str) -> None:
        cid = charger.charger_id
        try:
            tx = await charger.tap(tag, connector)
            if tx is None:
                self._count("sessions_refused")
                log.info("sim charger %s connector %d: tag %s refused", cid, connector, tag)
                return
            self._count("sessions_started")
            log.info(
                "sim charger %s connector %d: session %d started (tag %s)", cid, connector, tx, tag
            )
            register_at_start = charger.energy_wh(connector)
            samples = max(1, round(self.session_seconds / self.meter_interval))
            for _ in range(samples):
                await asyncio.sleep(self.meter_interval)  # simulated time between samples
                if charger.session(connector) is None:
                    break  # stopped by the CSMS
                await self._quietly(charger.meter_values(connector), charger, "MeterValues")
            if charger.session(connector) is not None:
                await charger.end_session(connector, "Local")
            self._count("sessions_completed")
            log.info(
                "sim charger %s connector %d: session %d stopped, %.1f Wh delivered",
                cid,
                connector,
                tx,
                charger.energy_wh(connector) - register_at_start,
            )
        except SimCallError as exc:
            self._count("call_errors")
            log.warning("sim charger %s connector %d: %s", cid, connector, exc)
        except (ConnectionClosed, ConnectionError):
            return

    async def _quietly(self, request: Awaitable[object], charger: SimCharger, action: str) -> None:
        """Await one CALL whose refusal should not end the session."""
        try:
            await request
        except SimCallError as exc:
            self._count("call_errors")
            log.warning("sim charger %s: %s refused: %s", charger.charger_id, action, exc)
