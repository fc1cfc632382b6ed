"""Disk-write benchmark: bytes the gateway writes to disk per relayed call, cloud up and down.

Run:  .venv/bin/python tests/bench/diskwrites.py --chargers 50 --seconds 60

The gateway runs as its own process (``edgegw run``) with the default configuration (apart
from the per-address admission limits: every simulated charger comes from 127.0.0.1) and its
database in ``--dir`` (a temporary directory; put it on the kind of file system you care
about: tmpfs writes count for nothing). N chargers each boot, report a StatusNotification,
start a transaction through the cloud, then send a MeterValues of that transaction every
``--interval`` seconds, one call in flight per charger. With ``--sessions`` each round is a
whole session instead (StopTransaction, Authorize, StartTransaction: the records the
bookkeeping writer keeps, and the card cache).

Two windows are measured, each after ``--settle`` seconds of the same traffic:

* **online**: a minimal cloud answers every call at once; the gateway relays;
* **outage**: the cloud is gone (connections closed, port refused); the gateway answers the
  chargers itself and commits every MeterValues of a transaction to the outbox before it
  answers (the durability rule): those writes are necessary, and measured.

For each window the gateway's ``write_bytes`` from ``/proc/<pid>/io`` (bytes it caused to be
sent to the block layer, page-granular, fsyncs and checkpoints included) is read before and
after; printed: calls answered, bytes per call, and GB a day extrapolated to 200 and 2,000
chargers sending one call every ``--interval`` seconds each. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

sys.path.insert(0, str(Path(__file__).parent))
from relay_load import BOOT, meter_values, start_gateway

SITES = (200, 2000)


@dataclass
class Counters:
    """Calls the chargers had answered, what went wrong, and who is in a transaction."""

    chargers: int
    answered: int = 0
    errors: list[str] = field(default_factory=list)
    settled: int = 0
    all_settled: asyncio.Event = field(default_factory=asyncio.Event)

    def settle(self) -> None:
        """One charger is in its transaction (or failed before)."""
        self.settled += 1
        if self.settled == self.chargers:
            self.all_settled.set()


def write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError(f"no write_bytes in /proc/{pid}/io")


def make_cloud() -> Any:
    transaction_ids = itertools.count(1)

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            frame = json.loads(message)
            if frame[0] != 2:
                continue
            payload: dict[str, Any] = {}
            if frame[2] == "BootNotification":
                payload = {
                    "status": "Accepted",
                    "currentTime": "2026-01-01T00:00:00Z",
                    "interval": 300,
                }
            elif frame[2] == "StartTransaction":
                payload = {
                    "transactionId": next(transaction_ids),
                    "idTagInfo": {"status": "Accepted"},
                }
            elif frame[2] in ("Authorize", "StopTransaction"):
                payload = {"idTagInfo": {"status": "Accepted"}}
            await ws.send(json.dumps([3, frame[1], payload]))

    return handler


async def charger(  # noqa: PLR0917
    url: str,
    cid: str,
    interval: float,
    stop: asyncio.Event,
    counters: Counters,
    ready: asyncio.Event,
    sessions: bool = False,
) -> None:
    settled = False
    try:
        async with connect(
            f"{url}/{cid}",
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            proxy=None,
            open_timeout=60,
            ping_interval=None,
        ) as ws:

            async def call(message_id: str, action: str, payload: dict[str, Any]) -> Any:
                await ws.send(json.dumps([2, message_id, action, payload]))
                while True:
                    answer = json.loads(await ws.recv())
                    if answer[0] == 2:  # the gateway's own call (the local-list probe)
                        await ws.send(json.dumps(gateway_call_answer(answer)))
                    elif answer[1] == message_id:
                        break
                if answer[0] != 3:
                    counters.errors.append(f"{cid} {action}: {answer}")
                return answer[2] if answer[0] == 3 else {}

            await call("boot", "BootNotification", BOOT)
            status = {"connectorId": 1, "status": "Charging", "errorCode": "NoError"}
            await call("status", "StatusNotification", status)
            start = {
                "connectorId": 1,
                "idTag": "BENCH" + cid[-4:],
                "meterStart": 1000,
                "timestamp": "2026-01-01T00:00:00Z",
            }
            answer = await call("start", "StartTransaction", start)
            transaction_id = answer.get("transactionId", 0)
            settled = True
            counters.settle()
            await ready.wait()
            for n in itertools.count(1):
                if stop.is_set():
                    break
                if sessions:  # a whole session per round: the records the bookkeeper writes
                    await call(f"s{n}", "StopTransaction", stop_of(transaction_id, n))
                    await call(f"a{n}", "Authorize", {"idTag": start["idTag"]})
                    answer = await call(f"t{n}", "StartTransaction", start)
                    transaction_id = answer.get("transactionId", 0)
                    counters.answered += 3
                    await asyncio.sleep(interval)
                    continue
                payload = meter_values(n)
                payload["transactionId"] = transaction_id
                await call(f"m{n}", "MeterValues", payload)
                counters.answered += 1
                await asyncio.sleep(interval)
    except Exception as exc:  # a benchmark reports failures, it does not stop on them
        counters.errors.append(f"{cid}: {type(exc).__name__}: {exc}")
        if not settled:
            counters.settle()


def stop_of(transaction_id: int, n: int) -> dict[str, Any]:
    return {
        "transactionId": transaction_id,
        "meterStop": 1000 + n,
        "timestamp": "2026-01-01T00:00:00Z",
        "reason": "Local",
    }


def gateway_call_answer(frame: list[Any]) -> list[Any]:
    """A charger's answer to the gateway's own calls: no configuration keys, nothing else."""
    if frame[2] == "GetConfiguration":
        return [3, frame[1], {"configurationKey": [], "unknownKey": frame[3].get("key", [])}]
    return [4, frame[1], "NotSupported", "", {}]


def report(name: str, calls: int, written: int, seconds: float, interval: float) -> None:
    per_call = written / max(calls, 1)
    days = [per_call * n * 86400 / interval / 1e9 for n in SITES]
    print(
        f"{name:7s} {calls:7d} calls in {seconds:5.1f} s  {written / 1e6:9.2f} MB written"
        f"  {per_call:8.1f} B/call  "
        + "  ".join(f"{n} chargers: {gb:7.2f} GB/day" for n, gb in zip(SITES, days, strict=True))
    )


async def window(name: str, pid: int, counters: Counters, seconds: float, interval: float) -> None:
    before_bytes, before_calls = write_bytes(pid), counters.answered
    started = time.monotonic()
    await asyncio.sleep(seconds)
    written, calls = write_bytes(pid) - before_bytes, counters.answered - before_calls
    report(name, calls, written, time.monotonic() - started, interval)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chargers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60, help="each measured window")
    parser.add_argument("--settle", type=float, default=10, help="before each window")
    parser.add_argument("--interval", type=float, default=1.0, help="MeterValues period (s)")
    parser.add_argument("--dir", type=Path, default=None, help="where the database goes")
    parser.add_argument("--no-outage", action="store_true", help="measure the online window only")
    parser.add_argument(
        "--sessions",
        action="store_true",
        help="each round: StopTransaction, Authorize, StartTransaction instead of a MeterValues",
    )
    args = parser.parse_args()
    os.environ.setdefault("BENCH_GATEWAY_LOG", "error")
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; {args.chargers} chargers, MeterValues every "
        f"{args.interval} s each; GB/day extrapolated at that rate"
    )
    counters = Counters(args.chargers)
    cloud = await serve(
        make_cloud(),
        "127.0.0.1",
        0,
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        compression=None,
        ping_interval=None,
    )
    cloud_port = cloud.sockets[0].getsockname()[1]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        proc, url, sock = await start_gateway(Path(tmp), "diskwrites", cloud_port)
        print(f"database: {tmp}/diskwrites.db")
        stop = asyncio.Event()
        ready = asyncio.Event()
        chargers = asyncio.gather(
            *(
                charger(url, f"D{i:05d}", args.interval, stop, counters, ready, args.sessions)
                for i in range(args.chargers)
            )
        )
        await counters.all_settled.wait()
        ready.set()
        await asyncio.sleep(args.settle)
        await window("online", proc.pid, counters, args.seconds, args.interval)
        if not args.no_outage:
            cloud.close()
            await cloud.wait_closed()
            await asyncio.sleep(args.settle)  # the first calls wait for the cloud's timeout
            await window("outage", proc.pid, counters, args.seconds, args.interval)
        stop.set()
        await chargers
        proc.terminate()
        code = await proc.wait()
        sock.close()
    cloud.close()
    print(f"gateway exit code {code}; errors {len(counters.errors)}")
    for line in counters.errors[:5]:
        print("   ", line)


if __name__ == "__main__":
    asyncio.run(main())
