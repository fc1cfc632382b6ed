"""What one relayed message costs the gateway: Python calls, event-loop iterations, CPU.

Run:  .venv/bin/python tests/bench/relaycore.py [--calls 3000] [--action Heartbeat]

One charger sends ``--calls`` calls one after the other through a gateway process (``edgegw
run``) to the minimal cloud (its own process, answers at once); each call and its answer are two
relayed messages. With one call in flight at a time nothing is batched, so the figures do not
depend on the load of the machine: the calls per message and loop iterations per message are
exact counts (a deterministic cProfile of the gateway over a second window of the same calls;
a profiled gateway runs several times slower, so the CPU figure comes from the unprofiled
window). Printed per relayed message: the gateway's CPU (µs, unprofiled), its Python calls
(all, and those of the relay plumbing: the session, its queue, the link, the frame sends, the
event loop and websockets' send), and event-loop iterations (``_run_once``). ``--action
MeterValues`` sends a transaction's MeterValues instead of Heartbeats. Not part of the test
suite.

The same calls then go through the byte-pipe relay (``bytepipe.py``: copies frames, nothing
else) as the floor, its figures printed beside (``--no-floor`` skips it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import CloudProcess
from relay_load import BOOT, meter_values, proc_stats, start_gateway

PROFILER = Path(__file__).parent / "cprofsite"  # the sitecustomize: SIGUSR1/SIGUSR2

PLUMBING = (
    "edgegw/proxy/session.py",
    "edgegw/proxy/fifo.py",
    "edgegw/proxy/link",
    "edgegw/proxy/sendnow.py",
    "edgegw/proxy/upstream.py",
    "edgegw/security/guarded.py",
    "websockets/asyncio/connection.py",
    "contextlib.py",
    "asyncio/base_events.py",
    "asyncio/events.py",
    "asyncio/futures.py",
    "asyncio/tasks.py",
)
"""Files whose calls count as the relay's plumbing (what moves a frame, not what reads it)."""


async def calls(ws: ClientConnection, action: str, count: int, first: int) -> None:
    for n in range(first, first + count):
        payload = meter_values(n) if action == "MeterValues" else {}
        await ws.send(json.dumps([2, f"m{n}", action, payload]))
        while True:
            frame = json.loads(await ws.recv())
            if frame[0] != 2:
                break
            # The gateway's own calls (its commissioning probe): not supported here.
            await ws.send(json.dumps([4, frame[1], "NotSupported", "", {}]))
        if frame[:2] != [3, f"m{n}"]:
            raise RuntimeError(f"unexpected answer {frame!r}")


def figures(path: Path, messages: int) -> tuple[float, float, float]:
    """Python calls per message (all, plumbing) and loop iterations per message."""
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    total = plumbing = loops = 0
    for (filename, _line, name), (_cc, ncalls, _tt, _ct, callers) in stats.items():
        if "poll" in name:
            continue
        total += ncalls
        if name == "_run_once":
            loops += ncalls
        if any(part in filename for part in PLUMBING):
            plumbing += ncalls
        elif filename == "~":  # builtins: counted where a plumbing file calls them
            plumbing += sum(
                c[1] for f, c in callers.items() if any(part in f[0] for part in PLUMBING)
            )
    return total / messages, plumbing / messages, loops / messages


async def start_bytepipe(cloud_port: int) -> tuple[asyncio.subprocess.Process, str]:
    """The byte-pipe relay (``bytepipe.py``) in front of the cloud: the floor."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).parent / "bytepipe.py"),
        "--cloud",
        f"ws://127.0.0.1:{cloud_port}/ocpp",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    ready = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    return proc, f"ws://127.0.0.1:{int(ready.split()[1])}/ocpp"


async def measure(
    relay: str, cloud_port: int, tmp: Path, action: str, count: int
) -> tuple[float, float, Path]:
    """Run the calls through ``relay`` ("gateway" or "floor"): its CPU (s), the calls' wall
    time (s, both unprofiled) and its cProfile dump of the same calls again."""
    profile = tmp / f"{relay}.{'edgegw' if relay == 'gateway' else 'bytepipe'}"
    saved = dict(os.environ)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROFILER), saved.get("PYTHONPATH", "")) if p
    )
    os.environ["EDGEGW_CPROF"] = str(tmp / relay)
    sock: socket.socket | None = None
    try:
        if relay == "gateway":
            proc, url, sock = await start_gateway(
                tmp, "relaycore", cloud_port, server="max_messages_per_second = 0\n"
            )
        else:
            proc, url = await start_bytepipe(cloud_port)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        async with connect(f"{url}/RC1", subprotocols=[Subprotocol("ocpp1.6")], proxy=None) as ws:
            await ws.send(json.dumps([2, "boot", "BootNotification", BOOT]))
            await ws.recv()
            await calls(ws, action, 300, 0)  # warm-up
            cpu0, _ = proc_stats(proc.pid)
            started = time.perf_counter()
            await calls(ws, action, count, 1000)
            wall = time.perf_counter() - started
            cpu1, _ = proc_stats(proc.pid)
            os.kill(proc.pid, signal.SIGUSR1)
            await asyncio.sleep(0.2)
            await calls(ws, action, count, 1000 + count)
            os.kill(proc.pid, signal.SIGUSR2)
            for _ in range(100):
                if profile.exists():
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)  # (written at once; let the file be complete)
    finally:
        proc.terminate()
        await proc.wait()
        if sock is not None:
            sock.close()
    return cpu1 - cpu0, wall, profile


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--action", choices=("Heartbeat", "MeterValues"), default="Heartbeat")
    parser.add_argument("--keep", type=Path, help="keep the gateway's cProfile dump here")
    parser.add_argument("--no-floor", action="store_true", help="skip the byte-pipe relay")
    args = parser.parse_args()
    messages = 2 * args.calls
    print(f"{args.action}, {args.calls} calls one at a time (2 relayed messages each)")
    cloud = CloudProcess()
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            for relay in ("gateway",) if args.no_floor else ("gateway", "floor"):
                cpu, wall, profile = await measure(relay, cloud.port, tmp, args.action, args.calls)
                total, plumbing, loops = figures(profile, messages)
                if args.keep is not None and relay == "gateway":
                    args.keep.write_bytes(profile.read_bytes())
                name = "edgegw   " if relay == "gateway" else "byte-pipe"
                print(
                    f"{name}: {total:6.1f} Python calls/msg ({plumbing:5.1f} relay plumbing), "
                    f"{loops:.2f} event-loop iterations/msg; "
                    f"CPU {cpu * 1e6 / messages:4.0f} us/msg, "
                    f"round trip {wall * 1e3 / args.calls:.2f} ms/call (unprofiled; noisy)"
                )
    finally:
        cloud.stop()


if __name__ == "__main__":
    asyncio.run(main())
