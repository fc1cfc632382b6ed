"""Relay load benchmark: N chargers through a gateway process to a minimal cloud.

Run:  .venv/bin/python tests/bench/relay_load.py --chargers 100 500 1000 --seconds 20

The gateway runs as its own process (`edgegw run`); this process hosts the chargers and a
minimal cloud that answers every call at once, so the figures are the gateway's. Each charger
boots, then sends a MeterValues every `--interval` seconds. Printed per step: messages relayed
per second, round-trip p50/p99 as the charger sees it (charger → gateway → cloud → back),
the gateway's CPU time per 1,000 messages and its peak RSS. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

BOOT = {"chargePointVendor": "Bench", "chargePointModel": "Load"}


async def cloud_handler(ws: ServerConnection) -> None:
    async for message in ws:
        frame = json.loads(message)
        if frame[0] == 2:
            payload: dict[str, object] = {}
            if frame[2] == "BootNotification":
                payload = {
                    "status": "Accepted",
                    "currentTime": "2026-01-01T00:00:00Z",
                    "interval": 300,
                }
            await ws.send(json.dumps([3, frame[1], payload]))


def meter_values(n: int) -> dict[str, object]:
    return {
        "connectorId": 1,
        "transactionId": 1,
        "meterValue": [
            {
                "timestamp": "2026-01-01T00:00:00Z",
                "sampledValue": [
                    {
                        "value": str(1000 + n),
                        "measurand": "Energy.Active.Import.Register",
                        "unit": "Wh",
                    },
                    {"value": "16.0", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
                    {"value": "16.0", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
                    {"value": "16.0", "measurand": "Current.Import", "phase": "L3", "unit": "A"},
                ],
            }
        ],
    }


async def charger(  # noqa: PLR0917
    url: str,
    cid: str,
    interval: float,
    stop_at: float,
    rtts: list[float],
    errors: list[str],
    ready: asyncio.Event | None = None,
) -> None:
    try:
        async with connect(
            f"{url}/{cid}",
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            proxy=None,
            open_timeout=60,
            ping_interval=None,
        ) as ws:
            await ws.send(json.dumps([2, "boot", "BootNotification", BOOT]))
            await ws.recv()
            await asyncio.sleep(random.uniform(0, interval))
            n = 0
            while time.monotonic() < stop_at:
                n += 1
                sent = time.perf_counter()
                await ws.send(json.dumps([2, f"m{n}", "MeterValues", meter_values(n)]))
                answer = json.loads(await ws.recv())
                if answer[0] != 3:
                    errors.append(str(answer))
                rtts.append(time.perf_counter() - sent)
                await asyncio.sleep(interval)
    except Exception as exc:  # a benchmark reports failures, it does not stop on them
        errors.append(f"{cid}: {type(exc).__name__}: {exc}")


def proc_stats(pid: int) -> tuple[float, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            rss = int(line.split()[1]) * 1024
    return cpu, rss


async def start_gateway(
    tmp: Path, name: str, cloud_port: int, extra: str = "", server: str = ""
) -> tuple[asyncio.subprocess.Process, str, socket.socket]:
    """Run `edgegw run` on a generated config; returns the process, its URL and notify socket.
    ``server``: more lines for the ``[server]`` table, ``extra``: more tables.

    The gateway logs at ``warning`` to this process's stderr; set ``BENCH_GATEWAY_LOG=info`` to
    see more (long garbage-collector pauses are logged at info).
    """
    level = os.environ.get("BENCH_GATEWAY_LOG", "warning")
    config = tmp / f"{name}.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = 0\nallow_unknown_chargers = true\n'
        # All simulated chargers come from 127.0.0.1: lift the per-address admission limits.
        "max_connections_per_address = 100000\nmax_pending_handshakes = 100000\n"
        f"{server}"
        f'[cloud]\nurl = "ws://127.0.0.1:{cloud_port}/ocpp"\n'
        f'[store]\npath = "{tmp / f"{name}.db"}"\n{extra}\n[logging]\nlevel = "{level}"\n'
        f'[control]\nsocket = "{tmp / f"{name}.control"}"\ngroup = ""\n'
    )
    notify = tmp / f"{name}.notify"
    notify.unlink(missing_ok=True)  # a step run again with the same charger count
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.setblocking(False)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edgegw",
        "run",
        "--config",
        str(config),
        env=dict(os.environ, NOTIFY_SOCKET=str(notify)),
    )
    loop = asyncio.get_running_loop()
    ready = (await asyncio.wait_for(loop.sock_recv(sock, 4096), 60)).decode()
    return proc, f"ws://127.0.0.1:{int(ready.rsplit(' ', 1)[1])}/ocpp", sock


async def run_step(n: int, seconds: float, interval: float, tmp: Path, cloud_port: int) -> None:
    proc, url, sock = await start_gateway(tmp, f"bench{n}", cloud_port)
    rtts: list[float] = []
    errors: list[str] = []
    cpu0, _ = proc_stats(proc.pid)
    stop_at = time.monotonic() + seconds
    started = time.monotonic()
    await asyncio.gather(
        *(charger(url, f"B{i:05d}", interval, stop_at, rtts, errors) for i in range(n))
    )
    elapsed = time.monotonic() - started
    cpu1, rss = proc_stats(proc.pid)
    proc.terminate()
    await proc.wait()
    sock.close()
    rtts.sort()
    count = len(rtts)
    p50 = statistics.median(rtts) * 1000 if rtts else float("nan")
    p99 = rtts[int(count * 0.99) - 1] * 1000 if count >= 100 else float("nan")
    relayed = count * 2  # each call and its answer
    print(
        f"{n:5d} chargers: {count / elapsed:8.0f} calls/s  rtt p50 {p50:6.2f} ms  p99 {p99:7.2f} ms"
        f"  gateway CPU {(cpu1 - cpu0) / max(relayed, 1) * 1000 * 1000:6.1f} ms/1000 msgs"
        f"  peak RSS {rss / 2**20:6.1f} MiB  errors {len(errors)}"
    )
    for line in errors[:3]:
        print("   ", line)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chargers", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args()
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; MeterValues every {args.interval} s per charger"
    )
    async with serve(
        cloud_handler,
        "127.0.0.1",
        0,
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        compression=None,
        ping_interval=None,
    ) as cloud:
        cloud_port = cloud.sockets[0].getsockname()[1]
        with tempfile.TemporaryDirectory() as tmp:
            for n in args.chargers:
                await run_step(n, args.seconds, args.interval, Path(tmp), cloud_port)


if __name__ == "__main__":
    asyncio.run(main())
