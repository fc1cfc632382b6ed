"""Capacity benchmark: how many chargers one gateway process carries.

Run:  .venv/bin/python tests/bench/capacity.py --chargers 250 500 1000 1500 2000 2500

Each step starts a fresh gateway (``edgegw run``, its own process, default settings apart from
the per-address admission limits: every simulated charger comes from 127.0.0.1) in front of a
minimal cloud that answers every call at once. N simulated chargers connect through it, each
with two connectors: BootNotification, a StatusNotification per connector, a StartTransaction
per connector, then, during the measured window, a MeterValues per connector every
``--interval`` seconds (10 s, phases spread at random) and a Heartbeat every ``--heartbeat``
seconds. One CALL in flight per charger, as OCPP-J requires.

The load generator is not the bottleneck: the chargers live in ``--workers`` processes and the
cloud in one more, so the gateway competes only with them for the CPU (on a 2-core box they
still share the cores: the figures are a floor, not a ceiling).

Printed per step: chargers, relayed calls/s and messages/s (a call and its answer are two
messages, each crossing the gateway once), lost messages, round trip p50/p99 as the charger
sees it (charger -> gateway -> cloud -> back), the gateway's CPU time per 1,000 messages and
its peak RSS (VmHWM). After each step the same load runs through a byte-pipe relay
(``bytepipe.py``: copies frames, parses and stores nothing) as the floor, and a line compares
the two (``--no-floor`` skips it). A message is lost when its answer never came
(``--timeout``), came as a CALLERROR, or the cloud never saw it (answered by the gateway in the
cloud's place). The ramp stops at the first step that loses a message or whose p99 is over
``--max-p99-ms``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import itertools
import json
import multiprocessing
import multiprocessing.connection
import os
import platform
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, str(Path(__file__).parent))
from relay_load import proc_stats, start_gateway

BOOT = {"chargePointVendor": "Bench", "chargePointModel": "Capacity"}
CONNECTORS = (1, 2)
Pipe = multiprocessing.connection.Connection


# ------------------------------------------------------------------ the machine


def machine() -> str:
    """CPU model, cores, Python: printed first by every benchmark."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {model}, {os.cpu_count()} cores, Python {platform.python_version()} "
        f"({platform.system()} {platform.release()}); load average {load}"
    )


def raise_open_files() -> int:
    """Lift the soft open-files limit to the hard one (inherited by every child)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# ------------------------------------------------------------------ the cloud (own process)


class MiniCloud:
    """Answers every call at once and counts what it received, per action."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self._ids = itertools.count(1)

    async def handler(self, ws: ServerConnection) -> None:
        try:
            async for message in ws:
                frame = json.loads(message)
                if frame[0] != 2:
                    continue
                action = frame[2]
                self.received[action] += 1
                payload: dict[str, Any] = {}
                if action == "BootNotification":
                    payload = {
                        "status": "Accepted",
                        "currentTime": "2026-01-01T00:00:00Z",
                        "interval": 300,
                    }
                elif action == "Heartbeat":
                    payload = {"currentTime": "2026-01-01T00:00:00Z"}
                elif action == "StartTransaction":
                    payload = {
                        "transactionId": next(self._ids),
                        "idTagInfo": {"status": "Accepted"},
                    }
                elif action in ("Authorize", "StopTransaction"):
                    payload = {"idTagInfo": {"status": "Accepted"}}
                await ws.send(json.dumps([3, frame[1], payload]))
        except ConnectionClosed:
            pass


