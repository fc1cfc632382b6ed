"""The floor a relay's cost is measured against: a WebSocket relay that only pipes frames.

Run:  .venv/bin/python tests/bench/bytepipe.py --cloud ws://127.0.0.1:9000/ocpp

For every charger that connects to ``ws://127.0.0.1:<port>/ocpp/<id>`` it opens
``<cloud>/<id>`` with the same subprotocol and copies every message, as it came, both ways: no
parsing, no schema checks, no storage, no log. The same WebSocket library, event loop and
connection settings as the gateway's defaults (no compression, pings every 30 s on both sides),
so what the gateway costs above this line is its own work. It prints ``READY <port>``
on stdout once it listens and runs until terminated. Not part of the test suite.

One thing is levelled before it listens: glibc's malloc. asyncio reads a socket into a fresh
256 KiB buffer; in a young process that size is above malloc's mmap threshold, so every
received message cost three system calls (mmap, mremap when the buffer is cut to the message,
munmap: ``strace -c`` counted 4,305 of each in 20 s at 500 chargers), which the gateway, whose
start-up has long since freed a larger block and so raised the threshold, does not pay. One
megabyte allocated and freed at start puts this relay in the same state.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

SUBPROTOCOLS = [Subprotocol("ocpp1.6"), Subprotocol("ocpp2.0.1")]
PING_INTERVAL_S = 30.0
"""As the gateway's defaults on both sides: WebSocket pings every 30 s, no compression."""


Connection = ServerConnection | ClientConnection


async def pump(source: Connection, sink: Connection) -> None:
    try:
        async for message in source:
            await sink.send(message)
    except ConnectionClosed:
        pass
    finally:
        await sink.close()


def relay(cloud: str) -> Callable[[ServerConnection], Awaitable[None]]:
    async def handler(charger: ServerConnection) -> None:
        charger_id = charger.request.path.rsplit("/", 1)[-1] if charger.request else ""
        protocols = [charger.subprotocol] if charger.subprotocol else None
        async with connect(
            f"{cloud}/{charger_id}",
            subprotocols=protocols,
            proxy=None,
            compression=None,
            ping_interval=PING_INTERVAL_S,
        ) as upstream:
            await asyncio.gather(pump(charger, upstream), pump(upstream, charger))

    return handler


def settle_malloc() -> None:
    """Free one large block, which raises glibc's dynamic mmap threshold past asyncio's
    256 KiB read buffer (see the module's text)."""
    block = bytearray(2**20)
    del block


async def main() -> None:
    settle_malloc()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cloud", required=True, help="the cloud's URL, without a charger id")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with serve(
        relay(args.cloud.rstrip("/")),
        "127.0.0.1",
        args.port,
        subprotocols=SUBPROTOCOLS,
        compression=None,
        ping_interval=PING_INTERVAL_S,
        max_size=None,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"READY {port}", flush=True)
        await stop.wait()
    sys.exit(0)


if __name__ == "__main__":
    asyncio.run(main())
