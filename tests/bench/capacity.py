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
``--max-p99-ms``. Also printed: the resident memory each connected charger added before the
window (KiB/ch, VmRSS after set-up minus VmRSS before the first connection).

``--ocpp 2.0.1`` runs a fleet of OCPP 2.0.1 stations (TransactionEvent Updated every
``--interval`` instead of MeterValues), ``--ocpp mixed`` one where ``--v201-share`` of them are
(figures per version too). The frames are :mod:`dialects`', written for this load generator.

``--cpu-quota 25`` runs each relay in a cgroup limited to 25 % of one core (:mod:`cpuquota`:
cgroup v2 ``cpu.max``, else v1 ``cpu.cfs_quota_us``; root needed, removed afterwards; the load
generator and the cloud stay outside) and finds, for the gateway and then for the byte-pipe
relay, the most chargers carried with 0 lost and p99 within ``--max-p99-ms``: the
``--chargers`` steps until one misses, then halving the gap down to ``--resolution``.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import os
import platform
import resource
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from cpuquota import CpuQuota, QuotaUnavailable
from dialects import OCPP16, OCPP201
from loadgen import CloudProcess, Entry, Fleet, GroupStats, Plan
from relay_load import proc_stats, start_gateway

__all__ = ["CloudProcess", "Fleet", "GroupStats", "Plan"]  # for latency.py


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
    idle_kib_per_charger: float = float("nan")
    """Resident memory each connected charger added before the window (VmRSS)."""
    notes: list[str] = field(default_factory=list)
    """Further lines: per OCPP version in a mixed fleet, throttling under a quota."""

    def passed(self, max_p99_ms: float) -> bool:
        return self.lost == 0 and self.up == self.chargers and self.p99_ms <= max_p99_ms

    def line(self) -> str:
        return (
            f"{self.chargers:6d} {self.up:6d} {self.calls_per_s:8.0f} {self.calls_per_s * 2:8.0f}"
            f" {self.lost:5d} {self.p50_ms:8.2f} {self.p99_ms:8.2f}"
            f" {self.cpu_ms_per_1000:10.1f} {self.peak_rss_mib:8.1f}"
            f" {self.idle_kib_per_charger:7.1f} {self.connect_s:9.1f}  {self.relay}"
        )

    def report(self) -> str:
        return "\n".join([self.line(), *(f"       {note}" for note in self.notes)])


def against_floor(step: Step, floor: Step) -> str:
    """The gateway's figures as multiples of (or additions to) the byte-pipe relay's."""
    cpu = step.cpu_ms_per_1000 / floor.cpu_ms_per_1000
    return (
        f"       edgegw vs byte-pipe: CPU per 1k x{cpu:.2f}"
        f" (target <= 1.3), p99 {step.p99_ms - floor.p99_ms:+.2f} ms,"
        f" RSS {step.peak_rss_mib - floor.peak_rss_mib:+.1f} MiB"
    )


