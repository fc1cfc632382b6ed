"""The demo's OCPP 2.0.1 chargers, and the cloud they reach through the gateway.

The gateway offers the cloud the version each charger speaks, on one cloud URL. The demo's
simulated CSMS (:class:`~edgegw.sim.cloud.SimCloud`) speaks 1.6, so :class:`MixedCloud` stands at
that URL: a 1.6 connection is passed to the SimCloud byte for byte, a 2.0.1 one is answered by
a small 2.0.1 CSMS here (boots accepted, cards by the demo's lists, every TransactionEvent kept
with its ``seqNo`` and ``offline`` flag). A cloud outage stops both.

:class:`Driver201` is one 2.0.1 station (:class:`~edgegw.sim.charger201.SimCharger201`) with a
driver: it plugs in, starts a session with a card, sends meter values, ends it, again and
again. A TransactionEvent that got no answer (the connection dropped) is sent again, the same
frame (its ``seqNo`` kept), once the station is connected again, before anything new: the
cloud's record can then be judged (:func:`judge201`): every ``seqNo`` of each station once,
none missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from edgegw.ocpp.versions import OCPP16, OCPP201
from edgegw.sim import SimCallError
from edgegw.sim.charger201 import SimCharger201
from edgegw.sim.cloud import SimCloud
from edgegw.sim.cloud201 import SimCloud201
from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)

RETRY_S: Final = 1.0


@dataclass(slots=True)
class Record201:
    """What the 2.0.1 CSMS heard of one station's TransactionEvents."""

    seq_nos: list[int] = field(default_factory=list)
    started: set[str] = field(default_factory=set)
    ended: set[str] = field(default_factory=set)
    offline: int = 0


class MixedCloud:
    """The demo's cloud URL: 1.6 relayed to ``cloud`` (a SimCloud), 2.0.1 handed to a
    :class:`~edgegw.sim.cloud201.SimCloud201` (``v201``)."""

    def __init__(self, cloud: SimCloud, accepted: Sequence[str], blocked: Sequence[str]) -> None:
        self.cloud = cloud
        self.v201 = SimCloud201(
            tokens={**dict.fromkeys(accepted, "Accepted"), **dict.fromkeys(blocked, "Blocked")},
            serial=False,
        )
        self._server: Server | None = None
        self._port = 0
        self._tasks = TaskOwner("demo-cloud")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/ocpp"

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Start (the SimCloud first); after the first start the same port is reused."""
        if not self.cloud.running:
            await self.cloud.start()
        self._tasks = TaskOwner(f"demo-cloud:{self._port}")
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            self._port,
            subprotocols=[Subprotocol(OCPP16), Subprotocol(OCPP201)],
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        await self._tasks.close("demo cloud stopped")
        await self.v201.stop()
        await self.cloud.stop()

    @property
    def records(self) -> dict[str, Record201]:
        """What the 2.0.1 CSMS heard, per station."""
        out: dict[str, Record201] = {}
        for event in self.v201.events:
            record = out.setdefault(event.charger_id, Record201())
            record.seq_nos.append(event.seq_no)
            if event.event_type == "Started":
                record.started.add(event.transaction_id)
            elif event.event_type == "Ended":
                record.ended.add(event.transaction_id)
            record.offline += event.offline
        return out

    async def _handle(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else ""
        identity = path.rsplit("/", 1)[-1]
        if ws.subprotocol == OCPP201:
            await self.v201.handle(ws)
        elif ws.subprotocol == OCPP16:
            await self._relay16(ws, identity)
        else:
            await ws.close(1002, "ocpp1.6 or ocpp2.0.1 required")

    async def _relay16(self, ws: ServerConnection, identity: str) -> None:
        headers = {}
        if ws.request is not None and "Authorization" in ws.request.headers:
            headers["Authorization"] = ws.request.headers["Authorization"]
        try:
            upstream = await connect(
                f"{self.cloud.url.rstrip('/')}/{identity}",
                subprotocols=[Subprotocol(OCPP16)],
                additional_headers=headers,
                proxy=None,
                open_timeout=5,
            )
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            await ws.close(1011, f"cloud unreachable: {exc}")
            return

        async def pipe(source: Any, sink: Any) -> None:
            with contextlib.suppress(ConnectionClosed):
                async for message in source:
                    await sink.send(message)

        async with upstream:
            one = self._tasks.spawn(pipe(ws, upstream), f"relay-up:{identity}")
            two = self._tasks.spawn(pipe(upstream, ws), f"relay-down:{identity}")
            await asyncio.wait({one, two}, return_when=asyncio.FIRST_COMPLETED)
            one.cancel()
            two.cancel()
        await ws.close()


CAR_A: Final = 16.0
"""What a demo car draws per phase when nothing holds it lower."""
VOLTS_3P: Final = 230.0 * 3
SAMPLED: Final = {
    ("SampledDataCtrlr", "TxUpdatedMeasurands"): "Energy.Active.Import.Register,Current.Import",
    ("AlignedDataCtrlr", "Interval"): "0",
    ("AlignedDataCtrlr", "Measurands"): "",
}
"""The device model variables load capping samples through, beside the simulator's own."""


