"""Soak: N chargers for M minutes, cloud outages, the gateway SIGKILLed at random moments.

Run:  .venv/bin/python tests/bench/soak.py --chargers 200 --minutes 30 [--seed N]
Quick shake-out:  .venv/bin/python tests/bench/soak.py --chargers 50 --minutes 3
Mixed site:  .venv/bin/python tests/bench/soak.py --chargers 50 --v201 20 --minutes 3
Slow, serial cloud:  .venv/bin/python tests/bench/soak.py --slow-cloud --call-timeout 10

The gateway runs as its own process (``edgegw run``, like systemd runs it) on a fixed port, its
store on disk, the per-address admission limits lifted (every simulated charger comes from
127.0.0.1). The chargers (:mod:`soak_chargers`: retrying OCPP-J clients with two connectors
running realistic sessions) live in ``--workers`` processes of their own; the cloud
(:mod:`soak_cloud`, minimal and recording) and the chaos run here:

* the cloud is taken down (connections closed, port refused) for 20 s - 3 min, several times;
* the gateway is SIGKILLed every 3 - 8 min and started again at once on the same port;
* with ``--slow-cloud`` the cloud behaves like the real CSMSs of issue 16: one CALL per charger
  connection at a time (an overlapping one is refused "Call already in progress"), and every
  1 - 4 min it stalls for 1.2 - 2.5 times the gateway's ``call_timeout`` (``--call-timeout``,
  30 s unless given): CALLs that arrive meanwhile are answered when the stall ends.
* with ``--v201 N`` N OCPP 2.0.1 stations run beside, in this process
  (:mod:`tests.v201.stations201`), their cloud a SimCloud201 on the same URL; at the end each
  station's TransactionEvents are judged against the cloud's record (every seqNo there, in
  order, ``offline`` exactly on what the gateway answered; copies counted).

Below 30 minutes every chaos interval shrinks in proportion, so a 3-minute run still sees
several outages and kills. Every ``--sample-every`` seconds of each gateway life (on the life's
own clock, so lives compare like with like) the gateway's RSS, open fds and CPU are read from
/proc, with the outbox depth from the control socket (``sync.status``) and the chargers'
counters. At the end the cloud is back, the outbox drains, the chargers hang up, the gateway is
stopped cleanly, and :mod:`soak_check` compares every charger's record with what the cloud took:
every session once, in order, payloads unchanged but for the transaction id. The gateway's own
store is checked too. Not part of the test suite; exits 1 if anything was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import platform
import random
import resource
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: tests.sync
from edgegw.auth.authorizer import Authorizer
from edgegw.auth.idtags import CardId
from edgegw.auth.locallist import Card
from edgegw.config import AuthConfig
from edgegw.control.client import ControlClient, ControlClientError
from edgegw.sim.cloud import Stall
from edgegw.store.db import Database
from edgegw.tasks import TaskOwner
from tests.bench.soak_chargers import Pipe, Plan, SharedValue, worker_main
from tests.bench.soak_check import ChargerSide, check_all
from tests.bench.soak_cloud import SoakCloud
from tests.sync.gateway_process import GatewayProcess, NotifySocket, free_port
from tests.v201.stations201 import Driver, Judgement, Station, judge

FULL_MINUTES = 30.0  # the chaos intervals below are for a run this long
OUTAGE_S = (20.0, 180.0)
OUTAGE_GAP_S = (60.0, 300.0)
KILL_EVERY_S = (180.0, 480.0)
STALL_GAP_S = (60.0, 240.0)  # --slow-cloud: between two stalls (scaled like the rest)
STALL_X_CALL_TIMEOUT = (1.2, 2.5)  # a stall lasts this many times the gateway's call_timeout
POLL_EVERY = 2.0  # s between two sync.status polls (outbox depth, drain, reconnects)
WARM_UP_S = 60.0  # of a life, left out of its RSS slope (reconnect storm, outbox replay)
END_TIMEOUT_S = 900.0  # for the chargers to finish and the outbox to drain at the end
MB = 1024.0
MEMPROBE = Path(__file__).resolve().parent / "memprobe"  # a sitecustomize for the gateway


# ------------------------------------------------------------------ the machine


def machine() -> str:
    model = platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, IndexError, ValueError):
        total_kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {total_kb / MB / MB:.1f} GiB RAM"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {platform.node()}: {model}, {os.cpu_count()} cores{memory}; "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}; "
        f"load average {load}"
    )


def raise_open_files() -> int:
    """Lift the soft open-files limit to the hard one (the gateway and workers inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass(frozen=True, slots=True)
class ProcReading:
    rss_kb: int
    fds: int
    cpu_s: float


def read_proc(pid: int) -> ProcReading:
    """RSS (VmRSS), open file descriptors and CPU time of a live process; OSError if gone."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    fds = sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return ProcReading(rss, fds, cpu)


class SoakGateway(GatewayProcess):
    """:class:`GatewayProcess` and the pid of its current process, for /proc."""

    @property
    def pid(self) -> int:
        proc = self._proc
        if proc is None:
            raise RuntimeError("the gateway has not been started")
        return proc.pid


# ------------------------------------------------------------------ the site


def tags(seed: str, count: int) -> tuple[str, ...]:
    """Card UIDs as chargers send them: 7-byte NFC UIDs (NXP, 0x04) in upper-case hex."""
    rng = random.Random(seed)
    return tuple("04" + rng.randbytes(6).hex().upper() for _ in range(count))


async def enrol_cards(db_path: Path, known: tuple[str, ...]) -> None:
    """The installer's cards, written to the store before the daemon first starts."""
    db = await Database.open(db_path)
    try:
        auth = await Authorizer.open(db, AuthConfig())
        try:
            for n, tag in enumerate(known):
                await auth.add_card(Card(CardId.from_uid(bytes.fromhex(tag)), owner=f"soak {n}"))
        finally:
            await auth.close()
    finally:
        await db.close()


def write_config(
    workdir: Path,
    port: int,
    cloud_url: str,
    charger_ids: list[str],
    log_level: str,
    *,
    call_timeout: float | None = None,
) -> Path:
    chargers = "".join(f'\n[[chargers]]\nid = "{c}"\n' for c in charger_ids)
    timeout = "" if call_timeout is None else f"call_timeout = {call_timeout:g}\n"
    config = workdir / "edgegw.toml"
    config.write_text(
        f"""
[server]
host = "127.0.0.1"
port = {port}
# Every simulated charger comes from 127.0.0.1: lift the per-address admission limits.
max_connections_per_address = 100000
max_pending_handshakes = 100000

[cloud]
url = "{cloud_url}"
{timeout}
[store]
path = "{workdir / "edgegw.db"}"

[control]
socket = "{workdir / "control.sock"}"
group = ""

[logging]
level = "{log_level}"
{chargers}"""
    )
    return config


# ------------------------------------------------------------------ the worker processes


class Workers:
    """The charger processes: start, tell them things, add up their counters."""

    def __init__(
        self, count: int, charger_ids: list[str], plan: Plan, workdir: Path, abort: asyncio.Event
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.flag: SharedValue = context.Value("b", 0)
        self._abort = abort
        self._pipes: list[Pipe] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self.stats: list[dict[str, Any]] = [{} for _ in range(count)]
        self.idle = [False] * count
        self.sides: list[list[ChargerSide] | None] = [None] * count
        self.changed = asyncio.Event()
        self.failure: str | None = None
        for i in range(count):
            mine = charger_ids[i::count]
            parent, child = context.Pipe()
            process = context.Process(
                target=worker_main,
                args=(mine, plan, child, self.flag, workdir / f"worker{i}.log"),
                name=f"soak-worker-{i}",
                daemon=True,
            )
            process.start()
            child.close()
            self._pipes.append(parent)
            self._processes.append(process)
        loop = asyncio.get_running_loop()
        for i, pipe in enumerate(self._pipes):
            loop.add_reader(pipe.fileno(), self._on_message, i)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p.pid is not None]

    def set_up(self, up: bool) -> None:
        """The flag first (read at once by a charger whose connect failed), then the news."""
        self.flag.value = int(up)
        self.broadcast("up" if up else "down")

    def broadcast(self, message: str) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):
                pipe.send(message)

    def _on_message(self, i: int) -> None:
        pipe = self._pipes[i]
        try:
            while pipe.poll():
                kind, *rest = pipe.recv()
                self.stats[i] = rest[0]
                if kind == "idle":
                    self.idle[i] = True
                elif kind == "done":
                    self.sides[i] = rest[1]
        except (EOFError, OSError) as exc:
            asyncio.get_running_loop().remove_reader(pipe.fileno())
            if self.sides[i] is None:
                code = self._processes[i].exitcode
                self.failure = f"worker {i} ended early (exit code {code}): {exc!r}"
                self._abort.set()
        self.changed.set()

    async def wait_until(self, done: Callable[[], bool], timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not done():
                    self.changed.clear()
                    await self.changed.wait()
        return done()

    def total(self, key: str) -> int:
        return sum(int(s.get(key, 0)) for s in self.stats)

    def merged(self, key: str) -> Any:
        values = [s[key] for s in self.stats if key in s]
        if not values:
            return None
        if isinstance(values[0], dict):
            out: Counter[str] = Counter()
            for v in values:
                out.update(v)
            return dict(out)
        if isinstance(values[0], list):
            return [x for v in values for x in v]
        if isinstance(values[0], float):
            return max(values)
        return sum(values)

    def join(self, timeout: float = 10.0) -> None:
        for process in self._processes:
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join()
        for pipe in self._pipes:
            pipe.close()


# ------------------------------------------------------------------ what is recorded


@dataclass(slots=True)
class Sample:
    at: float  # s since the soak started
    uptime: float  # s since this life's READY=1
    rss_kb: int
    fds: int
    cpu_s: float
    queued: int | None
    parked: int | None
    calls: int
    answered: int
    cloud_up: bool


@dataclass(slots=True)
class Life:
    """One gateway process, from READY=1 to its SIGKILL (or the clean stop at the end)."""

    index: int
    started: float  # monotonic
    pid: int
    restart_s: float | None = None  # SIGKILL to READY=1 of this life
    killed_at: float | None = None  # wall clock (time.time) of the SIGKILL that began it
    reconnected_s: float | None = None  # READY=1 until every charger was connected again
    samples: list[Sample] = field(default_factory=list)
    ended_by: str = ""


@dataclass(slots=True)
class Outage:
    at: float
    planned_s: float
    length_s: float = 0.0
    back_at: float | None = None  # monotonic
    drain_s: float | None = None  # cloud back until the outbox was empty
    wall: tuple[float, float] = (0.0, 0.0)  # down and back, wall clock (time.time)
    queued_max: int = 0


@dataclass(slots=True)
class Chaos:
    outages: list[tuple[float, float]]  # (start, length) in s since the soak started
    kills: list[float]
    stalls: list[tuple[float, float]] = field(default_factory=list)  # (start, length)


def plan_stalls(
    rng: random.Random, duration: float, scale: float, call_timeout: float
) -> list[tuple[float, float]]:
    """When the slow cloud stalls, and for how long (longer than the gateway waits)."""
    stalls: list[tuple[float, float]] = []
    t = rng.uniform(*STALL_GAP_S) * scale
    while t < duration - 20.0 * scale:
        length = rng.uniform(*STALL_X_CALL_TIMEOUT) * call_timeout
        stalls.append((t, length))
        t += length + rng.uniform(*STALL_GAP_S) * scale
    return stalls


def plan_chaos(rng: random.Random, duration: float, scale: float) -> Chaos:
    outages: list[tuple[float, float]] = []
    t = rng.uniform(30.0, 120.0) * scale
    while t < duration - 30.0 * scale:
        length = rng.uniform(*OUTAGE_S) * scale
        outages.append((t, length))
        t += length + rng.uniform(*OUTAGE_GAP_S) * scale
    kills: list[float] = []
    t = rng.uniform(*KILL_EVERY_S) * scale
    while t < duration - 20.0 * scale:
        kills.append(t)
        t += rng.uniform(*KILL_EVERY_S) * scale
    return Chaos(outages, kills)


# ------------------------------------------------------------------ the soak


class Soak:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.duration = args.minutes * 60.0
        self.scale = min(1.0, args.minutes / FULL_MINUTES)
        self.sample_every = args.sample_every or max(3.0, 30.0 * self.scale)
        self.warm_up = max(2 * self.sample_every, WARM_UP_S * self.scale)
        self.rng = random.Random(args.seed)
        self.chaos = plan_chaos(self.rng, self.duration, self.scale)
        if args.calm:
            self.chaos = Chaos([], [])
        elif args.no_kills:  # one life across the whole run: the memory trend at full length
            self.chaos = Chaos(self.chaos.outages, [])
        self.call_timeout = args.call_timeout or 30.0  # the gateway's default
        self.stall = Stall()
        if args.slow_cloud:  # a generator of its own: the other chaos keeps its seed's plan
            stalls = random.Random(f"stalls-{args.seed}")
            self.chaos.stalls = plan_stalls(stalls, self.duration, self.scale, self.call_timeout)
        self.charger_ids = [f"SOAK{n:04d}" for n in range(args.chargers)]
        self.v201_ids = [f"SOAK201-{n:03d}" for n in range(args.v201)]
        self.drivers201: list[Driver] = []
        self.runs201: list[asyncio.Task[None]] = []
        self.verdict201: Judgement | None = None
        self.known = tags("known", 40)
        self.unknown = tags("unknown", 8)
        self.cloud = SoakCloud(
            self.known,
            serial=args.slow_cloud,
            delay=self.stall if args.slow_cloud else None,
        )
        self.abort = asyncio.Event()
        self.ending = asyncio.Event()
        self.tasks = TaskOwner("soak")
        self.lives: list[Life] = []
        self.outages: list[Outage] = []
        self.t0 = 0.0
        self.queued: int | None = None
        self.parked: int | None = None
        self.queued_max = (0, 0.0)
        self.parked_max = 0
        self.poll_failures = 0
        self.failure: str | None = None
        self.final_drain_s = float("nan")
        self.final_status: dict[str, Any] = {}
        self.exit_code: int | None = None
        self.chaos_tasks: list[asyncio.Task[None]] = []
        self.links: dict[str, int] = {}
        self.gateway: SoakGateway
        self.workers: Workers

    def now(self) -> float:
        return time.monotonic() - self.t0

    def interrupt(self, signum: int) -> None:
        self.failure = f"interrupted by {signal.Signals(signum).name}"
        self.abort.set()

    def say(self, text: str) -> None:
        print(f"[{self.now() / 60:5.1f} min] {text}", flush=True)

    # -------------------------------------------------------------- setup and run

    async def run(self) -> bool:
        args = self.args
        await self.cloud.start()
        await enrol_cards(self.workdir / "edgegw.db", self.known)
        port = free_port()
        config = write_config(
            self.workdir,
            port,
            self.cloud.url,
            self.charger_ids + self.v201_ids,
            args.log_level,
            call_timeout=args.call_timeout or None,
        )
        notify = NotifySocket(self.workdir / "notify.sock")
        self.gateway = SoakGateway(config, notify=notify, log_path=self.workdir / "edgegw.log")
        plan = Plan(
            url=f"ws://127.0.0.1:{port}/ocpp",
            known_tags=self.known,
            unknown_tags=self.unknown,
            connectors=args.connectors,
            meter_interval=args.meter_interval,
            seed=args.seed,
        )
        try:
            self.t0 = time.monotonic()
            await self.gateway.start()
            self.workers = Workers(args.workers, self.charger_ids, plan, self.workdir, self.abort)
            self.new_life(None)
            self.workers.set_up(True)
            self.start_v201(plan.url)
            self.say(
                f"gateway pid {self.gateway.pid} on port {port}; cloud {self.cloud.url}; "
                f"{len(self.charger_ids)} chargers in {args.workers} workers "
                f"(pids {self.workers.pids}); workdir {self.workdir}"
            )
            self.chaos_tasks = [
                self.tasks.spawn(self.kills(), "kills"),
                self.tasks.spawn(self.outage_loop(), "outages"),
                self.tasks.spawn(self.stall_loop(), "stalls"),
            ]
            self.tasks.spawn(self.poll(), "poll")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.duration):
                    await self.abort.wait()
            if self.abort.is_set():
                self.failure = self.failure or self.workers.failure or "aborted"
                self.say(f"ABORTED: {self.failure}")
                return False
            end = self.tasks.spawn(self.finish(), "finish")
            aborted = self.tasks.spawn(self.abort.wait(), "abort")
            await asyncio.wait({end, aborted}, return_when=asyncio.FIRST_COMPLETED)
            if end.done():
                return end.result()
            self.failure = self.failure or self.workers.failure or "aborted"
            self.say(f"ABORTED at the end: {self.failure}")
            return False
        finally:
            await self.tasks.close("soak over")
            with contextlib.suppress(Exception):
                await self.gateway.stop()
            notify.close()
            await self.cloud.stop()
            if hasattr(self, "workers"):
                self.workers.join(10.0 if self.failure is None else 0.0)

    def start_v201(self, url: str) -> None:
        """The ``--v201`` stations, in this process: sessions of Started, two Updated (one
        every ``--meter-interval``), Ended, one after another (tests/v201/stations201)."""
        for cid in self.v201_ids:
            driver = Driver(
                Station(cid, url), self.gateway.up, self.known, gap_s=self.args.meter_interval
            )
            self.drivers201.append(driver)
            self.runs201.append(self.tasks.spawn(driver.run(), f"v201-{cid}"))

    async def finish_v201(self) -> bool:
        """The 2.0.1 stations end their sessions; False if they did not in time."""
        for driver in self.drivers201:
            driver.stopping.set()
        if not self.runs201:
            return True
        _, running = await asyncio.wait(self.runs201, timeout=END_TIMEOUT_S)
        return not running

    async def until(self, at: float) -> bool:
        """Wait until ``at`` s into the soak; False if the soak began to end meanwhile."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, at - self.now())):
                await self.ending.wait()
        return not self.ending.is_set()

    def new_life(self, restart_s: float | None) -> None:
        life = Life(len(self.lives) + 1, time.monotonic(), self.gateway.pid, restart_s)
        self.lives.append(life)
        self.tasks.spawn(self.sample_life(life), f"sample-life-{life.index}")

    async def kills(self) -> None:
        for at in self.chaos.kills:
            if not await self.until(at):
                return
            life = self.lives[-1]
            life.ended_by = "SIGKILL"
            self.workers.set_up(False)
            self.gateway.kill()
            killed = time.monotonic()
            killed_wall = time.time()
            try:
                await self.gateway.restart_after_kill()
            except Exception as exc:
                self.failure = f"restarting the gateway failed: {exc!r}"
                self.abort.set()
                raise
            self.new_life(time.monotonic() - killed)
            self.lives[-1].killed_at = killed_wall
            self.workers.set_up(True)
            self.say(
                f"KILL {self.gateway.kills}: life {life.index} (pid {life.pid}) SIGKILLed after "
                f"{killed - life.started:.0f} s, outbox {self.queued}, cloud "
                f"{'up' if self.cloud.running else 'down'}; life {self.lives[-1].index} ready "
                f"in {self.lives[-1].restart_s:.1f} s"
            )

    async def outage_loop(self) -> None:
        for start, length in self.chaos.outages:
            if not await self.until(start):
                return
            down_wall = time.time()
            await self.cloud.stop()
            outage = Outage(self.now(), length, wall=(down_wall, down_wall))
            self.outages.append(outage)
            self.say(f"OUTAGE {len(self.outages)}: cloud down for {length:.0f} s")
            await self.until(start + length)
            await self.cloud.start()
            outage.length_s = self.now() - outage.at
            outage.back_at = time.monotonic()
            outage.wall = (outage.wall[0], time.time())
            self.say(f"cloud back after {outage.length_s:.0f} s; outbox {self.queued}")

    async def stall_loop(self) -> None:
        """The slow cloud's stalls: CALLs that arrive during one wait for its end."""
        for n, (start, length) in enumerate(self.chaos.stalls, 1):
            if not await self.until(start):
                return
            self.stall.begin(length)
            self.say(
                f"STALL {n}: the cloud answers nothing for {length:.0f} s (call_timeout "
                f"{self.call_timeout:g} s); cloud {'up' if self.cloud.running else 'down'}"
            )

    async def status(self) -> dict[str, Any] | None:
        if not self.gateway.up.is_set():
            return None
        try:
            async with asyncio.timeout(10):
                client = await ControlClient.connect(self.workdir / "control.sock")
                async with client:
                    result: dict[str, Any] = await client.call("sync.status")
                    return result
        except (ControlClientError, TimeoutError, OSError):
            self.poll_failures += 1
            return None

    async def poll(self) -> None:
        """Outbox depth, drain after each outage, reconnection after each restart."""
        while True:
            await asyncio.sleep(POLL_EVERY)  # a polling period, not a readiness wait
            life = self.lives[-1]
            status = await self.status()
            if status is None or life is not self.lives[-1]:
                continue
            self.note_status(status, life)

    def note_status(self, status: dict[str, Any], life: Life) -> None:
        now = time.monotonic()
        self.queued, self.parked = int(status["queued"]), int(status["parked"])
        if self.queued > self.queued_max[0]:
            self.queued_max = (self.queued, self.now())
        self.parked_max = max(self.parked_max, self.parked)
        connected = sum(1 for c in status["chargers"] if c["connected"])
        everyone = len(self.charger_ids) + len(self.v201_ids)
        if life.reconnected_s is None and connected == everyone:
            life.reconnected_s = now - life.started
        for outage in self.outages:
            if outage.back_at is None:
                outage.queued_max = max(outage.queued_max, self.queued)
            elif outage.drain_s is None and self.queued == 0 and self.cloud.running:
                outage.drain_s = now - outage.back_at

    async def sample_life(self, life: Life) -> None:
        k = 0
        while True:
            await asyncio.sleep(max(0.0, life.started + k * self.sample_every - time.monotonic()))
            k += 1
            if life is not self.lives[-1] or life.ended_by:
                return
            try:
                proc = read_proc(life.pid)
                if self.args.probe_memory:
                    os.kill(life.pid, signal.SIGUSR1)
            except OSError:
                return
            sample = Sample(
                at=self.now(),
                uptime=time.monotonic() - life.started,
                rss_kb=proc.rss_kb,
                fds=proc.fds,
                cpu_s=proc.cpu_s,
                queued=self.queued,
                parked=self.parked,
                calls=self.workers.total("calls"),
                answered=self.workers.total("answered"),
                cloud_up=self.cloud.running,
            )
            life.samples.append(sample)
            self.say(
                f"life {life.index} up {sample.uptime:5.0f} s: RSS {sample.rss_kb / MB:6.1f} MB, "
                f"fds {sample.fds:4d}, CPU {sample.cpu_s:6.1f} s, outbox {sample.queued} "
                f"(parked {sample.parked}), calls {sample.calls} answered {sample.answered}, "
                f"sessions {self.workers.total('sessions_started')}, cloud "
                f"{'up' if sample.cloud_up else 'DOWN'}"
            )

    # -------------------------------------------------------------- the end

    async def finish(self) -> bool:
        """Cloud back, chargers wind down, outbox drains, chargers hang up, clean stop."""
        self.ending.set()
        self.say("the end: no more chaos; waiting for the kill and outage in progress")
        await asyncio.wait(self.chaos_tasks)  # a restart or an outage in progress ends first
        if self.failure is not None:
            return False
        if not self.cloud.running:
            await self.cloud.start()
        for outage in self.outages:
            if outage.back_at is None:
                outage.length_s = self.now() - outage.at
                outage.back_at = time.monotonic()
                outage.wall = (outage.wall[0], time.time())
        load_end = time.monotonic()
        self.workers.broadcast("finish")
        if not await self.workers.wait_until(lambda: all(self.workers.idle), END_TIMEOUT_S):
            self.failure = f"the chargers did not finish in {END_TIMEOUT_S:.0f} s"
            return False
        if not await self.finish_v201():
            self.failure = f"the 2.0.1 stations did not finish in {END_TIMEOUT_S:.0f} s"
            return False
        idle_at = time.monotonic()
        self.say(f"every charger stopped its sessions in {idle_at - load_end:.1f} s")
        status = await self.wait_drained()
        drained_at = time.monotonic()
        self.final_drain_s = drained_at - idle_at
        if status is None:
            self.failure = (
                f"the outbox did not drain in {END_TIMEOUT_S:.0f} s: queued {self.queued}, "
                f"parked {self.parked}, links {self.links}"
            )
            return False
        self.say(f"outbox empty {self.final_drain_s:.1f} s after the last charger call")
        self.final_status = status
        for driver in self.drivers201:
            await driver.station.close()
        if self.drivers201:
            self.verdict201 = judge(self.cloud.v201, self.drivers201)
        life = self.lives[-1]
        with contextlib.suppress(OSError):
            proc = read_proc(life.pid)
            life.samples.append(
                Sample(
                    self.now(),
                    time.monotonic() - life.started,
                    proc.rss_kb,
                    proc.fds,
                    proc.cpu_s,
                    self.queued,
                    self.parked,
                    self.workers.total("calls"),
                    self.workers.total("answered"),
                    True,
                )
            )
        if self.args.probe_memory:
            os.kill(life.pid, signal.SIGUSR2)  # a full collection, then a last snapshot
        self.workers.broadcast("close")
        if not await self.workers.wait_until(
            lambda: all(s is not None for s in self.workers.sides), END_TIMEOUT_S
        ):
            self.failure = "the workers did not send their records"
            return False
        life.ended_by = "SIGTERM"
        self.exit_code = await self.gateway.stop()
        self.say(f"gateway stopped with exit code {self.exit_code}")
        await self.cloud.stop()
        return True

    async def wait_drained(self) -> dict[str, Any] | None:
        deadline = time.monotonic() + END_TIMEOUT_S
        while time.monotonic() < deadline:
            status = await self.status()
            if status is not None:
                self.note_status(status, self.lives[-1])
                links = Counter(c["cloud_link"] for c in status["chargers"])
                if (
                    status["queued"] == 0
                    and status["parked"] == 0
                    and links == {"online": len(self.charger_ids) + len(self.v201_ids)}
                ):
                    return status
                self.links = dict(links)
            await asyncio.sleep(1.0)  # polling the daemon's view of its outbox
        return None


