"""Long fuzz run: hostile chargers against a gateway process while good chargers are served.

Run:  .venv/bin/python tests/bench/fuzz.py --seconds 90

A gateway process (``edgegw run``, default limits; ``--rate 0`` lifts the per-charger message
rate so the parser and relay take the whole storm) relays to a minimal cloud in this process.
``--good`` chargers send a Heartbeat every ``--interval`` seconds throughout; first alone for
``--before`` seconds, then while ``--fuzzers`` chargers (in a separate process, so their load
does not skew the good chargers' clocks) send mutated and garbage frames as fast as the gateway
takes them (the CI test's :class:`Mutator`, seeded), each reconnecting when closed.

Printed: frames sent and answers received by the fuzzers, the good chargers' round-trip
p50/p99 before and during the storm, the gateway's RSS (now and peak), its log volume, and
errors, which must be 0: good calls not answered in 5 s or answered wrongly, answers to the
fuzzers that are not well-formed OCPP-J answers, ERROR lines or tracebacks in the gateway's
log, and the gateway exiting. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import socket
import sys
import tempfile
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[2]))
from capacity import machine, percentile, raise_open_files, stop_gateway
from relay_load import cloud_handler, proc_stats
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from tests.hostile.test_fuzz import FuzzStats, Mutator, check_answer

OCPP = [Subprotocol("ocpp1.6")]
CALL_TIMEOUT = 5.0


async def start_gateway(
    tmp: Path, cloud_port: int, rate: float
) -> tuple[asyncio.subprocess.Process, str, Path]:
    """``edgegw run`` on a generated config; its process, URL and log file."""
    config = tmp / "fuzz.toml"
    config.write_text(
        '[server]\nhost = "127.0.0.1"\nport = 0\nallow_unknown_chargers = true\n'
        f"max_messages_per_second = {rate}\n"
        "max_connections_per_address = 100000\nmax_pending_handshakes = 100000\n"
        f'[cloud]\nurl = "ws://127.0.0.1:{cloud_port}/ocpp"\n'
        f'[store]\npath = "{tmp / "fuzz.db"}"\n[logging]\nlevel = "warning"\n'
        f'[control]\nsocket = "{tmp / "fuzz.control"}"\ngroup = ""\n'
    )
    notify = tmp / "fuzz.notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.setblocking(False)
    log = tmp / "gateway.log"
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edgegw",
            "run",
            "--config",
            str(config),
            env=dict(os.environ, NOTIFY_SOCKET=str(notify)),
            stderr=stderr,
        )
    loop = asyncio.get_running_loop()
    ready = (await asyncio.wait_for(loop.sock_recv(sock, 4096), 60)).decode()
    sock.close()
    return proc, f"ws://127.0.0.1:{int(ready.rsplit(' ', 1)[1])}/ocpp", log


# ------------------------------------------------------------------ good chargers


class Good:
    def __init__(self) -> None:
        self.rtts: dict[str, list[float]] = {"before": [], "during": []}
        self.phase = "before"
        self.errors: list[str] = []
        self.stop = asyncio.Event()


async def answer_to(ws: ClientConnection, message_id: str) -> list[Any]:
    """The answer to ``message_id``; the gateway's own calls meanwhile are answered."""
    while True:
        frame = json.loads(await ws.recv())
        if frame[0] == 2:
            await ws.send(json.dumps([3, frame[1], {"configurationKey": [], "unknownKey": []}]))
        elif frame[1] == message_id:
            return frame  # type: ignore[no-any-return]


async def good_charger(url: str, charger_id: str, interval: float, good: Good) -> None:
    ids = itertools.count()
    async with connect(f"{url}/{charger_id}", subprotocols=OCPP, proxy=None) as ws:
        while not good.stop.is_set():
            message_id = f"g{next(ids)}"
            started = time.perf_counter()
            await ws.send(json.dumps([2, message_id, "Heartbeat", {}]))
            try:
                async with asyncio.timeout(CALL_TIMEOUT):
                    answer = await answer_to(ws, message_id)
            except TimeoutError:
                good.errors.append(f"{charger_id}: no answer in {CALL_TIMEOUT} s")
                return
            if answer[0] != 3:
                good.errors.append(f"{charger_id}: wrong answer {answer!r:.200}")
            good.rtts[good.phase].append(time.perf_counter() - started)
            await asyncio.sleep(interval)


# ------------------------------------------------------------------ fuzzers (own process)


async def fuzzer(url: str, number: int, until: float, stats: FuzzStats) -> None:
    mutator = Mutator(4242 + number)
    for connection in itertools.count():
        if time.monotonic() >= until:
            return
        try:
            async with connect(
                f"{url}/FUZZ{number}-{connection}", subprotocols=OCPP, proxy=None, max_size=None
            ) as ws:

                async def read() -> None:
                    async for raw in ws:
                        check_answer(raw, stats)

                reader = asyncio.ensure_future(read())  # noqa: TID251 (bench process, no owner)
                try:
                    while time.monotonic() < until:
                        await ws.send(mutator.frame())
                        stats.sent += 1
                except ConnectionClosed:
                    pass
                finally:
                    reader.cancel()
            stats.closes[ws.close_code or 0] += 1
        except (InvalidHandshake, OSError, ConnectionClosed):
            stats.closes[-1] += 1


