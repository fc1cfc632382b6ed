"""Offline replay benchmark: N chargers x M queued messages drained to a cloud on loopback.

Run:  .venv/bin/python tests/bench/replay.py --chargers 100 --messages 1000

The outbox is filled first (sessions of StartTransaction, MeterValues, StopTransaction, as if
the cloud had been away), then the gateway runs as its own process (`edgegw run`), the chargers
connect and the gateway replays every queue to a minimal cloud in this process that answers at
once. The cloud is away when the gateway starts and comes back ``--outage`` seconds after the
chargers connected (its links have backed off by then, as after a real outage). Printed: the
time from the cloud's return to the first queued message it receives, messages replayed per
second, the gateway's CPU time per 1,000 messages, its peak RSS, and a check that the outbox is
empty and every transaction id was remapped. The message log is on at its defaults;
``--no-message-log`` turns it off. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import socket
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from edgegw.store.outbox import LOCAL_ID_BASE
from edgegw.store.store import Store

sys.path.insert(0, str(Path(__file__).parent))
from capacity import profile
from relay_load import meter_values, proc_stats, start_gateway


class Cloud:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.received = 0
        self.local_ids_seen = 0
        self.done = asyncio.Event()
        self.back = 0.0  # when the cloud started listening again
        self.first: float | None = None
        self.last = 0.0
        self.firsts: dict[str, float] = {}  # each charger's first message
        self._ids = itertools.count(1)

    async def handler(self, ws: ServerConnection) -> None:
        charger = ws.request.path.rsplit("/", 1)[-1] if ws.request is not None else "?"
        async for message in ws:
            self.firsts.setdefault(charger, time.monotonic())
            frame = json.loads(message)
            if frame[0] != 2:
                continue
            payload: dict[str, object] = {}
            if frame[2] == "StartTransaction":
                payload = {"transactionId": next(self._ids), "idTagInfo": {"status": "Accepted"}}
            elif frame[3].get("transactionId", 0) >= LOCAL_ID_BASE:
                self.local_ids_seen += 1
            await ws.send(json.dumps([3, frame[1], payload]))
            self.first = self.first or time.monotonic()
            self.received += 1
            if self.received >= self.expected:
                self.last = time.monotonic()
                self.done.set()


async def fill(db: Path, chargers: list[str], messages: int) -> None:
    store = await Store.open(db)
    per_session = 100

    async def one(cid: str) -> None:
        left = messages
        while left > 0:
            n = min(per_session, left)
            start = {
                "connectorId": 1,
                "idTag": "04A1B2C3",
                "meterStart": 0,
                "timestamp": f"2026-01-01T00:00:{left % 60:02d}Z",
            }
            _, tx = await store.outbox.enqueue_start(cid, {**start, "meterStart": left})
            for i in range(max(n - 2, 0)):
                await store.outbox.enqueue(
                    cid, "MeterValues", {**meter_values(left * 1000 + i), "transactionId": tx}
                )
            if n >= 2:
                await store.outbox.enqueue(
                    cid,
                    "StopTransaction",
                    {
                        "transactionId": tx,
                        "meterStop": left + 10,
                        "timestamp": "2026-01-01T01:00:00Z",
                    },
                )
            left -= n

    await asyncio.gather(*(one(c) for c in chargers))
    await store.close()


async def idle_charger(url: str, cid: str, stop: asyncio.Event) -> None:
    async with connect(
        f"{url}/{cid}", subprotocols=["ocpp1.6"], open_timeout=60, ping_interval=None
    ) as ws:  # type: ignore[list-item]
        await stop.wait()
        await ws.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chargers", type=int, default=100)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--outage", type=float, default=20.0, help="seconds the cloud is away")
    parser.add_argument("--no-message-log", action="store_true")
    parser.add_argument(
        "--profile", type=Path, help="file: py-spy the gateway's first 15 s of replay (raw stacks)"
    )
    args = parser.parse_args()
    total = args.chargers * args.messages
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; {args.chargers} chargers x {args.messages} queued; "
        f"message log {'off' if args.no_message_log else 'on'}; cloud away {args.outage:g} s"
    )
    chargers = [f"R{i:05d}" for i in range(args.chargers)]
    cloud = Cloud(total)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        db = tmp / "replay.db"  # start_gateway names it after "replay"
        t0 = time.monotonic()
        await fill(db, chargers, args.messages)
        print(f"outbox filled with {total} messages in {time.monotonic() - t0:.1f} s")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        extra = "message_log_size = 0" if args.no_message_log else ""
        proc, url, sock = await start_gateway(tmp, "replay", port, extra)
        stop = asyncio.Event()
        spy: asyncio.Future[None] | None = None
        clients = [
            asyncio.ensure_future(idle_charger(url, c, stop))  # noqa: TID251
            for c in chargers
        ]
        try:
            await asyncio.sleep(args.outage)
            cpu0, _ = proc_stats(proc.pid)
            async with serve(
                cloud.handler,
                "127.0.0.1",
                port,
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                compression=None,
                ping_interval=None,
            ):
                cloud.back = time.monotonic()
                if args.profile is not None:
                    spy = asyncio.ensure_future(profile(proc.pid, 15, args.profile))  # noqa: TID251
                await asyncio.wait_for(cloud.done.wait(), 600)
        finally:
            cpu1, rss = proc_stats(proc.pid)
            if spy is not None:
                await spy
            stop.set()
            await asyncio.gather(*clients, return_exceptions=True)
            proc.terminate()
            await proc.wait()
            sock.close()
        assert cloud.first is not None
        elapsed = cloud.last - cloud.first
        with sqlite3.connect(db) as conn:
            left = conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE state != 'delivered'"
            ).fetchone()[0]
        print(
            f"first queued message at the cloud {cloud.first - cloud.back:.2f} s after it came back"
        )
        firsts = sorted(t - cloud.back for t in cloud.firsts.values())
        print(
            f"each charger's first message: median {firsts[len(firsts) // 2]:.2f} s, "
            f"last {firsts[-1]:.2f} s after the cloud came back ({len(firsts)} chargers)"
        )
        print(
            f"replayed {cloud.received} messages in {elapsed:.1f} s: "
            f"{cloud.received / elapsed:,.0f} msg/s; "
            f"gateway CPU {(cpu1 - cpu0) / cloud.received * 1000 * 1000:.0f} ms per 1000 messages; "
            f"peak RSS {rss / 2**20:.0f} MiB"
        )
        print(
            f"left in the outbox: {left}; "
            f"messages still carrying a local id: {cloud.local_ids_seen}"
        )


if __name__ == "__main__":
    asyncio.run(main())