async def _cloud(pipe: Pipe) -> None:
    cloud = MiniCloud()
    loop = asyncio.get_running_loop()
    async with serve(
        cloud.handler,
        "127.0.0.1",
        0,
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
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


def meter_values(connector: int, transaction_id: int, n: int) -> dict[str, Any]:
    return {
        "connectorId": connector,
        "transactionId": transaction_id,
        "meterValue": [
            {
                "timestamp": "2026-01-01T00:00:00Z",
                "sampledValue": [
                    {
                        "value": str(1000 + n * 30),
                        "measurand": "Energy.Active.Import.Register",
                        "unit": "Wh",
                    },
                    {"value": "11040", "measurand": "Power.Active.Import", "unit": "W"},
                    {"value": "16.0", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
                    {"value": "16.0", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
                    {"value": "16.0", "measurand": "Current.Import", "phase": "L3", "unit": "A"},
                ],
            }
        ],
    }


_GATEWAY_CALL_ANSWERS: dict[str, dict[str, Any]] = {
    "GetConfiguration": {"configurationKey": [], "unknownKey": []},
    "GetLocalListVersion": {"listVersion": 0},
    "DataTransfer": {"status": "UnknownVendorId"},
}


class SimCharger:
    """A lean charger for load: raw frames, one call in flight, answers the gateway's calls."""

    def __init__(self, url: str, cid: str, stats: GroupStats, timeout: float) -> None:
        self.url = url
        self.cid = cid
        self.stats = stats
        self.timeout = timeout
        self.ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[list[Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.transactions: dict[int, int] = {}

    async def open(self) -> None:
        self.ws = await connect(
            f"{self.url}/{self.cid}",
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
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
                    answer = _GATEWAY_CALL_ANSWERS.get(frame[2], {"status": "Accepted"})
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
        answer, _ = await self.call("BootNotification", BOOT)
        if answer is None:
            return False
        for connector in (0, *CONNECTORS):
            status = "Available" if connector == 0 else "Preparing"
            answer, _ = await self.call(
                "StatusNotification",
                {"connectorId": connector, "errorCode": "NoError", "status": status},
            )
            if answer is None:
                return False
        for connector in CONNECTORS:
            answer, _ = await self.call(
                "StartTransaction",
                {
                    "connectorId": connector,
                    "idTag": f"{abs(hash(self.cid)) % 0xFFFFFFFF:08X}",
                    "meterStart": 0,
                    "timestamp": "2026-01-01T00:00:00Z",
                },
            )
            if answer is None:
                return False
            self.transactions[connector] = int(answer[2].get("transactionId", 0))
        return True

    async def run(self, plan: Plan, start: float, stop: float) -> None:
        """Send the periodic calls due in [start, stop) (monotonic clock), one at a time."""
        rng = random.Random(self.cid)
        due: list[tuple[float, str, int]] = [
            (start + rng.uniform(0, plan.interval), "MeterValues", c) for c in CONNECTORS
        ]
        due.append((start + rng.uniform(0, plan.heartbeat), "Heartbeat", 0))
        n = 0
        while True:
            due.sort()
            at, action, connector = due[0]
            if at >= stop:
                return
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if action == "MeterValues":
                n += 1
                payload = meter_values(connector, self.transactions[connector], n)
                due[0] = (at + plan.interval, action, connector)
            else:
                payload = {}
                due[0] = (at + plan.heartbeat, action, connector)
            answer, rtt = await self.call(action, payload)
            if answer is not None:
                self.stats.answered += 1
                self.stats.rtts.append(rtt)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await self._reader


async def _worker(chargers: list[tuple[str, str, str]], plan: Plan, pipe: Pipe) -> None:
    stats: dict[str, GroupStats] = {}
    fleet: list[tuple[SimCharger, GroupStats]] = []
    for group, url, cid in chargers:
        group_stats = stats.setdefault(group, GroupStats())
        group_stats.chargers += 1
        fleet.append((SimCharger(url, cid, group_stats, plan.timeout), group_stats))
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


def worker_main(chargers: list[tuple[str, str, str]], plan: Plan, pipe: Pipe) -> None:
    """Entry point of a load-generator process hosting a share of the chargers."""
    asyncio.run(_worker(chargers, plan, pipe))


class Fleet:
    """Chargers spread over worker processes; each entry is (group, base url, charger id)."""

    def __init__(self, chargers: list[tuple[str, str, str]], plan: Plan, workers: int) -> None:
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


# ------------------------------------------------------------------ figures


def percentile(sorted_values: array.array[float] | list[float], q: float) -> float:
    """The q-quantile (nearest rank) of sorted values, in ms; NaN if there are none."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, int(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank] * 1000


def rtt_figures(stats: GroupStats) -> tuple[float, float]:
    ordered = sorted(stats.rtts)
    return percentile(ordered, 0.50), percentile(ordered, 0.99)


def not_at_cloud(stats: GroupStats, cloud: Counter[str]) -> int:
    """Calls the chargers sent that the cloud never received (answered in its place)."""
    return sum(max(0, n - cloud.get(action, 0)) for action, n in stats.sent.items())


@dataclass(slots=True)
class Step:
    chargers: int
    up: int
    seconds: float
    calls_per_s: float
    lost: int
    p50_ms: float
    p99_ms: float
    cpu_ms_per_1000: float
    peak_rss_mib: float
    connect_s: float
    problems: list[str]
    relay: str = "edgegw"

    def passed(self, max_p99_ms: float) -> bool:
        return self.lost == 0 and self.up == self.chargers and self.p99_ms <= max_p99_ms

    def line(self) -> str:
        return (
            f"{self.chargers:6d} {self.up:6d} {self.calls_per_s:8.0f} {self.calls_per_s * 2:8.0f}"
            f" {self.lost:5d} {self.p50_ms:8.2f} {self.p99_ms:8.2f}"
            f" {self.cpu_ms_per_1000:10.1f} {self.peak_rss_mib:8.1f} {self.connect_s:9.1f}"
            f"  {self.relay}"
        )


def against_floor(step: Step, floor: Step) -> str:
    """The gateway's figures as multiples of (or additions to) the byte-pipe relay's."""
    cpu = step.cpu_ms_per_1000 / floor.cpu_ms_per_1000
    return (
        f"       edgegw vs byte-pipe: CPU per 1k x{cpu:.2f}"
        f" (target <= 1.3), p99 {step.p99_ms - floor.p99_ms:+.2f} ms,"
        f" RSS {step.peak_rss_mib - floor.peak_rss_mib:+.1f} MiB"
    )


HEADER = (
    "chargers     up  calls/s   msgs/s  lost  p50(ms)  p99(ms)  CPU ms/1k  RSS MiB  set-up s"
    "  relay\n"
    "-----------------------------------------------------------------------------------------"
    "---------"
)


async def profile(pid: int, seconds: float, out: Path) -> None:
    """Sample the gateway with py-spy for ``seconds`` (collapsed stacks, for reading)."""
    spy = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("py-spy")),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await spy.wait()


async def start_pipe(cloud_port: int) -> tuple[asyncio.subprocess.Process, str]:
    """Run the byte-pipe relay (``bytepipe.py``, its own process); its process and URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("bytepipe.py")),
        "--cloud",
        f"ws://127.0.0.1:{cloud_port}/ocpp",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    ready = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    return proc, f"ws://127.0.0.1:{int(ready.split()[1])}/ocpp"


async def run_step(
    n: int,
    plan: Plan,
    workers: int,
    cloud: CloudProcess,
    tmp: Path,
    *,
    profile_dir: Path | None = None,
    pipe: bool = False,
) -> tuple[Step, GroupStats]:
    """One step through the gateway, or (``pipe``) through the byte-pipe relay."""
    sock = None
    if pipe:
        proc, url = await start_pipe(cloud.port)
        profile_dir = None
    else:
        proc, url, sock = await start_gateway(tmp, f"capacity{n}", cloud.port)
    fleet: Fleet | None = None
    spy: asyncio.Task[None] | None = None
    try:
        cloud.stats()  # reset the cloud's counters
        chargers = [("gateway", url, f"CAP{i:05d}") for i in range(n)]
        connecting = time.monotonic()
        fleet = Fleet(chargers, plan, workers)
        up = await fleet.connected()
        connect_s = time.monotonic() - connecting
        start = time.monotonic() + 1.0
        stop = fleet.go(start)
        await asyncio.sleep(start - time.monotonic())
        cpu0, _ = proc_stats(proc.pid)
        if profile_dir is not None:
            out = profile_dir / f"gateway-{n}.txt"
            spy = asyncio.ensure_future(profile(proc.pid, plan.seconds, out))  # noqa: TID251
        await asyncio.sleep(max(0.0, stop - time.monotonic()))
        cpu1, rss = proc_stats(proc.pid)
        if spy is not None:
            await spy
        stats = (await fleet.results()).get("gateway", GroupStats())
        received = cloud.stats()
    finally:
        if fleet is not None:
            fleet.kill()
        await stop_gateway(proc)
        if sock is not None:
            sock.close()
    p50, p99 = rtt_figures(stats)
    messages = stats.answered * 2
    step = Step(
        chargers=n,
        up=up,
        seconds=plan.seconds,
        calls_per_s=stats.answered / plan.seconds,
        lost=stats.lost + stats.errors + not_at_cloud(stats, received),
        p50_ms=p50,
        p99_ms=p99,
        cpu_ms_per_1000=(cpu1 - cpu0) / max(messages, 1) * 1e6,
        peak_rss_mib=rss / 2**20,
        connect_s=connect_s,
        problems=stats.problems,
        relay="byte-pipe" if pipe else "edgegw",
    )
    return step, stats


async def stop_gateway(proc: asyncio.subprocess.Process, grace: float = 30.0) -> None:
    """SIGTERM, and again if it was lost, then SIGKILL; says so when the first was ignored.

    asyncio learns of a signal through a byte on its self-pipe; a Unix socketpair holds only
    ~280 one-byte writes, so a loop busy with many thread-safe wake-ups (aiosqlite) can drop
    the byte, and the signal with it ("Exception ignored when trying to write to the signal
    wakeup fd"). The daemon should not depend on it; the benchmark must not hang on it.
    """
    for attempt in range(2):
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), grace)
            return
        except TimeoutError:
            print(f"  (gateway still running {grace:g} s after SIGTERM #{attempt + 1})")
    proc.kill()
    await proc.wait()


def plan_from(args: argparse.Namespace) -> Plan:
    return Plan(
        interval=args.interval,
        heartbeat=args.heartbeat,
        seconds=args.seconds,
        timeout=args.timeout,
    )


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interval", type=float, default=10.0, help="MeterValues period (s)")
    parser.add_argument("--heartbeat", type=float, default=60.0, help="Heartbeat period (s)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window (s)")
    parser.add_argument("--timeout", type=float, default=30.0, help="answer deadline (s)")
    parser.add_argument("--workers", type=int, default=4, help="load-generator processes")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--chargers", type=int, nargs="+", default=[250, 500, 1000, 1500, 2000, 2500]
    )
    parser.add_argument("--max-p99-ms", type=float, default=100.0, help="p99 round-trip target")
    parser.add_argument("--keep-going", action="store_true", help="run every step regardless")
    parser.add_argument(
        "--profile", type=Path, help="directory: py-spy the gateway in each window (raw stacks)"
    )
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help="skip the byte-pipe relay (bytepipe.py) run after each step under the same load",
    )
    add_load_arguments(parser)
    args = parser.parse_args()
    plan = plan_from(args)
    files = raise_open_files()
    print(machine())
    print(
        f"load: 2 connectors per charger, MeterValues every {plan.interval:g} s per connector, "
        f"Heartbeat every {plan.heartbeat:g} s; {plan.seconds:g} s measured per step; "
        f"{args.workers} load-generator processes + 1 cloud process; open files {files}"
    )
    print(HEADER)
    cloud = CloudProcess()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in args.chargers:
                step, _ = await run_step(
                    n, plan, args.workers, cloud, Path(tmp), profile_dir=args.profile
                )
                print(step.line(), flush=True)
                for problem in step.problems[:3]:
                    print("     ", problem)
                if not args.no_floor:
                    floor, _ = await run_step(n, plan, args.workers, cloud, Path(tmp), pipe=True)
                    print(floor.line(), flush=True)
                    print(against_floor(step, floor), flush=True)
                if not step.passed(args.max_p99_ms):
                    why = "lost messages" if step.lost else "chargers not up"
                    if step.lost == 0 and step.up == step.chargers:
                        why = f"p99 over {args.max_p99_ms:g} ms"
                    print(f"target missed at {n} chargers: {why}")
                    if not args.keep_going:
                        break
    finally:
        cloud.stop()


if __name__ == "__main__":
    asyncio.run(main())
