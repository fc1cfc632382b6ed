"""The capacity benchmark's load generator: its cloud and its chargers, in processes of their own.

Independent of edgegw's code (the frames are :mod:`dialects`'): the benchmark measures the
gateway against a peer that shares nothing with it. The cloud answers every call at once and
counts what it received, per action; the chargers (``Fleet``) live in worker processes, one
call in flight per charger as OCPP-J requires, and report per group what they saw.
"""

from __future__ import annotations

import array
import asyncio
import itertools
import json
import multiprocessing
import multiprocessing.connection
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dialects import CHARGER_ANSWERS, CONNECTORS, OCPP16, VERSIONS, cloud_answer, dialect
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

Pipe = multiprocessing.connection.Connection

# ------------------------------------------------------------------ the cloud (own process)


class MiniCloud:
    """Answers every call at once (in the connection's OCPP version) and counts what it
    received, per action."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self._ids = itertools.count(1)

    async def handler(self, ws: ServerConnection) -> None:
        version = ws.subprotocol or OCPP16
        try:
            async for message in ws:
                frame = json.loads(message)
                if frame[0] != 2:
                    continue
                action = frame[2]
                self.received[action] += 1
                answer = cloud_answer(version, action, frame[3], next(self._ids))
                await ws.send(json.dumps([3, frame[1], answer]))
        except ConnectionClosed:
            pass


async def _cloud(pipe: Pipe) -> None:
    cloud = MiniCloud()
    loop = asyncio.get_running_loop()
    async with serve(
        cloud.handler,
        "127.0.0.1",
        0,
        subprotocols=list(VERSIONS),  # type: ignore[arg-type]
        compression=None,
        ping_interval=None,
        max_queue=None,
        backlog=4096,
    ) as server:
        pipe.send(server.sockets[0].getsockname()[1])
        while True:
            command = await loop.run_in_executor(None, pipe.recv)
            if command == "stats":  # counts since the last "stats"
                pipe.send(dict(cloud.received))
                cloud.received.clear()
            else:
                return


def cloud_main(pipe: Pipe) -> None:
    """Entry point of the cloud process: sends its port, then answers "stats" until "stop"."""
    asyncio.run(_cloud(pipe))


class CloudProcess:
    """The minimal cloud in a process of its own."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=cloud_main, args=(child,), name="cloud")
        self._process.start()
        child.close()
        self.port: int = self._pipe.recv()
        self.pid = self._process.pid

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def stats(self) -> Counter[str]:
        self._pipe.send("stats")
        return Counter(self._pipe.recv())

    def stop(self) -> None:
        self._pipe.send("stop")
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


# ------------------------------------------------------------------ chargers (worker processes)


@dataclass(frozen=True, slots=True)
class Plan:
    """What every simulated charger does."""

    interval: float = 10.0  # MeterValues per connector (s)
    heartbeat: float = 60.0  # Heartbeat (s)
    seconds: float = 60.0  # the measured window (s)
    timeout: float = 30.0  # an answer later than this is a lost message (s)
    connect_concurrency: int = 50  # opening handshakes at once, per worker


@dataclass(slots=True)
class GroupStats:
    """What the chargers of one group (e.g. "gateway" or "direct") saw."""

    chargers: int = 0
    connect_failed: int = 0
    sent: Counter[str] = field(default_factory=Counter)  # calls sent, per action, all phases
    answered: int = 0  # CALLRESULTs in the window
    errors: int = 0  # CALLERRORs (any phase)
    lost: int = 0  # no answer in time, or the connection died with the call pending
    gateway_calls: int = 0  # calls the gateway sent to the chargers
    rtts: array.array[float] = field(default_factory=lambda: array.array("d"))
    problems: list[str] = field(default_factory=list)

    def merge(self, other: GroupStats) -> None:
        self.chargers += other.chargers
        self.connect_failed += other.connect_failed
        self.sent.update(other.sent)
        self.answered += other.answered
        self.errors += other.errors
        self.lost += other.lost
        self.gateway_calls += other.gateway_calls
        self.rtts.extend(other.rtts)
        self.problems.extend(other.problems[: max(0, 5 - len(self.problems))])


