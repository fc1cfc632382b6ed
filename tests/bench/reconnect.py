"""Reconnect-storm benchmark: N chargers with Basic-auth passwords connect to a gateway at once.

Run:  .venv/bin/python tests/bench/reconnect.py                 (500 chargers)
      .venv/bin/python tests/bench/reconnect.py --chargers 2000 --hex

Every charger is configured with a password hash made with today's parameters
(``edgegw password-hash``: scrypt n=2^14, r=8), each connects from its own loopback address
(127.1.x.y, as chargers on a site each have their own), and the server limits are the defaults
(``max_pending_handshakes`` 64 and so on): a charger whose TCP connection is dropped or refused
tries again after ``--retry`` seconds (with jitter), as a charger would, only sooner. A charger
counts as connected once the WebSocket is open and its BootNotification answered (a minimal
cloud in this process answers every call at once).

Three phases are timed, each to the moment the last charger is connected:

- ``cold start``: the gateway has just started (READY), all chargers connect at once;
- ``reconnect``: every charger drops its connection and connects again, the gateway running
  (a network blip, a switch reboot; the cloud dropping 2.x chargers);
- ``restart``: the gateway is stopped (SIGTERM) and started again on the same port while the
  chargers keep trying; timed from the new gateway's READY.

Printed with each: the gateway's CPU seconds, and the floor ``chargers x one scrypt check /
cores`` (the cheapest a cold check of every charger can be on this machine). ``--hex`` gives
every charger a 40-hex-digit password (an OCPP 1.6 ``AuthorizationKey`` as hex), which the
gateway must try both as typed and hex-decoded. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import platform
import random
import secrets
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from edgegw.auth.passwords import hash_password

sys.path.insert(0, str(Path(__file__).parent))
from relay_load import BOOT, proc_stats

DISTINCT_HASHES = 8  # hashing is slow; chargers share these (each check still runs in full)


async def cloud_handler(ws: ServerConnection) -> None:
    with contextlib.suppress(ConnectionClosed):  # the gateway restarting
        await answer_cloud_calls(ws)


async def answer_cloud_calls(ws: ServerConnection) -> None:
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


class Charger:
    """One charger: connects (retrying), boots, stays until told to drop or stop."""

    def __init__(self, index: int, password: str, retry: float) -> None:
        self.id = f"P{index:05d}"
        self.source = f"127.1.{index // 250}.{index % 250 + 1}"
        token = base64.b64encode(f"{self.id}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}
        self.retry = retry
        self.connected_at = 0.0
        self.drop = asyncio.Event()
        self.attempts = 0
        self.refusals: dict[str, int] = {}

    async def run(self, url: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.attempts += 1
            try:
                async with connect(
                    f"{url}/{self.id}",
                    subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                    additional_headers=self.headers,
                    open_timeout=30,
                    ping_interval=None,
                    proxy=None,
                    local_addr=(self.source, 0),
                ) as ws:
                    await ws.send(json.dumps([2, "boot", "BootNotification", BOOT]))
                    answer = json.loads(await ws.recv())
                    if answer[0] != 3:
                        raise RuntimeError(f"boot answered {answer}")
                    self.connected_at = time.monotonic()
                    answering = asyncio.ensure_future(answer_calls(ws))  # noqa: TID251
                    drop = asyncio.ensure_future(self.drop.wait())  # noqa: TID251
                    halt = asyncio.ensure_future(stop.wait())  # noqa: TID251
                    await asyncio.wait({answering, drop, halt}, return_when=asyncio.FIRST_COMPLETED)
                    for task in (answering, drop, halt):
                        task.cancel()
                    self.connected_at = 0.0
                    self.drop.clear()
                    continue  # reconnect at once after a drop or a closed connection
            except (OSError, ConnectionClosed, TimeoutError, RuntimeError) as exc:
                kind = type(exc).__name__
            except Exception as exc:  # InvalidStatus and friends: a refusal, try again later
                response = getattr(exc, "response", None)
                kind = (
                    f"HTTP {response.status_code}" if response is not None else type(exc).__name__
                )
            self.refusals[kind] = self.refusals.get(kind, 0) + 1
            await asyncio.sleep(self.retry * random.uniform(0.5, 1.5))


async def answer_calls(ws: ClientConnection) -> None:
    """Answer what the gateway asks (the local list's version and update, configuration)."""
    async for message in ws:
        frame = json.loads(message)
        if frame[0] == 2:
            payload: dict[str, object] = {"status": "Accepted"}
            if frame[2] == "GetLocalListVersion":
                payload = {"listVersion": 0}
            elif frame[2] == "GetConfiguration":
                payload = {"configurationKey": []}
            await ws.send(json.dumps([3, frame[1], payload]))


async def all_connected(chargers: list[Charger], since: float) -> None:
    while any(c.connected_at <= since for c in chargers):  # noqa: ASYNC110 (polls many, cheaply)
        await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(
    tmp: Path, port: int, cloud_port: int, chargers: list[Charger], hashes: list[str]
) -> Path:
    lines = [
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n',
        f'[cloud]\nurl = "ws://127.0.0.1:{cloud_port}/ocpp"\n',
        f'[store]\npath = "{tmp / "reconnect.db"}"\n',
        f'[logging]\nlevel = "{os.environ.get("BENCH_GATEWAY_LOG", "error")}"\n',
        f'[control]\nsocket = "{tmp / "reconnect.control"}"\ngroup = ""\n',
    ]
    for i, charger in enumerate(chargers):
        lines.append(
            f'[[chargers]]\nid = "{charger.id}"\npassword_hash = "{hashes[i % len(hashes)]}"\n'
        )
    path = tmp / "reconnect.toml"
    path.write_text("\n".join(lines))
    return path


async def start(config: Path, tmp: Path) -> asyncio.subprocess.Process:
    notify = tmp / "reconnect.notify"
    notify.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.setblocking(False)
    proc = await asyncio.create_subprocess_exec(  # its stderr is this process's
        sys.executable,
        "-m",
        "edgegw",
        "run",
        "--config",
        str(config),
        env=dict(os.environ, NOTIFY_SOCKET=str(notify)),
    )
    loop = asyncio.get_running_loop()
    while b"READY=1" not in await asyncio.wait_for(loop.sock_recv(sock, 4096), 120):
        pass
    sock.close()
    return proc


async def timed(
    label: str, chargers: list[Charger], proc: asyncio.subprocess.Process, floor: float
) -> None:
    t0 = time.monotonic()
    cpu0, _ = proc_stats(proc.pid)
    attempts0 = sum(c.attempts for c in chargers)
    await asyncio.wait_for(all_connected(chargers, t0), 1800)
    elapsed = time.monotonic() - t0
    cpu1, _ = proc_stats(proc.pid)
    attempts = sum(c.attempts for c in chargers) - attempts0
    print(
        f"{label:>10}: all {len(chargers)} connected in {elapsed:6.2f} s "
        f"(floor {floor:5.1f} s cold); gateway CPU {cpu1 - cpu0:6.1f} s; "
        f"{attempts} connection attempts"
    )


def check_cost(password: str, stored: str) -> float:
    _, log2_n, r, p, _, _ = stored.split("$")
    t0 = time.perf_counter()
    for _ in range(5):
        hashlib.scrypt(
            password.encode(),
            salt=b"0" * 16,
            n=1 << int(log2_n),
            r=int(r),
            p=int(p),
            maxmem=256 << 20,
            dklen=32,
        )
    return (time.perf_counter() - t0) / 5


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chargers", type=int, default=500)
    parser.add_argument("--retry", type=float, default=1.0, help="seconds between attempts")
    parser.add_argument("--hex", action="store_true", help="40-hex-digit passwords")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    passwords = [
        secrets.token_hex(20) if args.hex else secrets.token_urlsafe(15)
        for _ in range(DISTINCT_HASHES)
    ]
    hashes = [hash_password(p) for p in passwords]
    one = check_cost(passwords[0], hashes[0]) * (2 if args.hex else 1)
    floor = args.chargers * one / cores
    print(
        f"machine: {platform.node()} {platform.machine()} {cores} cores, Python "
        f"{platform.python_version()}; {args.chargers} chargers, "
        f"{'hex' if args.hex else 'typed'} passwords; one cold check {one * 1000:.0f} ms"
    )
    chargers = [
        Charger(i, passwords[i % DISTINCT_HASHES], args.retry) for i in range(args.chargers)
    ]
    stop = asyncio.Event()
    async with serve(
        cloud_handler,
        "127.0.0.1",
        0,
        subprotocols=["ocpp1.6"],
        compression=None,
        ping_interval=None,  # type: ignore[list-item]
    ) as cloud:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            port = free_port()
            config = write_config(tmp, port, cloud.sockets[0].getsockname()[1], chargers, hashes)
            url = f"ws://127.0.0.1:{port}/ocpp"
            proc = await start(config, tmp)
            tasks = [asyncio.ensure_future(c.run(url, stop)) for c in chargers]  # noqa: TID251
            try:
                await timed("cold start", chargers, proc, floor)
                for c in chargers:
                    c.drop.set()
                await timed("reconnect", chargers, proc, floor)
                proc.send_signal(signal.SIGTERM)
                await proc.wait()
                await asyncio.sleep(0.5)
                proc = await start(config, tmp)
                await timed("restart", chargers, proc, floor)
            finally:
                stop.set()
                if proc.returncode is None:
                    proc.terminate()
                    await proc.wait()
                await asyncio.gather(*tasks, return_exceptions=True)
    refusals: dict[str, int] = {}
    for c in chargers:
        for kind, count in c.refusals.items():
            refusals[kind] = refusals.get(kind, 0) + count
    print("failed attempts by kind:", dict(sorted(refusals.items())) or "none")


if __name__ == "__main__":
    asyncio.run(main())
