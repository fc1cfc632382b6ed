"""Issue 17, item 1: one frame with a lone surrogate must not stop the message log for good.

``[2,"\\ud800","Foo",{}]`` is valid JSON; decoded, its message id is a lone surrogate that
UTF-8 (and SQLite) cannot encode. A charger and the cloud both send it; the gateway (a real
``edgegw run`` process) must keep relaying another charger's calls, keep logging frames, and
stop with exit code 0, the log left next to its database readable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from edgegw.control.client import ControlClient
from edgegw.store.messagelog import dump_path, read_dump
from tests.sync.gateway_process import GatewayProcess, NotifySocket, free_port

HOSTILE = '[2,"\\ud800","Foo",{}]'  # the text on the wire: ASCII, valid JSON
BOOT = {"chargePointVendor": "Test", "chargePointModel": "Hostile"}


async def cloud_handler(ws: ServerConnection) -> None:
    assert ws.request is not None
    if ws.request.path.endswith("/EVIL"):
        await ws.send(HOSTILE)
    async for message in ws:
        frame = json.loads(message)
        if frame[0] != 2:
            continue
        payload: dict[str, Any] = {}
        if frame[2] == "BootNotification":
            payload = {"status": "Accepted", "currentTime": "2026-01-01T00:00:00Z", "interval": 60}
        elif frame[2] == "Heartbeat":
            payload = {"currentTime": "2026-01-01T00:00:00Z"}
        await ws.send(json.dumps([3, frame[1], payload]))


async def call(ws: ClientConnection, message_id: str, action: str, payload: Any) -> list[Any]:
    """Send a CALL and return its answer, skipping the gateway's and the cloud's own calls."""
    await ws.send(json.dumps([2, message_id, action, payload]))
    while True:
        answer = json.loads(await ws.recv())
        if answer[0] in (3, 4) and answer[1] == message_id:
            return list(answer)


@pytest.fixture
async def notify(tmp_path: Path) -> AsyncIterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


async def test_a_lone_surrogate_breaks_neither_the_log_nor_the_relay(
    tmp_path: Path, notify: NotifySocket
) -> None:
    port = free_port()
    async with serve(cloud_handler, "127.0.0.1", 0, subprotocols=["ocpp1.6"]) as cloud:  # type: ignore[list-item]
        cloud_port = cloud.sockets[0].getsockname()[1]
        config = tmp_path / "edgegw.toml"
        config.write_text(
            f'[server]\nhost = "127.0.0.1"\nport = {port}\nallow_unknown_chargers = true\n'
            f'[cloud]\nurl = "ws://127.0.0.1:{cloud_port}/ocpp"\n'
            f'[store]\npath = "{tmp_path / "edgegw.db"}"\n'
            f'[control]\nsocket = "{tmp_path / "control.sock"}"\ngroup = ""\n'
            "[daemon]\nshutdown_timeout = 5\n"
        )
        gateway = GatewayProcess(config, notify=notify, log_path=tmp_path / "edgegw.log")
        await gateway.start()
        try:
            async with asyncio.timeout(60):
                await _scenario(port, tmp_path / "control.sock")
        finally:
            code = await gateway.stop()
    log = gateway.log_text()
    assert code == 0, log
    assert "Traceback" not in log, log
    assert "crashed" not in log, log
    assert not [line for line in log.splitlines() if "ERROR   edgegw.store" in line], log
    frames = read_dump(dump_path(tmp_path / "edgegw.db"))
    assert any(f.charger_id == "GOOD" and f.frame.startswith('[3, "last"') for f in frames)
    assert any(f.charger_id == "EVIL" and "\\ud800" in f.frame for f in frames)


async def _scenario(port: int, control: Path) -> None:
    url = f"ws://127.0.0.1:{port}/ocpp"
    async with (
        connect(f"{url}/EVIL", subprotocols=["ocpp1.6"]) as evil,  # type: ignore[list-item]
        connect(f"{url}/GOOD", subprotocols=["ocpp1.6"]) as good,  # type: ignore[list-item]
    ):
        assert (await call(good, "boot", "BootNotification", BOOT))[0] == 3
        await evil.send(HOSTILE)
        # Whether the gateway keeps this charger connected is the relay's business; the log's
        # is to keep the frame and go on.
        with contextlib.suppress(ConnectionClosed):
            await call(evil, "hb", "Heartbeat", {})
        client = await ControlClient.connect(control)
        try:
            # The good charger is relayed, and its frames are logged, the hostile ones too.
            for n in range(20):
                answer = await call(good, f"g{n}", "Heartbeat", {})
                assert answer[0] == 3 and "currentTime" in answer[2], answer
            assert (await call(good, "last", "Heartbeat", {}))[0] == 3
            logged = await client.call("messages", limit=10_000)
            texts = [(f["charger"], f["direction"], f["frame"]) for f in logged["frames"]]
            assert ("GOOD", "charger>", json.dumps([2, "last", "Heartbeat", {}])) in texts
            evil_frames = [t for c, _d, t in texts if c == "EVIL"]
            assert HOSTILE in evil_frames  # the charger's frame, escaped as it came
            # The gateway's answer echoes the id: logged escaped too, whatever the relay sends.
            assert any(d == ">charger" and "\\ud800" in t for c, d, t in texts if c == "EVIL")
            assert all(t.encode("utf-8") for t in evil_frames)  # escaped, never a surrogate
            good_only = await client.call("messages", charger="GOOD", limit=1)
            assert json.loads(good_only["frames"][0]["frame"])[:2] == [3, "last"]
        finally:
            await client.close()
