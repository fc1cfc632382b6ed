"""Load-capping reaction benchmark: from a meter step to every charger holding its new limit.

Run:  .venv/bin/python tests/bench/loadcap_reaction.py --chargers 20 200 --steps 10

This process hosts the site's CSMS (raw OCPP-J frames over websockets, answering at once) and
the :class:`~edgegw.energy.controller.LoadController` with its round loop running as in the
daemon (``control_interval`` 1 s; the meter step is signalled with ``meter_event()``, as the
meter poller does). The simulated chargers (``SimCharger``, one session each) run in a child
process so that their own OCPP handling does not compete with the controller for the CPU.

Each step moves the building load so that every session's fair share changes (down, then up
again), and measures, per charger, the time from the meter step to the charger's Accepted
answer to its new SetChargingProfile. Printed per fleet size: p50/p99/max over all chargers and
steps. Cuts are measured on the way down; raises on the way up (ramp set high so each raise is
one profile). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from websockets.asyncio.server import ServerConnection, serve

from edgegw.config import parse_config
from edgegw.energy.chargermodels import load_models
from edgegw.energy.controller import LoadController
from edgegw.energy.registers import Reading
from edgegw.ocpp.events import ChargerConnected
from edgegw.ocpp.interpret import interpret
from edgegw.sim.charger import SimCharger

TAG = "AA11BB22"
MAX_A = 16.0
MIN_CHANGE_A = 0.5
"""The site's ``min_change_a``: a limit within this of its target is not moved again."""
MODELS_DIR = Path(__file__).resolve().parents[2] / "hardware" / "chargers"


# ------------------------------------------------------------------ child: the chargers


async def fleet(url: str, count: int) -> None:
    chargers = [SimCharger(f"LC{i:04d}", url, connectors=1, history=20) for i in range(count)]
    for charger in chargers:
        await charger.connect()
        await charger.boot()
        await charger.status(1, "Available")
        await charger.tap(TAG)
        await charger.meter_values(1)
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF
    for charger in chargers:
        await charger.close()


# ------------------------------------------------------------------ parent: CSMS + controller


@dataclass
class Sample:
    reading: Reading
    at: float