class _Station(SimCharger201):
    """A simulated station that takes the gateway's load capping as a 2.0.1 station does
    (SetChargingProfile on EVSE 0 or 1, ClearChargingProfile, its sampling variables), and
    that, once told it is being switched off, lets an answer to a call the gateway sent in the
    last moment go unsent instead of failing its reader."""

    switched_off = False

    def __init__(self, charger_id: str, url: str, **options: Any) -> None:
        super().__init__(charger_id, url, **options)
        self.variables.update(SAMPLED)
        self.handlers.update(
            {
                "SetChargingProfile": self._set_profile,
                "ClearChargingProfile": self._clear_profile,
            }
        )
        self.profiles: dict[tuple[int, int], float] = {}
        """(EVSE, profile id) → the limit (A per phase) of its first period."""

    def limit_a(self, evse: int) -> float:
        """What a car on ``evse`` may draw: the lowest limit on the station or that EVSE."""
        limits = [a for (where, _id), a in self.profiles.items() if where in (0, evse)]
        return min([CAR_A, *limits])

    def _set_profile(self, payload: dict[str, Any]) -> dict[str, Any]:
        profile = payload.get("chargingProfile") or {}
        try:
            (schedule, *_more) = profile["chargingSchedule"]
            period = schedule["chargingSchedulePeriod"][0]
            limit = float(period["limit"])
            if schedule.get("chargingRateUnit") == "W":
                limit /= VOLTS_3P
            self.profiles[int(payload["evseId"]), int(profile["id"])] = limit
        except (KeyError, IndexError, TypeError, ValueError):
            return {"status": "Rejected"}
        return {"status": "Accepted"}

    def _clear_profile(self, payload: dict[str, Any]) -> dict[str, Any]:
        wanted = payload.get("chargingProfileId")
        cleared = [k for k in self.profiles if wanted is None or k[1] == wanted]
        for key in cleared:
            del self.profiles[key]
        return {"status": "Accepted" if cleared else "Unknown"}

    async def send_raw(self, text: str) -> None:
        try:
            await super().send_raw(text)
        except (ConnectionError, ConnectionClosed):
            if not self.switched_off:
                raise


@dataclass(slots=True)
class Stats201:
    sessions_started: int = 0
    sessions_ended: int = 0
    events_sent: int = 0
    resent: int = 0