# ------------------------------------------------------------------ the figures


def slope_mb_per_hour(samples: list[Sample]) -> float | None:
    """Least-squares slope of RSS over uptime; None with fewer than 3 samples."""
    if len(samples) < 3:
        return None
    xs = [s.uptime / 3600.0 for s in samples]
    ys = [s.rss_kb / MB for s in samples]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def check_store(db_path: Path, sides: list[ChargerSide]) -> list[str]:
    """After the clean stop: nothing left to send, every local id mapped, sessions closed."""
    problems: list[str] = []
    try:
        with contextlib.closing(sqlite3.connect(db_path)) as db:
            left = db.execute(
                "SELECT state, COUNT(*) FROM outbox WHERE state != 'delivered' GROUP BY state"
            ).fetchall()
            unmapped = db.execute(
                "SELECT COUNT(*) FROM transaction_ids WHERE cloud_id IS NULL"
            ).fetchone()[0]
            rows = db.execute(
                "SELECT charger_id, COUNT(*), SUM(stopped_at IS NULL) FROM transactions "
                "GROUP BY charger_id"
            ).fetchall()
    except sqlite3.Error as exc:
        return [f"store check skipped: {exc}"]
    if left:
        problems.append(f"outbox rows not delivered: {left}")
    if unmapped:
        problems.append(f"{unmapped} local transaction ids never mapped to the cloud's")
    recorded = {charger: (count, open_) for charger, count, open_ in rows}
    wrong = []
    for side in sides:
        sessions = sum(1 for a, _ in side.record if a == "StartTransaction")
        count, open_ = recorded.get(side.charger_id, (0, 0))
        if count != sessions or open_:
            wrong.append(f"{side.charger_id}: {count} recorded ({open_} open) for {sessions}")
    if wrong:
        problems.append(f"{len(wrong)} chargers' sessions differ in the store: {wrong[:5]}")
    return problems


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def duplicate_cause(soak: Soak, first: float, again: float) -> str:
    """What happened between two copies the cloud received (wall-clock times of arrival; a
    held copy may be answered after a later one)."""
    first, again = min(first, again), max(first, again)
    if any(life.killed_at is not None and first <= life.killed_at <= again for life in soak.lives):
        return "a SIGKILL between the copies"
    if any(first <= back and down <= again for down, back in (o.wall for o in soak.outages)):
        return "an outage between the copies"
    return "no kill or outage between the copies"