class SimCharger:
    """A lean charger for load: raw frames, one call in flight, answers the gateway's calls."""

    def __init__(self, url: str, cid: str, version: str, stats: GroupStats, timeout: float) -> None:
        self.url = url
        self.cid = cid
        self.speaks = dialect(version, cid)
        self.stats = stats
        self.timeout = timeout
        self.ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[list[Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.ws = await connect(
            f"{self.url}/{self.cid}",
            subprotocols=[self.speaks.subprotocol],  # type: ignore[list-item]
            proxy=None,
            open_timeout=60,
            ping_interval=None,
            compression=None,
            max_queue=None,
        )
        self._reader = asyncio.ensure_future(self._read())  # noqa: TID251 - a bench, not the app

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for message in self.ws:
                frame = json.loads(message)
                if frame[0] == 2:
                    self.stats.gateway_calls += 1
                    answer = CHARGER_ANSWERS.get(frame[2], {"status": "Accepted"})
                    await self.ws.send(json.dumps([3, frame[1], answer]))
                    continue
                future = self._pending.pop(frame[1], None)
                if future is not None and not future.done():
                    future.set_result(frame)
        except ConnectionClosed:
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))

    async def call(self, action: str, payload: dict[str, Any]) -> tuple[list[Any] | None, float]:
        """Send one call and wait for its answer: (frame or None if lost, round trip in s)."""
        assert self.ws is not None
        message_id = f"{self.cid}-{next(self._ids)}"
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        self.stats.sent[action] += 1
        sent = time.perf_counter()
        try:
            await self.ws.send(json.dumps([2, message_id, action, payload]))
            async with asyncio.timeout(self.timeout):
                frame = await future
        except (TimeoutError, ConnectionError, ConnectionClosed) as exc:
            self._pending.pop(message_id, None)
            self.stats.lost += 1
            if len(self.stats.problems) < 5:
                self.stats.problems.append(f"{self.cid} {action}: {type(exc).__name__} {exc}")
            return None, time.perf_counter() - sent
        rtt = time.perf_counter() - sent
        if frame[0] != 3:
            self.stats.errors += 1
            if len(self.stats.problems) < 5:
                self.stats.problems.append(f"{self.cid} {action}: {frame}")
            return None, rtt
        return frame, rtt

    async def setup(self) -> bool:
        """Boot, status per connector, a session per connector. False if anything failed."""
        speaks = self.speaks
        answer, _ = await self.call("BootNotification", speaks.boot)
        if answer is None:
            return False
        for status in speaks.statuses():
            answer, _ = await self.call("StatusNotification", status)
            if answer is None:
                return False
        for connector in CONNECTORS:
            answer, _ = await self.call(*speaks.start(connector))
            if answer is None:
                return False
            speaks.started(connector, answer[2])
        return True

    async def run(self, plan: Plan, start: float, stop: float) -> None:
        """Send the periodic calls due in [start, stop) (monotonic clock), one at a time."""
        rng = random.Random(self.cid)
        due: list[tuple[float, str, int]] = [
            (start + rng.uniform(0, plan.interval), "periodic", c) for c in CONNECTORS
        ]
        due.append((start + rng.uniform(0, plan.heartbeat), "Heartbeat", 0))
        n = 0
        while True:
            due.sort()
            at, what, connector = due[0]
            if at >= stop:
                return
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if what == "periodic":
                n += 1
                action, payload = self.speaks.periodic(connector, n)
                due[0] = (at + plan.interval, what, connector)
            else:
                action, payload = "Heartbeat", {}
                due[0] = (at + plan.heartbeat, what, connector)
            answer, rtt = await self.call(action, payload)
            if answer is not None:
                self.stats.answered += 1
                self.stats.rtts.append(rtt)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await self._reader


Entry = tuple[str, ...]
"""A charger of a fleet: (group, base URL, charger id[, OCPP version: 1.6 when absent])."""


