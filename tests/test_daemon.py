"""The daemon as systemd runs it: a real process, sd_notify, SIGTERM with open sessions."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgegw.sdnotify import Notifier
from edgegw.sim.cloud import SimCloud
from tests.conftest import raw_charger

BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}


class NotifySocket:
    """A unix datagram socket standing in for systemd's notify socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    async def wait_for(self, prefix: str, timeout: float = 20) -> str:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while True:
                for message in self.messages:
                    if message.startswith(prefix):
                        return message
                data = await loop.sock_recv(self.sock, 4096)
                self.messages.append(data.decode())


@pytest.fixture
async def notify(tmp_path: Path) -> AsyncIterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.sock.close()


async def test_sigterm_with_open_sessions(tmp_path: Path, notify: NotifySocket) -> None:
    async with SimCloud(accepted_tags={"TAG1"}) as cloud:
        config = tmp_path / "edgegw.toml"
        config.write_text(
            f"""
[server]
host = "127.0.0.1"
port = 0

[cloud]
url = "{cloud.url}"

[store]
path = "{tmp_path / "edgegw.db"}"

[control]
socket = "{tmp_path / "control.sock"}"

[daemon]
shutdown_timeout = 5

[auth]
push_local_list = false  # this raw charger answers no gateway calls

[[chargers]]
id = "CP1"
"""
        )
        env = dict(os.environ, NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="200000")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edgegw",
            "run",
            "--config",
            str(config),
            env=env,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            ready = await notify.wait_for("READY=1")
            port = int(ready.rsplit(" ", 1)[1])
            await notify.wait_for("WATCHDOG=1")
            url = f"ws://127.0.0.1:{port}/ocpp"
            async with raw_charger(url, "CP1") as cp:
                await cp.call("BootNotification", BOOT)
                start = {
                    "connectorId": 1,
                    "idTag": "TAG1",
                    "meterStart": 100,
                    "timestamp": "2026-11-21T10:00:00Z",
                }
                started = await cp.call("StartTransaction", start)
                assert started[2]["idTagInfo"]["status"] == "Accepted"
                proc.send_signal(signal.SIGTERM)
                await notify.wait_for("STOPPING=1")
                await cp.ws.wait_closed()
                assert cp.ws.close_code == 1001
            async with asyncio.timeout(10):
                code = await proc.wait()
            assert code == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.stderr is not None
        log = (await proc.stderr.read()).decode()
        assert "SIGTERM received: shutting down" in log
        assert "stopped in" in log
        # The open session was recorded with the cloud's transaction id.
        import sqlite3

        with sqlite3.connect(tmp_path / "edgegw.db") as db:
            rows = db.execute(
                "SELECT charger_id, transaction_id, origin FROM transactions"
            ).fetchall()
        assert rows == [("CP1", started[2]["transactionId"], "cloud")]


async def run_to_exit(config: Path) -> tuple[int | None, bytes]:
    """Run `edgegw run --config` until it exits by itself; its exit code and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edgegw",
        "run",
        "--config",
        str(config),
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    return proc.returncode, err


async def test_invalid_config_exits_3_listing_problems(tmp_path: Path) -> None:
    config = tmp_path / "edgegw.toml"
    config.write_text('[server]\nport = "nine thousand"\nfoo = 1\n')
    code, err = await run_to_exit(config)
    assert code == 3
    assert b"server.port" in err and b"server.foo: unknown key" in err


async def test_corrupt_store_exits_1_with_advice(tmp_path: Path) -> None:
    db = tmp_path / "edgegw.db"
    db.write_bytes(b"garbage" * 1000)
    config = tmp_path / "edgegw.toml"
    config.write_text(f'[server]\nport = 0\n[store]\npath = "{db}"\n')
    code, err = await run_to_exit(config)
    assert code == 1
    assert b"move it aside" in err


def test_notifier_silent_without_socket() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.watchdog_interval is None
    notifier.ready()  # no socket: nothing happens, nothing raised


def test_notifier_watchdog_for_other_pid_is_ignored() -> None:
    notifier = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert notifier.watchdog_interval is None
    mine = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000000"})
    assert mine.watchdog_interval == 0.5