def fuzz_main(url: str, fuzzers: int, seconds: float, pipe: Connection) -> None:
    async def run() -> list[FuzzStats]:
        until = time.monotonic() + seconds
        stats = [FuzzStats() for _ in range(fuzzers)]
        await asyncio.gather(*(fuzzer(url, n, until, s) for n, s in enumerate(stats)))
        return stats

    results = asyncio.run(run())
    pipe.send(
        {
            "sent": sum(s.sent for s in results),
            "answers": sum((s.answers for s in results), Counter()),
            "malformed": [m for s in results for m in s.malformed][:20],
            "closes": sum((s.closes for s in results), Counter()),
        }
    )


# ------------------------------------------------------------------ the run


def rss(pid: int) -> tuple[int, int]:
    now = peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            now = int(line.split()[1]) * 1024
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    return now, peak


def figures(values: list[float]) -> str:
    ordered = sorted(values)
    return (
        f"p50 {percentile(ordered, 0.5):6.2f} ms  p99 {percentile(ordered, 0.99):6.2f} ms"
        f"  ({len(ordered)} calls)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=90, help="the storm's length")
    parser.add_argument("--before", type=float, default=15, help="good chargers alone first")
    parser.add_argument("--fuzzers", type=int, default=8)
    parser.add_argument("--good", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument(
        "--rate", type=float, default=20, help="server.max_messages_per_second (0: no limit)"
    )
    args = parser.parse_args()
    raise_open_files()
    print(machine())
    print(
        f"{args.good} good chargers (a Heartbeat every {args.interval} s each), "
        f"{args.fuzzers} fuzzing chargers for {args.seconds:g} s after {args.before:g} s alone; "
        f"max_messages_per_second = {args.rate:g}"
    )
    async with serve(
        cloud_handler,
        "127.0.0.1",
        0,
        subprotocols=OCPP,
        compression=None,
        ping_interval=None,
    ) as cloud:
        cloud_port = cloud.sockets[0].getsockname()[1]
        with tempfile.TemporaryDirectory() as tmp:
            proc, url, log = await start_gateway(Path(tmp), cloud_port, args.rate)
            result = await storm(args, url, proc.pid)
            alive = proc.returncode is None
            rss_now, rss_peak = rss(proc.pid) if alive else (0, 0)
            await stop_gateway(proc)
            report(args, result, log, alive, proc.returncode, rss_now, rss_peak)


async def storm(args: argparse.Namespace, url: str, pid: int) -> dict[str, Any]:
    good = Good()
    rss_start = rss(pid)[0]
    tasks = [
        asyncio.ensure_future(good_charger(url, f"GOOD{n}", args.interval, good))  # noqa: TID251
        for n in range(args.good)
    ]
    await asyncio.sleep(args.before)
    good.phase = "during"
    cpu0, _ = proc_stats(pid)
    receiver, sender = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.Process(
        target=fuzz_main, args=(url, args.fuzzers, args.seconds, sender), daemon=True
    )
    process.start()
    loop = asyncio.get_running_loop()
    fuzz = await loop.run_in_executor(None, receiver.recv)
    process.join()
    cpu1, _ = proc_stats(pid)
    good.stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if task.exception() is not None:
            good.errors.append(f"good charger failed: {task.exception()!r:.200}")
    return {
        "good": good,
        "fuzz": fuzz,
        "cpu": cpu1 - cpu0,
        "rss_start": rss_start,
    }


def report(  # noqa: PLR0917
    args: argparse.Namespace,
    result: dict[str, Any],
    log: Path,
    alive: bool,
    returncode: int | None,
    rss_now: int,
    rss_peak: int,
) -> None:
    good: Good = result["good"]
    fuzz = result["fuzz"]
    text = log.read_text(errors="replace")
    lines = text.splitlines()
    error_lines = [line for line in lines if " ERROR " in line or line.startswith("Traceback")]
    errors = len(good.errors) + len(fuzz["malformed"]) + len(error_lines) + (not alive)
    if returncode not in (None, 0):
        errors += 1
    callerrors = sum(n for k, n in fuzz["answers"].items() if k.startswith("CALLERROR"))
    print(
        f"frames sent: {fuzz['sent']:,} ({fuzz['sent'] / args.seconds:,.0f}/s); "
        f"answers: {sum(fuzz['answers'].values()):,}, of them CALLERROR {callerrors:,}; "
        f"connections closed by code: {dict(sorted(fuzz['closes'].items()))}"
    )
    print(f"good chargers before: {figures(good.rtts['before'])}")
    print(f"good chargers during: {figures(good.rtts['during'])}")
    print(
        f"gateway: RSS {result['rss_start'] / 2**20:.1f} MiB before, {rss_now / 2**20:.1f} MiB "
        f"after, peak {rss_peak / 2**20:.1f} MiB; CPU {result['cpu']:.1f} s during the storm; "
        f"log {len(text.encode()) / 1024:,.0f} KiB ({len(text.splitlines()):,} lines)"
    )
    print(f"errors: {errors}")
    for line in [*good.errors[:5], *fuzz["malformed"][:5]]:
        print(f"  {line[:300]}")
    if error_lines:  # the first one with its traceback
        first = lines.index(error_lines[0])
        print("  first error in the gateway's log:")
        for line in lines[first : first + 40]:
            print(f"    {line[:300]}")
    if not alive:
        print(f"  the gateway exited during the run (code {returncode})")


if __name__ == "__main__":
    asyncio.run(main())