async def _worker(chargers: list[Entry], plan: Plan, pipe: Pipe) -> None:
    stats: dict[str, GroupStats] = {}
    fleet: list[tuple[SimCharger, GroupStats]] = []
    for group, url, cid, *version in chargers:
        group_stats = stats.setdefault(group, GroupStats())
        group_stats.chargers += 1
        speaks = version[0] if version else OCPP16
        fleet.append((SimCharger(url, cid, speaks, group_stats, plan.timeout), group_stats))
    gate = asyncio.Semaphore(plan.connect_concurrency)

    async def bring_up(charger: SimCharger, group_stats: GroupStats) -> bool:
        try:
            async with gate:
                await charger.open()
            if await charger.setup():
                return True
        except Exception as exc:  # a benchmark reports failures, it does not stop on them
            group_stats.problems.append(f"{charger.cid}: {type(exc).__name__}: {exc}")
        group_stats.connect_failed += 1
        return False

    up = await asyncio.gather(*(bring_up(c, s) for c, s in fleet))
    ready = [c for (c, _), ok in zip(fleet, up, strict=True) if ok]
    # Only the measured window counts: forget the set-up's round trips and answers.
    for group_stats in stats.values():
        group_stats.rtts = array.array("d")
    loop = asyncio.get_running_loop()
    pipe.send(("connected", len(ready)))
    start, stop = await loop.run_in_executor(None, pipe.recv)
    await asyncio.gather(*(c.run(plan, start, stop) for c in ready))
    await asyncio.gather(*(c.close() for c, _ in fleet if c.ws is not None))
    pipe.send(("done", {group: _pack(s) for group, s in stats.items()}))


def _pack(stats: GroupStats) -> dict[str, Any]:
    return {
        "chargers": stats.chargers,
        "connect_failed": stats.connect_failed,
        "sent": dict(stats.sent),
        "answered": stats.answered,
        "errors": stats.errors,
        "lost": stats.lost,
        "gateway_calls": stats.gateway_calls,
        "rtts": stats.rtts.tobytes(),
        "problems": stats.problems,
    }


def _unpack(data: dict[str, Any]) -> GroupStats:
    rtts = array.array("d")
    rtts.frombytes(data["rtts"])
    return GroupStats(
        chargers=data["chargers"],
        connect_failed=data["connect_failed"],
        sent=Counter(data["sent"]),
        answered=data["answered"],
        errors=data["errors"],
        lost=data["lost"],
        gateway_calls=data["gateway_calls"],
        rtts=rtts,
        problems=data["problems"],
    )


def worker_main(chargers: list[Entry], plan: Plan, pipe: Pipe) -> None:
    """Entry point of a load-generator process hosting a share of the chargers."""
    asyncio.run(_worker(chargers, plan, pipe))


class Fleet:
    """Chargers spread over worker processes (entries: :data:`Entry`)."""

    def __init__(self, chargers: list[Entry], plan: Plan, workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.plan = plan
        self._pipes: list[Pipe] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []
        workers = max(1, min(workers, len(chargers)))
        for i in range(workers):
            share = chargers[i::workers]  # interleaved: every worker gets every group
            parent, child = context.Pipe()
            process = context.Process(
                target=worker_main, args=(share, plan, child), name=f"chargers-{i}"
            )
            process.start()
            child.close()  # a worker that dies then shows as EOFError, not as a hang
            self._pipes.append(parent)
            self._processes.append(process)

    async def _recv_all(self) -> list[Any]:
        loop = asyncio.get_running_loop()
        return list(
            await asyncio.gather(*(loop.run_in_executor(None, p.recv) for p in self._pipes))
        )

    async def connected(self) -> int:
        """Wait until every worker has its chargers up; how many are up."""
        return sum(reply[1] for reply in await self._recv_all())

    def go(self, start: float) -> float:
        """Start the measured window at monotonic time ``start``; returns when it stops."""
        stop = start + self.plan.seconds
        for pipe in self._pipes:
            pipe.send((start, stop))
        return stop

    async def results(self) -> dict[str, GroupStats]:
        """Wait for the workers to finish; the stats per group."""
        merged: dict[str, GroupStats] = {}
        for reply in await self._recv_all():
            for group, data in reply[1].items():
                merged.setdefault(group, GroupStats()).merge(_unpack(data))
        for process in self._processes:
            process.join(30)
            if process.is_alive():
                process.kill()
        return merged

    def kill(self) -> None:
        for process in self._processes:
            if process.is_alive():
                process.kill()
