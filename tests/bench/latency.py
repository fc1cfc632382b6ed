"""Added relay latency: the same load sent directly to the cloud and through the gateway.

Run:  .venv/bin/python tests/bench/latency.py --chargers 1000

Two fleets of N simulated chargers each (the capacity benchmark's chargers: 2 connectors,
MeterValues every 10 s per connector, Heartbeat every 60 s) run side by side in one run: one
connects to the minimal cloud directly, the other through a gateway process (``edgegw run``)
in front of the same cloud. By default both fleets run at the same time, interleaved over the
same load-generator processes, so whatever else the machine is doing hits both alike and the
difference is what the gateway adds; ``--sequential`` runs the direct fleet first, then the
gateway fleet, each alone.

Printed: per-message round trip p50/p99 for each path and the difference (targets: at most
1 ms p50 and 10 ms p99 added), with the gateway's CPU per 1,000 messages. Not part of the
test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from capacity import (
    CloudProcess,
    Fleet,
    GroupStats,
    Plan,
    add_load_arguments,
    machine,
    not_at_cloud,
    plan_from,
    raise_open_files,
    rtt_figures,
    stop_gateway,
)
from relay_load import proc_stats, start_gateway

TARGET_P50_MS = 1.0
TARGET_P99_MS = 10.0


async def measure(
    chargers: list[tuple[str, str, str]], plan: Plan, workers: int, gateway_pid: int
) -> tuple[dict[str, GroupStats], float]:
    """Run one fleet through its window; its stats per group and the gateway's CPU (s)."""
    fleet = Fleet(chargers, plan, workers)
    try:
        await fleet.connected()
        start = time.monotonic() + 1.0
        stop = fleet.go(start)
        await asyncio.sleep(start - time.monotonic())
        cpu0, _ = proc_stats(gateway_pid)
        await asyncio.sleep(max(0.0, stop - time.monotonic()))
        cpu1, _ = proc_stats(gateway_pid)
        return await fleet.results(), cpu1 - cpu0
    finally:
        fleet.kill()


def report(name: str, stats: GroupStats, lost: int) -> tuple[float, float]:
    p50, p99 = rtt_figures(stats)
    print(
        f"  {name:8s} {stats.chargers - stats.connect_failed:5d} chargers"
        f" {len(stats.rtts):7d} round trips  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  lost {lost}"
    )
    for problem in stats.problems[:3]:
        print("     ", problem)
    return p50, p99


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chargers", type=int, default=1000, help="chargers per path")
    parser.add_argument("--sequential", action="store_true", help="one path after the other")
    add_load_arguments(parser)
    args = parser.parse_args()
    plan = plan_from(args)
    raise_open_files()
    n = args.chargers
    print(machine())
    print(
        f"load: {n} chargers per path, 2 connectors each, MeterValues every {plan.interval:g} s "
        f"per connector, Heartbeat every {plan.heartbeat:g} s; {plan.seconds:g} s measured; "
        f"{'sequential' if args.sequential else 'both paths at once, interleaved'}; "
        f"{args.workers} load-generator processes + 1 cloud process"
    )
    cloud = CloudProcess()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            proc, url, sock = await start_gateway(Path(tmp), "latency", cloud.port)
            try:
                direct = [("direct", cloud.url, f"DIR{i:05d}") for i in range(n)]
                relayed = [("gateway", url, f"GW{i:05d}") for i in range(n)]
                cloud.stats()
                if args.sequential:
                    stats, _ = await measure(direct, plan, args.workers, proc.pid)
                    more, cpu = await measure(relayed, plan, args.workers, proc.pid)
                    stats.update(more)
                else:
                    mixed = [c for pair in zip(direct, relayed, strict=True) for c in pair]
                    stats, cpu = await measure(mixed, plan, args.workers, proc.pid)
                received = cloud.stats()
            finally:
                await stop_gateway(proc)
                sock.close()
    finally:
        cloud.stop()
    d, g = stats["direct"], stats["gateway"]
    # The cloud counts both fleets together: what either lost shows as missing there.
    both = GroupStats()
    both.merge(d)
    both.merge(g)
    missing = not_at_cloud(both, received)
    d50, d99 = report("direct", d, d.lost + d.errors)
    g50, g99 = report("gateway", g, g.lost + g.errors + missing)
    messages = g.answered * 2
    print(
        f"  added by the gateway: p50 {g50 - d50:+.2f} ms (target <= {TARGET_P50_MS:g}), "
        f"p99 {g99 - d99:+.2f} ms (target <= {TARGET_P99_MS:g}); "
        f"gateway CPU {cpu / max(messages, 1) * 1e6:.1f} ms per 1000 messages"
    )


if __name__ == "__main__":
    asyncio.run(main())
