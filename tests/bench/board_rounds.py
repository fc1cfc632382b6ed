"""CPU of one load-capping round (``plan_round``) with boards, with and without their own
meters: a site model with N sessions spread over B boards, every car following its limit.

    python -m tests.bench.board_rounds [--sessions 200] [--boards 0 2 10] [--rounds 200]

Prints the median and p95 CPU per round (ms) for each case. No assertion: a figure to watch.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from tests.energy.test_board_meters import Park


def build(sessions: int, boards: int, metered: bool) -> Park:
    circuits: list[dict[str, Any]] = []
    for b in range(boards):
        circuit: dict[str, Any] = {"name": f"B{b}", "limit_a": 100, "margin_a": 2}
        if metered:
            circuit["meter"] = f"m{b}"
            circuit["meter_role"] = "total" if b % 2 == 0 else "non_ev"
        circuits.append(circuit)
    chargers: list[dict[str, Any]] = []
    for i in range(sessions):
        charger: dict[str, Any] = {
            "id": f"C{i:04d}",
            "max_current_a": 32,
            "phases": f"L{i % 3 + 1}",
        }
        if boards:
            charger["circuit"] = f"B{i % boards}"
        chargers.append(charger)
    park = Park(circuits, chargers, site={"limit_a": 2000, "margin_a": 5})
    park.own = {c["name"]: (10.0, 12.0, 14.0) for c in circuits}
    for i, charger in enumerate(chargers):
        park.plug(charger["id"], i + 1)
    park.settle(rounds=3)
    return park


def measure(park: Park, rounds: int) -> tuple[float, float]:
    cpu: list[float] = []
    for _ in range(rounds):
        park.ack_all()
        park.now += 0.2
        park.follow()
        started = time.process_time()
        park.round()
        cpu.append((time.process_time() - started) * 1000)
    cpu.sort()
    return statistics.median(cpu), cpu[int(0.95 * (len(cpu) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--boards", type=int, nargs="+", default=[0, 2, 10])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    print(f"{'boards':>6} {'meters':>6} {'sessions':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for boards in args.boards:
        for metered in (False, True) if boards else (False,):
            park = build(args.sessions, boards, metered)
            p50, p95 = measure(park, args.rounds)
            shown = "yes" if metered else "no"
            print(f"{boards:>6} {shown:>6} {args.sessions:>8} {p50:>8.2f} {p95:>8.2f}")


if __name__ == "__main__":
    main()
