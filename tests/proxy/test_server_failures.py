"""The OCPP server's own failures are said, once, with the charger: a real server on port 0."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from edgegw.config import parse_config
from edgegw.proxy.server import OcppServer, SessionHandler
from edgegw.store.store import Store
from tests.conftest import raw_charger


@asynccontextmanager
async def server_with(tmp_path: Path, on_session: SessionHandler) -> AsyncIterator[OcppServer]:
    config = parse_config(
        {
            "server": {"host": "127.0.0.1", "port": 0},
            "store": {"path": str(tmp_path / "gw.db")},
            "chargers": [{"id": "CP1"}],
        }
    )
    store = await Store.open(tmp_path / "gw.db")
    server = OcppServer(config, store, on_session)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        with contextlib.suppress(ValueError):  # a test may have closed the database itself
            await store.close()


async def test_a_crashing_session_is_logged_once_a_minute_with_the_charger(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def crash(identity: str, ws: ServerConnection) -> None:
        raise RuntimeError(f"bug while serving {identity}")

    async with server_with(tmp_path, crash) as server:
        url = f"ws://127.0.0.1:{server.port}/ocpp"
        with caplog.at_level(logging.INFO, logger="edgegw"):
            for _ in range(3):
                async with raw_charger(url, "CP1") as cp:
                    with pytest.raises(ConnectionClosed):
                        await cp.recv()
                    assert cp.ws.close_code == 1011
    crashes = [r for r in caplog.records if "failed" in r.getMessage()]
    assert [r.levelno for r in crashes] == [logging.ERROR]  # the same failure: once
    assert crashes[0].getMessage() == (
        "the connection of CP1 from 127.0.0.1 failed: RuntimeError('bug while serving CP1'); "
        "closing it (1011)"
    )
    assert crashes[0].exc_info is not None  # with its traceback


async def test_a_failing_handshake_check_is_answered_500_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def serve(identity: str, ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with server_with(tmp_path, serve) as server:
        url = f"ws://127.0.0.1:{server.port}/ocpp"
        await server._store.db.close()  # the database went away under the server
        with caplog.at_level(logging.INFO, logger="edgegw"), pytest.raises(InvalidStatus) as info:
            async with raw_charger(url, "NOT-CONFIGURED"):
                pass
        assert info.value.response.status_code == 500
    [line] = [r.getMessage() for r in caplog.records if "HTTP 500" in r.getMessage()]
    assert line == "handshake of '/ocpp/NOT-CONFIGURED' from 127.0.0.1 failed; answered HTTP 500"
