"""The gateway as a real process that a test can SIGKILL and start again on the same port.

An in-process gateway cannot show what a crash does: a SIGKILL ends the process between any
two instructions, with no ``finally`` run, no socket closed cleanly and nothing flushed that
was not committed. :class:`GatewayProcess` runs ``python -m edgegw run --config <file>`` the way
systemd does, knows it is ready from its ``READY=1`` sd_notify message (a datagram socket stands
in for systemd's), kills it without warning and starts it again on the same fixed port, so
chargers find it where they left it. ``up`` is set exactly while a process is ready; it is
cleared *before* the kill signal goes out.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import IO

from edgegw.tasks import TaskOwner

_READY_TIMEOUT = 30.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (the gateway must keep one port across restarts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class NotifySocket:
    """A datagram socket standing in for systemd's ``$NOTIFY_SOCKET``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.setblocking(False)

    async def next_with(self, prefix: str) -> str:
        """The next message (not one received before) that starts with ``prefix``."""
        loop = asyncio.get_running_loop()
        while True:
            message = (await loop.sock_recv(self._sock, 4096)).decode()
            if message.startswith(prefix):
                return message

    def close(self) -> None:
        self._sock.close()


class GatewayProcess:
    """``edgegw run`` in a subprocess: start, SIGKILL, start again, stop with SIGTERM.

    Every run appends its stderr (the daemon's log) to ``log_path``.
    """

    def __init__(self, config: Path, *, notify: NotifySocket, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self.up = asyncio.Event()
        self.starts = 0
        self.kills = 0
        self._notify = notify
        self._proc: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    async def start(self) -> None:
        """Start a process and return once it said READY=1."""
        if self._proc is not None and self._proc.returncode is None:
            raise RuntimeError("the gateway process is already running")
        self._log = self.log_path.open("ab")
        env = dict(os.environ, NOTIFY_SOCKET=str(self._notify.path))
        env.pop("WATCHDOG_USEC", None)
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edgegw",
            "run",
            "--config",
            str(self.config),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=self._log,
        )
        self.starts += 1
        waiters = TaskOwner("gateway-start")
        ready = waiters.spawn(self._notify.next_with("READY=1"), "ready")
        exited = waiters.spawn(self._proc.wait(), "exited")
        try:
            async with asyncio.timeout(_READY_TIMEOUT):
                await asyncio.wait({ready, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await waiters.close("gateway start settled")
        if not ready.done() or ready.cancelled():
            raise RuntimeError(
                f"the gateway exited with {self._proc.returncode} before it was ready; "
                f"see {self.log_path}:\n{self.log_tail()}"
            )
        self.up.set()

    def kill(self) -> None:
        """SIGKILL the process now (callable from any synchronous hook)."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            raise RuntimeError("no gateway process to kill")
        self.up.clear()  # chargers must not reconnect to the dying process
        proc.send_signal(signal.SIGKILL)
        self.kills += 1

    async def restart_after_kill(self) -> None:
        """Wait for the killed process to be gone, then start a new one on the same port."""
        proc = self._proc
        assert proc is not None
        code = await proc.wait()
        if code != -signal.SIGKILL:
            raise RuntimeError(f"the killed gateway exited with {code}, not by SIGKILL")
        self._close_log()
        await self.start()

    async def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait for a clean exit; its exit code."""
        proc = self._proc
        if proc is None:
            return 0
        self.up.clear()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                return await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            self._close_log()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
