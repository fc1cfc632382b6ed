"""send_now writes a frame at once only when ``send`` would not have waited (real sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from edgegw.proxy.sendnow import send_now


@pytest.fixture
async def pair() -> AsyncIterator[tuple[ServerConnection, ClientConnection]]:
    accepted: asyncio.Queue[ServerConnection] = asyncio.Queue()
    done = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        await accepted.put(ws)
        await done.wait()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", proxy=None) as client:
            yield await accepted.get(), client
            done.set()


async def test_an_open_connection_takes_the_frame_at_once(
    pair: tuple[ServerConnection, ClientConnection],
) -> None:
    server, client = pair
    assert send_now(server, '[2,"1","Heartbeat",{}]')
    assert send_now(server, "second")
    assert await client.recv() == '[2,"1","Heartbeat",{}]'
    assert await client.recv() == "second"


async def test_a_full_write_buffer_leaves_the_frame_to_send(
    pair: tuple[ServerConnection, ClientConnection],
) -> None:
    server, client = pair
    server.pause_writing()  # what the transport does over its high-water mark
    assert not send_now(server, "held")
    server.resume_writing()
    assert send_now(server, "after")
    assert await client.recv() == "after"  # "held" was never written


async def test_a_closing_connection_leaves_the_frame_to_send(
    pair: tuple[ServerConnection, ClientConnection],
) -> None:
    server, _client = pair
    closing = asyncio.ensure_future(server.close())  # noqa: TID251 - a test's own short task
    await asyncio.sleep(0)  # the close frame is out: the connection is CLOSING
    assert not send_now(server, "late")
    await closing
    assert not send_now(server, "later")