class Driver201:
    """One 2.0.1 station and its driver; :meth:`start`, then :meth:`stop`."""

    def __init__(
        self,
        charger_id: str,
        url: str,
        *,
        password: str | None,
        tags: Sequence[str],
        session_seconds: float,
        meter_interval: float,
        rng: random.Random,
    ) -> None:
        self.station = _Station(charger_id, url, password=password, call_timeout=10)
        self.tags = list(tags)
        self.session_seconds = session_seconds
        self.meter_interval = meter_interval
        self.stats = Stats201()
        self._rng = rng
        self._unanswered: deque[str] = deque()
        self._tasks = TaskOwner(f"demo-201/{charger_id}")
        self._stopping = asyncio.Event()
        self.refused: str | None = None
        """Why the gateway refused the station (None: it took it)."""

    def start(self) -> None:
        self._tasks.spawn(self._run(), "drive")

    @property
    def unanswered(self) -> int:
        """TransactionEvents sent that got no answer yet (to be sent again)."""
        return len(self._unanswered)

    async def stop(self) -> None:
        """End the running session (if the station is connected), then disconnect."""
        self._stopping.set()
        await self._tasks.close("demo stopping")
        with contextlib.suppress(Exception):
            await self._flush()
            if self.station.transactions and self.station.connected:
                await self._event(partial(self.station.stop, 1), ended=True)
        self.station.switched_off = True
        await self.station.close()

    async def _connected(self) -> bool:
        """Connect (again) and boot; send what was left unanswered, in order. False when the
        gateway refused the station's version (it will not take it: the driver stops)."""
        while not self.station.connected:
            try:
                await self.station.connect()
                if self.station.subprotocol != OCPP201:  # refused: closed at once with why
                    with contextlib.suppress(TimeoutError):
                        await self.station.wait_closed(timeout=5)
                    self.refused = self.station.close_reason or "no ocpp2.0.1 subprotocol"
                    await self.station.close()
                    log.info(
                        "%s: the gateway refused it: %s", self.station.charger_id, self.refused
                    )
                    return False
                await self.station.boot()
                await self.station.status(
                    1, "Occupied" if self.station.transactions else "Available"
                )
                await self._flush()
            except (
                OSError,
                InvalidHandshake,
                TimeoutError,
                ConnectionError,
                ConnectionClosed,
                SimCallError,
            ):
                await self.station.close()
                await asyncio.sleep(RETRY_S)
        return True

    async def _flush(self) -> None:
        while self._unanswered:
            frame = self._unanswered[0]
            await self.station.call("TransactionEvent", {}, raw=frame)
            self._unanswered.popleft()
            self.stats.resent += 1

    async def _event(self, send: Callable[[], Awaitable[Any]], *, ended: bool = False) -> None:
        """One TransactionEvent; kept to be sent again when it got no answer. Raises
        ConnectionError (nothing sent, no seqNo used) when the station is not connected."""
        if not self.station.connected:
            raise ConnectionError("not connected")
        before = len(self.station.sent)
        try:
            await send()
        except (ConnectionError, ConnectionClosed, TimeoutError):
            if len(self.station.sent) > before:  # it went out: the cloud may not have it
                self._unanswered.append(self.station.sent[before])
            raise ConnectionError("no answer") from None
        finally:
            self.stats.events_sent += 1
            if ended:
                self.stats.sessions_ended += 1

    async def _run(self) -> None:
        while not self._stopping.is_set():
            if not await self._connected():
                return
            await asyncio.sleep(self._rng.uniform(0.2, 1.0) * self.session_seconds)
            try:
                if self.station.transactions:  # a session cut short by a lost connection
                    await self._event(partial(self.station.stop, 1), ended=True)
                await self.station.status(1, "Occupied")
                await self._event(partial(self.station.start, 1, self._rng.choice(self.tags)))
                self.stats.sessions_started += 1
                energy = 0.0
                steps = max(1, round(self.session_seconds / self.meter_interval))
                for _ in range(steps):
                    await asyncio.sleep(self.meter_interval)
                    current = self.station.limit_a(1)  # the car follows the cap
                    energy += current * VOLTS_3P * self.meter_interval / 3600
                    await self._event(partial(self.station.meter, 1, current, energy))
                await self._event(partial(self.station.stop, 1), ended=True)
                await self.station.status(1, "Available")
            except (ConnectionError, ConnectionClosed, TimeoutError, SimCallError):
                continue  # the station reconnects and sends what got no answer first


def judge201(drivers: Sequence[Driver201], cloud: MixedCloud) -> tuple[bool, list[str]]:
    """Whether the 2.0.1 CSMS has every TransactionEvent of every station once, in seqNo."""
    if not drivers:
        return True, []
    refused = {d.refused for d in drivers if d.refused is not None}
    if refused:  # this gateway does not take them here: nothing to judge, nothing lost
        return True, [f"the gateway refused the 2.0.1 stations: {'; '.join(sorted(refused))}"]
    problems = []
    started = ended = 0
    records = cloud.records
    for driver in drivers:
        charger = driver.station.charger_id
        record = records.get(charger, Record201())
        sent = driver.station.seq_no
        seen = record.seq_nos
        if sorted(set(seen)) != list(range(sent)) or driver.unanswered:
            problems.append(f"{charger}: seqNo {len(set(seen))} of {sent} reached the cloud")
        started += len(record.started)
        ended += len(record.ended)
    ok = not problems
    first = (
        "complete: every TransactionEvent of the 2.0.1 stations, each seqNo once"
        if ok
        else "INCOMPLETE: " + "; ".join(problems)
    )
    return ok, [
        first,
        f"{len(drivers)} station(s); the cloud has {started} 2.0.1 session(s) started, "
        f"{ended} ended",
    ]