def report(soak: Soak, ok: bool) -> bool:
    """Print the figures; True if nothing was lost, invented or reordered."""
    args = soak.args
    workers = soak.workers
    print()
    mixed = f" + {args.v201} 2.0.1 stations" if args.v201 else ""
    print(f"== soak: {args.chargers} chargers{mixed} x {args.minutes:g} min, seed {args.seed} ==")
    print(machine())
    if not ok:
        print(f"FAILED before the verdict: {soak.failure}")
        print(f"gateway log: {soak.gateway.log_path}")
        print(soak.gateway.log_tail(30))
        return False
    sides = [side for group in workers.sides if group for side in group]
    verdicts = check_all(sides, soak.cloud.calls)
    print(
        f"chargers: {args.connectors} connectors each, MeterValues every "
        f"{args.meter_interval:g} s, {args.workers} worker processes; gateway log level "
        f"{args.log_level}"
    )
    latencies: list[float] = workers.merged("latencies") or []
    print(
        f"load: {workers.total('sessions_started')} sessions ({workers.total('sessions_done')} "
        f"stopped), {workers.total('unknown_taps')} unknown-card taps; {workers.total('calls')} "
        f"calls sent (copies included), {workers.total('answered')} answered; the cloud "
        f"received {soak.cloud.received} calls ({soak.cloud.received / soak.duration:.0f}/s) "
        f"on {soak.cloud.connections} connections"
    )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"load generator CPU: this process (cloud, chaos, checks) "
        f"{usage.ru_utime + usage.ru_stime:.0f} s, charger workers "
        f"{workers.merged('cpu_s') or 0:.0f} s at most each, over {soak.now():.0f} s"
    )
    print(
        f"charger view: call time p50 {percentile(latencies, 0.5) * 1000:.0f} ms, p99 "
        f"{percentile(latencies, 0.99) * 1000:.0f} ms, max {max(latencies, default=0):.1f} s "
        f"(waits for a restart included); reconnections {workers.total('connections')}, boots "
        f"{workers.total('boots')}; answer timeouts {workers.total('answer_timeouts')}, "
        f"unreachable while up {workers.total('unreachable')}, CALLERRORs "
        f"{workers.merged('refused') or {}}, wrong card answers {workers.total('wrong_auth')}, "
        f"crashed chargers {workers.total('crashed')}"
    )
    for note in (workers.merged("notes") or [])[:10]:
        print(f"   note: {note}")

    print(f"outages: {len(soak.outages)}, cloud down {sum(o.length_s for o in soak.outages):.0f} s")
    refused = sum(soak.cloud.refused.values())
    if args.slow_cloud:
        stalls = soak.chaos.stalls
        lengths = [b for a, b in stalls if a <= soak.now()]
        print(
            f"slow cloud: serial; {len(lengths)} stalls of {min(lengths, default=0):.0f} - "
            f"{max(lengths, default=0):.0f} s (gateway call_timeout "
            f"{soak.call_timeout:g} s), stalled {sum(lengths):.0f} s in all, "
            f"{soak.cloud.held} answers held; overlapping CALLs refused {refused} "
            f"{dict(soak.cloud.refused) or ''}"
        )
    for n, o in enumerate(soak.outages, 1):
        drain = "-" if o.drain_s is None else f"{o.drain_s:.0f} s"
        print(
            f"   {n}: at {o.at / 60:5.1f} min for {o.length_s:5.0f} s, outbox up to "
            f"{o.queued_max}, drained {drain} after the cloud came back"
        )
    kills = soak.lives[1:]
    restarts = ", ".join(f"{life.restart_s:.1f}" for life in kills)
    back = ", ".join("-" if x.reconnected_s is None else f"{x.reconnected_s:.0f}" for x in kills)
    print(
        f"kills: {len(kills)} SIGKILLs; restart (kill to READY=1) {restarts or '-'} s; every "
        f"charger connected again {back or '-'} s after READY"
    )

    tx_frames = sum(s.tx_frames for s in sides)
    expected = sum(v.expected for v in verdicts)
    lost = sum(len(v.lost) for v in verdicts)
    invented = sum(len(v.invented) for v in verdicts)
    reordered = [v for v in verdicts if v.out_of_order]
    clashes = sum(len(v.id_clashes) for v in verdicts)
    duplicates = sum(v.duplicates for v in verdicts)
    after_answer = sum(v.duplicates_after_answer for v in verdicts)
    sessions = sum(v.sessions for v in verdicts)
    cloud_sessions = sum(v.cloud_sessions for v in verdicts)
    print(
        f"delivery: {sessions} sessions, {expected} transaction messages (sent {tx_frames} times "
        f"by the chargers, copies included); cloud took {cloud_sessions} StartTransactions"
    )
    print(
        f"   LOST {lost} (of which the cloud got but could not answer "
        f"{sum(v.lost_unanswered for v in verdicts)}), invented {invented}, chargers out of "
        f"order {len(reordered)}, transaction ids given twice {clashes}"
    )
    print(
        f"   duplicates at the cloud {duplicates} (of which after the cloud had answered: "
        f"{after_answer}; the rest followed an answer the closing link dropped)"
    )
    causes: Counter[str] = Counter()
    odd: list[str] = []
    for v in verdicts:
        for action, first, again, answered in v.copies:
            cause = duplicate_cause(soak, first, again)
            causes[f"{action} {'answered' if answered else 'unanswered'}, {cause}"] += 1
            if cause == "no kill or outage between the copies":
                odd.append(f"{v.charger_id} {action} at {first:.3f} and {again:.3f}")
    for cause, n in sorted(causes.items()):
        print(f"      {n:4d} x {cause}")
    for line in odd[:5]:
        print(f"      UNEXPLAINED duplicate: {line}")
    for v in [v for v in verdicts if not v.ok][:5]:
        print(
            f"   {v.charger_id}: lost {v.lost[:2]} invented {v.invented[:2]} order {v.out_of_order}"
        )
    print(
        f"outbox: max depth {soak.queued_max[0]} at {soak.queued_max[1] / 60:.1f} min, parked "
        f"max {soak.parked_max}; final drain {soak.final_drain_s:.1f} s; at the end queued "
        f"{soak.final_status['queued']} parked {soak.final_status['parked']} (sync.status "
        f"polled every {POLL_EVERY:g} s; {soak.poll_failures} polls failed)"
    )
    store = check_store(soak.workdir / "edgegw.db", sides)
    print(
        f"gateway store after the clean stop: {'; '.join(store) or 'all sessions recorded, closed'}"
    )
    log = soak.gateway.log_text().splitlines()
    tracebacks = sum(1 for line in log if "Traceback" in line)
    errors = [line for line in log if " ERROR " in line or " CRITICAL " in line]
    print(
        f"gateway exit code after SIGTERM: {soak.exit_code}; log {len(log)} lines, "
        f"{tracebacks} tracebacks, {len(errors)} ERROR lines"
    )
    for line in errors[:5]:
        print(f"   {line}")

    print(
        f"memory per life (RSS MB; slopes in MB/hour: after the first {soak.warm_up:.0f} s of "
        "the life, and over its second half):"
    )
    slopes: list[float] = []
    tail_slopes: list[float] = []
    for life in soak.lives:
        s = life.samples
        if not s:
            continue
        rss = [x.rss_kb / MB for x in s]
        slope = slope_mb_per_hour([x for x in s if x.uptime >= soak.warm_up])
        tail = slope_mb_per_hour([x for x in s if x.uptime >= s[-1].uptime / 2])
        slopes.extend([] if slope is None else [slope])
        tail_slopes.extend([] if tail is None else [tail])
        cpu = s[-1].cpu_s / max(s[-1].uptime, 1.0) * 100
        print(
            f"   life {life.index:2d}: {s[-1].uptime:5.0f} s, {len(s):3d} samples, RSS "
            f"{min(rss):6.1f} - {max(rss):6.1f} (first {rss[0]:6.1f}, last {rss[-1]:6.1f}), "
            f"slope {_signed(slope)}, 2nd half {_signed(tail)}, fds "
            f"{min(x.fds for x in s)} - {max(x.fds for x in s)}, CPU {cpu:4.0f} %, "
            f"ended by {life.ended_by or '?'}"
        )
    every = soak.sample_every
    per_life = [
        {round(x.uptime / every): x.rss_kb / MB for x in life.samples} for life in soak.lives
    ]
    in_lives = Counter(m for rss_at in per_life for m in rss_at)
    marks = sorted(m for m, n in in_lives.items() if n >= 2)[:17]  # uptimes seen twice or more
    if marks:
        print("   like with like, RSS MB at the same uptime in each life:")
        print("      uptime s " + "".join(f"{m * every:7.0f}" for m in marks))
        for life, rss_at in zip(soak.lives, per_life, strict=True):
            cells = "".join(f"{rss_at[m]:7.1f}" if m in rss_at else "      -" for m in marks)
            print(f"      life {life.index:2d} {cells}")
    nothing_lost = lost == 0 and invented == 0 and not reordered and clashes == 0
    print(
        f"VERDICT: lost {lost} -> {'nothing lost' if nothing_lost else 'DATA LOST OR CHANGED'}; "
        f"duplicates {duplicates}; refused CALLs {refused}; median in-life RSS slope "
        f"{_signed(statistics.median(slopes) if slopes else None)} MB/h, over the second half "
        f"of each life {_signed(statistics.median(tail_slopes) if tail_slopes else None)} MB/h "
        f"({len(slopes)} lives)"
    )
    sound201 = report_v201(soak)
    print(f"workdir (store, logs): {soak.workdir}")
    return nothing_lost and refused == 0 and sound201