HEADER = (
    "chargers     up  calls/s   msgs/s  lost  p50(ms)  p99(ms)  CPU ms/1k  RSS MiB  KiB/ch"
    "  set-up s  relay\n"
    "-----------------------------------------------------------------------------------------"
    "-----------------"
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


@dataclass(frozen=True, slots=True)
class Setup:
    """What every step of a run shares: the load, its fleet's OCPP versions, the quota."""

    plan: Plan
    workers: int
    cloud: CloudProcess
    tmp: Path
    v201_share: float = 0.0  # fraction of the chargers that speak OCPP 2.0.1
    cpu_quota: float | None = None  # % of one core for the relay under test
    profile_dir: Path | None = None


def fleet_of(n: int, url: str, v201_share: float) -> list[Entry]:
    """``n`` chargers, the 2.0.1 ones spread evenly among the 1.6 ones; grouped by version."""
    entries: list[Entry] = []
    for i in range(n):
        v201 = int((i + 1) * v201_share) > int(i * v201_share)
        version = OCPP201 if v201 else OCPP16
        entries.append((version, url, f"CAP{i:05d}", version))
    return entries


def current_rss(pid: int) -> int:
    """The process's resident memory now (VmRSS), bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def run_step(n: int, setup: Setup, *, pipe: bool = False) -> Step:
    """One step through the gateway, or (``pipe``) through the byte-pipe relay."""
    relay = "byte-pipe" if pipe else "edgegw"
    with contextlib.ExitStack() as stack:
        quota = None
        if setup.cpu_quota is not None:
            name = f"edgegw-bench-{os.getpid()}-{relay}"
            quota = stack.enter_context(CpuQuota(setup.cpu_quota, name))
        return await _run_step(n, setup, relay, quota)
    raise AssertionError("unreachable")


async def _run_step(n: int, setup: Setup, relay: str, quota: CpuQuota | None) -> Step:
    plan, cloud = setup.plan, setup.cloud
    sock = None
    if relay == "byte-pipe":
        proc, url = await start_pipe(cloud.port)
    else:
        proc, url, sock = await start_gateway(setup.tmp, f"capacity{n}", cloud.port)
    if quota is not None:
        quota.add(proc.pid)  # after start-up: the relay's steady state is measured
    fleet: Fleet | None = None
    spy: asyncio.Task[None] | None = None
    try:
        rss_empty = current_rss(proc.pid)
        cloud.stats()  # reset the cloud's counters
        connecting = time.monotonic()
        fleet = Fleet(fleet_of(n, url, setup.v201_share), plan, setup.workers)
        up = await fleet.connected()
        connect_s = time.monotonic() - connecting
        idle_kib = (current_rss(proc.pid) - rss_empty) / 1024 / max(up, 1)
        start = time.monotonic() + 1.0
        stop = fleet.go(start)
        await asyncio.sleep(start - time.monotonic())
        cpu0, _ = proc_stats(proc.pid)
        throttled0 = quota.throttled() if quota is not None else (0, 0.0)
        if setup.profile_dir is not None:
            out = setup.profile_dir / f"{relay}-{n}.txt"
            spy = asyncio.ensure_future(profile(proc.pid, plan.seconds, out))  # noqa: TID251
        await asyncio.sleep(max(0.0, stop - time.monotonic()))
        cpu1, rss = proc_stats(proc.pid)
        throttled1 = quota.throttled() if quota is not None else (0, 0.0)
        if spy is not None:
            await spy
        groups = await fleet.results()
        received = cloud.stats()
    finally:
        if fleet is not None:
            fleet.kill()
        await stop_gateway(proc)
        if sock is not None:
            sock.close()
    stats = GroupStats()
    for group in groups.values():
        stats.merge(group)
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
        relay=relay,
        idle_kib_per_charger=idle_kib,
    )
    if len(groups) > 1:
        for version, group in sorted(groups.items()):
            g50, g99 = rtt_figures(group)
            step.notes.append(
                f"{version}: {group.chargers} chargers, {group.answered / plan.seconds:.0f} "
                f"calls/s, lost {group.lost + group.errors}, p50 {g50:.2f} ms, p99 {g99:.2f} ms"
            )
    if quota is not None:
        count, seconds = throttled1[0] - throttled0[0], throttled1[1] - throttled0[1]
        busy = (cpu1 - cpu0) / plan.seconds * 100
        step.notes.append(
            f"under {quota.percent:g} % of one core: used {busy:.1f} %, throttled {count} "
            f"times for {seconds:.1f} s in all"
        )
    return step


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


def why_missed(step: Step, max_p99_ms: float) -> str:
    if step.up != step.chargers:
        return "chargers not up"
    return "lost messages" if step.lost else f"p99 over {max_p99_ms:g} ms"


async def ramp(setup: Setup, args: argparse.Namespace) -> None:
    """Each step through the gateway, then through the byte-pipe relay; stop at a miss."""
    for n in args.chargers:
        step = await run_step(n, setup)
        print(step.report(), flush=True)
        for problem in step.problems[:3]:
            print("     ", problem)
        if not args.no_floor:
            floor = await run_step(n, setup, pipe=True)
            print(floor.report(), flush=True)
            print(against_floor(step, floor), flush=True)
        if not step.passed(args.max_p99_ms):
            print(f"target missed at {n} chargers: {why_missed(step, args.max_p99_ms)}")
            if not args.keep_going:
                break


async def most_carried(
    setup: Setup, args: argparse.Namespace, *, pipe: bool
) -> tuple[Step | None, bool]:
    """The most chargers one relay carries (0 lost, p99 within target): the steps of
    ``--chargers`` until one misses, then halving the gap down to ``--resolution``."""
    best: Step | None = None
    missed: int | None = None

    async def probe(n: int) -> bool:
        nonlocal best, missed
        step = await run_step(n, setup, pipe=pipe)
        print(step.report(), flush=True)
        if step.passed(args.max_p99_ms):
            if best is None or n > best.chargers:
                best = step
            return True
        print(f"       missed at {n}: {why_missed(step, args.max_p99_ms)}")
        missed = n if missed is None else min(missed, n)
        return False

    for n in sorted(args.chargers):
        if not await probe(n):
            break
    while best is not None and missed is not None and missed - best.chargers > args.resolution:
        gap = (missed - best.chargers) // 2
        await probe(best.chargers + max(args.resolution, gap // args.resolution * args.resolution))
    return best, missed is None


async def under_quota(setup: Setup, args: argparse.Namespace) -> None:
    edgegw, edgegw_open = await most_carried(setup, args, pipe=False)
    floor, floor_open = (
        (None, False) if args.no_floor else await most_carried(setup, args, pipe=True)
    )
    carried = edgegw.chargers if edgegw else 0
    print(f"under {setup.cpu_quota:g} % of one core (0 lost, p99 <= {args.max_p99_ms:g} ms):")
    at_least = " at least" if edgegw_open else ""
    print(f"  edgegw    carries{at_least} {carried}" + (f": {edgegw.line()}" if edgegw else ""))
    if floor is not None:
        at_least = " at least" if floor_open else ""
        print(f"  byte-pipe carries{at_least} {floor.chargers}: {floor.line()}")
        print(f"  edgegw / byte-pipe: {carried / floor.chargers:.0%} (target >= 80 %)")


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
        "--profile", type=Path, help="directory: py-spy each relay in each window (raw stacks)"
    )
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help="skip the byte-pipe relay (bytepipe.py) run after each step under the same load",
    )
    parser.add_argument(
        "--ocpp",
        choices=["1.6", "2.0.1", "mixed"],
        default="1.6",
        help="the fleet's OCPP version (mixed: --v201-share of them speak 2.0.1)",
    )
    parser.add_argument("--v201-share", type=float, default=0.5, help="with --ocpp mixed")
    parser.add_argument(
        "--cpu-quota",
        type=float,
        metavar="PERCENT",
        help="run each relay in a cgroup limited to PERCENT %% of one core and find the most "
        "chargers each carries (the --chargers steps, then halving the gap)",
    )
    parser.add_argument(
        "--resolution", type=int, default=50, help="with --cpu-quota: chargers (default 50)"
    )
    add_load_arguments(parser)
    args = parser.parse_args()
    plan = plan_from(args)
    files = raise_open_files()
    share = {"1.6": 0.0, "2.0.1": 1.0}.get(args.ocpp, args.v201_share)
    print(machine())
    fleet = {0.0: "OCPP 1.6", 1.0: "OCPP 2.0.1"}.get(share, f"{share:.0%} OCPP 2.0.1")
    periodic = {0.0: "MeterValues", 1.0: "TransactionEvent Updated"}.get(
        share, "MeterValues (1.6) / TransactionEvent Updated (2.0.1)"
    )
    print(
        f"load: {fleet}, 2 connectors per charger, {periodic} every {plan.interval:g} s per "
        f"connector, Heartbeat every {plan.heartbeat:g} s; {plan.seconds:g} s measured per step; "
        f"{args.workers} load-generator processes + 1 cloud process; open files {files}"
    )
    if args.cpu_quota is not None:
        try:
            print(CpuQuota(args.cpu_quota, f"edgegw-bench-{os.getpid()}-<relay>").describe())
        except QuotaUnavailable as exc:
            sys.exit(f"--cpu-quota: {exc}")
        print("the load generator and the cloud run outside the cgroup")
    print(HEADER)
    cloud = CloudProcess()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            setup = Setup(
                plan=plan,
                workers=args.workers,
                cloud=cloud,
                tmp=Path(tmp),
                v201_share=share,
                cpu_quota=args.cpu_quota,
                profile_dir=args.profile,
            )
            if args.cpu_quota is None:
                await ramp(setup, args)
            else:
                await under_quota(setup, args)
    finally:
        cloud.stop()


if __name__ == "__main__":
    asyncio.run(main())
