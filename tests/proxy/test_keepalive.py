"""The site's one keepalive: real sockets on port 0, both sides of a charger's relay.

A peer that stops answering pings (its transport paused: it reads nothing, so it never pongs)
is closed with 1011 "keepalive ping timeout" once its pong is ``ping_timeout`` late; a live one
stays open and answers; a closed connection leaves the registry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Close
from websockets.protocol import State
from websockets.typing import Subprotocol

from edgegw.config import parse_config
from edgegw.proxy.keepalive import Keepalive
from edgegw.proxy.server import OcppServer
from edgegw.proxy.upstream import Upstream
from edgegw.store.store import Store
from tests.conftest import raw_charger

INTERVAL = 0.2
TIMEOUT = 0.3
TIMED_OUT = Close(1011, "keepalive ping timeout")


async def until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not predicate():  # noqa: ASYNC110 - sampling connection states (no event for them)
            await asyncio.sleep(0.01)


@asynccontextmanager
async def keepalive() -> AsyncIterator[Keepalive]:
    site = Keepalive()
    try:
        yield site
    finally:
        await site.close()


async def test_a_charger_that_stops_answering_pings_is_closed_a_live_one_is_not(
    tmp_path: Path,
) -> None:
    sessions: dict[str, ServerConnection] = {}

    async def on_session(identity: str, ws: ServerConnection) -> None:
        sessions[identity] = ws
        await ws.wait_closed()

    config = parse_config(
        {
            "server": {
                "host": "127.0.0.1",
                "port": 0,
                "ping_interval": INTERVAL,
                "ping_timeout": TIMEOUT,
            },
            "store": {"path": str(tmp_path / "gw.db")},
            "chargers": [{"id": "CP1"}, {"id": "CP2"}],
        }
    )
    store = await Store.open(tmp_path / "gw.db")
    async with keepalive() as site:
        server = OcppServer(config, store, on_session, keepalive=site)
        await server.start()
        try:
            url = f"ws://127.0.0.1:{server.port}/ocpp"
            async with raw_charger(url, "CP1") as dead, raw_charger(url, "CP2"):
                await until(lambda: len(site) == 2)
                assert sessions["CP1"].keepalive_task is None  # no websockets ping task
                loop = asyncio.get_running_loop()
                dead.ws.transport.pause_reading()
                paused = loop.time()
                await until(lambda: sessions["CP1"].state is not State.OPEN)
                assert loop.time() - paused >= TIMEOUT
                assert sessions["CP1"].protocol.close_sent == TIMED_OUT
                dead.ws.transport.resume_reading()  # it reads the close frame and answers
                await dead.ws.wait_closed()
                assert dead.ws.close_code == 1011
                assert sessions["CP2"].state is State.OPEN  # pinged all along, answered
                assert sessions["CP2"].latency > 0
                await until(lambda: len(site) == 1)
            await until(lambda: len(site) == 0)  # unregistered on close: nothing kept
        finally:
            await server.stop()
            await store.close()


async def test_a_cloud_that_stops_answering_pings_is_closed(tmp_path: Path) -> None:
    cloud_sides: list[ServerConnection] = []

    async def cloud(ws: ServerConnection) -> None:
        cloud_sides.append(ws)
        await ws.wait_closed()

    async with serve(
        cloud, "127.0.0.1", 0, subprotocols=[Subprotocol("ocpp1.6")], ping_interval=None
    ) as cloud_server:
        port = cloud_server.sockets[0].getsockname()[1]
        config = parse_config(
            {
                "server": {"host": "127.0.0.1", "port": 0},
                "store": {"path": str(tmp_path / "gw.db")},
                "cloud": {
                    "url": f"ws://127.0.0.1:{port}/ocpp",
                    "ping_interval": INTERVAL,
                    "ping_timeout": TIMEOUT,
                },
                "chargers": [{"id": "CP1"}, {"id": "CP2"}],
            }
        )
        assert config.cloud is not None
        downs: dict[str, list[str]] = {"CP1": [], "CP2": []}
        async with keepalive() as site:
            links = [
                Upstream(
                    charger_id,
                    config.cloud,
                    None,
                    charger_authorization=None,
                    user_agent=None,
                    on_connected=lambda: None,
                    on_failed=lambda: None,
                    on_message=lambda _m: None,
                    on_disconnected=downs[charger_id].append,
                    keepalive=site,
                )
                for charger_id in ("CP1", "CP2")
            ]
            runners = [asyncio.create_task(link.run()) for link in links]  # noqa: TID251
            try:
                await until(lambda: len(site) == 2 and len(cloud_sides) == 2)
                by_path = {
                    ws.request.path.rsplit("/", 1)[1]: ws for ws in cloud_sides if ws.request
                }
                by_path["CP1"].transport.pause_reading()  # this cloud end stops answering
                await until(lambda: len(site) == 1)  # given up on: closing
                by_path["CP1"].transport.resume_reading()  # it reads the close and answers
                await until(lambda: bool(downs["CP1"]))
                await by_path["CP1"].wait_closed()
                assert by_path["CP1"].close_code == 1011  # what the cloud was told
                assert by_path["CP1"].close_reason == "keepalive ping timeout"
                assert links[1].connected
                assert downs["CP2"] == []
            finally:
                for link in links:
                    await link.close()
                await asyncio.gather(*runners, return_exceptions=True)
            assert len(site) == 0


async def test_an_interval_of_0_registers_nothing() -> None:
    async def echo(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with serve(echo, "127.0.0.1", 0, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with keepalive() as site, connect(f"ws://127.0.0.1:{port}", ping_interval=None) as ws:
            site.register(ws, 0, TIMEOUT)
            assert len(site) == 0
            site.register(ws, INTERVAL, TIMEOUT)
            assert len(site) == 1
            site.unregister(ws)
            assert len(site) == 0


async def test_pings_come_every_interval_when_the_timeout_is_longer() -> None:
    """As websockets does: a ping every ``ping_interval`` once the last was answered, however
    long ``ping_timeout`` is (the pong is not waited for up to the timeout before the next)."""

    async def echo(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with serve(echo, "127.0.0.1", 0, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with keepalive() as site, connect(f"ws://127.0.0.1:{port}", ping_interval=None) as ws:
            pings = 0
            ping = ws.ping

            async def counted(data: str | bytes | None = None) -> asyncio.Future[float]:
                nonlocal pings
                pings += 1
                return await ping(data)

            ws.ping = counted  # type: ignore[method-assign]  # counts the real connection's pings
            site.register(ws, 0.05, 5.0)
            await until(lambda: pings >= 6)  # 0.3 s; one per 5 s (the timeout) would take 25 s
            assert ws.state is State.OPEN