def report_v201(soak: Soak) -> bool:
    """The ``--v201`` stations' figures and verdict; True if there are none or all is well."""
    verdict = soak.verdict201
    if verdict is None:
        return True
    print(
        f"2.0.1: {len(soak.v201_ids)} stations, {verdict.sessions} sessions, {verdict.events} "
        f"TransactionEvents ({verdict.offline} flagged offline: answered by the gateway), "
        f"{verdict.resent} re-sent by the stations; at the cloud: copies {verdict.copies} "
        f"({verdict.copies_resent} of events the station sent twice), refused CALLs "
        f"{verdict.refused}"
    )
    print(
        "VERDICT 2.0.1: "
        + (
            "every seqNo there, in order, offline flags as answered"
            if verdict.sound
            else "; ".join(verdict.problems()) or f"{verdict.unanswered} left unanswered"
        )
    )
    return verdict.sound


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chargers", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="charger processes")
    parser.add_argument("--connectors", type=int, default=2)
    parser.add_argument(
        "--v201", type=int, default=0, help="OCPP 2.0.1 stations besides (in this process)"
    )
    parser.add_argument("--meter-interval", type=float, default=5.0, help="s between MeterValues")
    parser.add_argument("--sample-every", type=float, default=0.0, help="s (default 30, scaled)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new temp dir")
    parser.add_argument("--calm", action="store_true", help="no outages, no kills")
    parser.add_argument("--no-kills", action="store_true", help="outages, but no kills")
    parser.add_argument(
        "--slow-cloud",
        action="store_true",
        help="a serial cloud (overlapping CALLs refused) that stalls longer than call_timeout",
    )
    parser.add_argument(
        "--call-timeout", type=float, default=0.0, help="the gateway's call_timeout (default 30)"
    )
    parser.add_argument(
        "--probe-memory",
        action="store_true",
        help="tracemalloc in the gateway, a snapshot per sample (memprobe.jsonl; slow)",
    )
    args = parser.parse_args()
    print(machine(), flush=True)
    print(f"open files limit raised to {raise_open_files()}", flush=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="edgegw-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.probe_memory:
        os.environ["EDGEGW_MEMPROBE"] = str(workdir / "memprobe.jsonl")
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(MEMPROBE), os.environ.get("PYTHONPATH")) if p
        )
    soak = Soak(args, workdir)
    chaos = soak.chaos
    stalls = ", ".join(f"{a / 60:.1f} min for {b:.0f} s" for a, b in chaos.stalls)
    print(
        f"chaos plan (seed {args.seed}): outages at "
        f"{', '.join(f'{a / 60:.1f} min for {b:.0f} s' for a, b in chaos.outages)}; "
        f"kills at {', '.join(f'{k / 60:.1f}' for k in chaos.kills)} min"
        + (f"; cloud stalls at {stalls}" if stalls else ""),
        flush=True,
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, soak.interrupt, signum)
    ok = await soak.run()
    return 0 if report(soak, ok) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