class Csms:
    """Answers chargers at once, reports exchanges to the controller, carries its calls."""

    def __init__(self) -> None:
        self.controller: Any = None
        self.peers: dict[str, ServerConnection] = {}
        self.pending: dict[str, asyncio.Future[Any]] = {}
        self.ids = itertools.count(1)
        self.tx = itertools.count(1)
        self.connected = asyncio.Event()
        self.expected = 0
        self.accepted_at: dict[str, float] = {}

    async def handler(self, ws: ServerConnection) -> None:
        cid = unquote((ws.request.path if ws.request else "").rsplit("/", 1)[-1])
        self.peers[cid] = ws
        self.controller.handle(ChargerConnected(charger_id=cid, at=time.monotonic()))
        if len(self.peers) >= self.expected:
            self.connected.set()
        async for message in ws:
            frame = json.loads(message)
            if frame[0] == 2:
                answer = self.answer(frame[2], frame[3])
                await ws.send(json.dumps([3, frame[1], answer]))
                for event in interpret(cid, frame[2], frame[3], answer, time.monotonic()):
                    self.controller.handle(event)
            elif frame[0] in (3, 4):
                future = self.pending.pop(frame[1], None)
                if future is not None and not future.done():
                    if frame[0] == 3:
                        future.set_result(frame[2])
                    else:
                        future.set_exception(RuntimeError(f"CALLERROR {frame[2]}"))

    def answer(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        now = "2026-01-01T00:00:00Z"
        if action == "BootNotification":
            return {"status": "Accepted", "currentTime": now, "interval": 300}
        if action == "Heartbeat":
            return {"currentTime": now}
        if action == "Authorize":
            return {"idTagInfo": {"status": "Accepted"}}
        if action == "StartTransaction":
            return {"transactionId": next(self.tx), "idTagInfo": {"status": "Accepted"}}
        if action == "StopTransaction":
            return {"idTagInfo": {"status": "Accepted"}}
        return {}

    async def call(self, cid: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        ws = self.peers[cid]
        message_id = f"lc-{next(self.ids)}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[message_id] = future
        await ws.send(json.dumps([2, message_id, action, payload]))
        answer: dict[str, Any] = await future
        if action == "SetChargingProfile" and answer.get("status") == "Accepted":
            self.accepted_at[cid] = time.perf_counter()
        return answer


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def run(count: int, steps: int) -> None:
    models = load_models(MODELS_DIR)
    limit = count * MAX_A + 20.0  # room for every car at its max, over a 18 A building base
    config = parse_config(
        {
            "site": {
                "limit_a": limit,
                "margin_a": 2,
                "meter_role": "non_ev",
                "ramp_a_per_s": 1000,
                "control_interval": 1.0,
                "min_change_a": MIN_CHANGE_A,
                "decision_log_size": 0,
            },
            "buses": {"main": {"transport": "tcp", "host": "127.0.0.1"}},
            "meters": [{"profile": "eastron-sdm630"}],
            "server": {"allow_unknown_chargers": True},
        }
    )
    building = [0.0]

    def latest() -> Sample:
        b = building[0]
        return Sample(Reading(current_l1_a=b, current_l2_a=b, current_l3_a=b), time.monotonic())

    csms = Csms()
    csms.expected = count
    controller = LoadController(config, models, csms.call, latest)
    csms.controller = controller
    async with serve(
        csms.handler,
        "127.0.0.1",
        0,
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        compression=None,
        ping_interval=None,
        max_queue=None,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--fleet",
            f"ws://127.0.0.1:{port}/ocpp",
            str(count),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert child.stdout is not None and child.stdin is not None
        controller.start()
        line = await asyncio.wait_for(child.stdout.readline(), 300)
        if line.strip() != b"READY":
            raise RuntimeError(f"fleet did not start: {line!r}")
        # Everyone charging at (about) the max, every profile in place. A session may keep a
        # limit just below it (e.g. 15.9 A): a raise smaller than min_change_a is not sent.
        building[0] = 18.0
        controller.meter_event()
        await controller.wait_until(
            lambda: (
                all(
                    s.limit_a is not None
                    and MAX_A - s.limit_a <= MIN_CHANGE_A
                    and MAX_A - s.offered_a <= MIN_CHANGE_A
                    for c in controller.state().chargers
                    for s in c.sessions
                )
                and controller.settled()
            ),
            timeout=120,
        )
        cuts: list[float] = []
        raises: list[float] = []
        round_cpu: list[float] = []
        for step in range(steps):
            down = step % 2 == 0
            # Down: every share drops from 16 A to ~10 A; up: back to 16 A.
            building[0] = 18.0 + (6.0 * count if down else 0.0)
            csms.accepted_at.clear()
            t0 = time.perf_counter()
            controller.meter_event()
            expected = MAX_A if not down else (count * MAX_A - 6.0 * count) / count

            def done(expected: float = expected) -> bool:
                if len(csms.accepted_at) < count or not controller.settled():
                    return False  # cheap checks first: this runs after every answer
                sessions = [s for c in controller.state().chargers for s in c.sessions]
                return all(abs(s.offered_a - expected) <= MIN_CHANGE_A for s in sessions)

            await controller.wait_until(done, timeout=120)
            samples = [t - t0 for t in csms.accepted_at.values()]
            assert len(samples) == count, len(samples)
            (cuts if down else raises).extend(samples)
            # CPU of one round at this size, measured separately.
            c0 = time.process_time()
            controller.run_round()
            round_cpu.append(time.process_time() - c0)
        child.stdin.close()
        await child.wait()
        await controller.close()

    def ms(values: list[float], q: float) -> float:
        return percentile(values, q) * 1000

    print(
        f"{count:4d} chargers: cut   p50 {ms(cuts, 0.5):7.1f} ms  p99 {ms(cuts, 0.99):7.1f} ms"
        f"  max {max(cuts) * 1000:7.1f} ms  ({len(cuts)} profiles)"
    )
    print(
        f"{'':4s}           raise p50 {ms(raises, 0.5):7.1f} ms  p99 {ms(raises, 0.99):7.1f} ms"
        f"  max {max(raises) * 1000:7.1f} ms  ({len(raises)} profiles)"
    )
    cpu = statistics.median(round_cpu) * 1000
    print(f"{'':4s}           one round (allocate + plan): {cpu:.1f} ms CPU")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chargers", type=int, nargs="+", default=[20, 200])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--fleet", nargs=2, metavar=("URL", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fleet:
        await fleet(args.fleet[0], int(args.fleet[1]))
        return
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; chargers in a separate process"
    )
    for count in args.chargers:
        await run(count, args.steps)


if __name__ == "__main__":
    asyncio.run(main())
