"""One control-socket client: who it is (the kernel's peer credentials and groups), its
requests read and answered with back-pressure, and its bounded queue of events (see
:mod:`edgegw.control.server`, which accepts clients and runs their requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import platform
import pwd
import socket
import struct
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from edgegw.control.protocol import (
    MAX_LINE,
    ErrorCode,
    Framing,
    LineFramer,
    encode_error,
    topic_matches,
)
from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)

# Linux >= 4.13. Python does not name it; 59 is its number on the architectures listed (others,
# e.g. SPARC, number it differently and use the group database instead).
_SO_PEERGROUPS: int | None = getattr(
    socket,
    "SO_PEERGROUPS",
    59
    if sys.platform == "linux"
    and platform.machine().startswith(("x86", "i386", "i686", "amd64", "aarch64", "arm", "riscv"))
    else None,
)
_PEERGROUPS_BUFFER = 1024  # the most getsockopt() reads: 256 groups
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is on the other end of a connection, as the kernel reports it."""

    pid: int
    uid: int
    gid: int


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """A snapshot of one connected client (for status displays and tests)."""

    peer: Peer
    admin: bool
    connected_at: float
    topics: tuple[str, ...]
    queued_events: int


def peer_of(sock: Any) -> Peer:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(pid, uid, gid)


def peer_groups(sock: Any) -> frozenset[int] | None:
    """The peer's supplementary groups when it connected (None: the kernel cannot tell)."""
    if _SO_PEERGROUPS is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERGROUPS, _PEERGROUPS_BUFFER)
    except (OSError, ValueError):  # an older kernel, or more groups than the buffer holds
        return None
    count = len(raw) // 4
    return frozenset(struct.unpack(f"{count}I", raw[: count * 4]))


def user_groups(uid: int, gid: int) -> frozenset[int]:
    """The groups the group database gives ``uid`` (its primary ``gid`` included)."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return frozenset({gid})
    try:
        return frozenset(os.getgrouplist(name, gid))
    except OSError:
        return frozenset({gid})


class Connection:
    """One client: reads its requests, has the server ``dispatch`` each, writes the answers
    and its events; the server is told to ``forget`` it when it goes."""

    def __init__(
        self,
        number: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: Peer,
        *,
        admin: bool,
        connected_at: float,
        max_inflight: int,
        max_queued_events: int,
        dispatch: Callable[[Connection, bytes], Awaitable[bytes]],
        forget: Callable[[Connection], None],
    ) -> None:
        self._dispatch = dispatch
        self._forget = forget
        self.name = f"client-{number}"
        self.peer = peer
        self.admin = admin
        self.connected_at = connected_at
        self.topics: tuple[str, ...] = ()
        self.events: asyncio.Queue[bytes] = asyncio.Queue(max_queued_events)
        self._reader = reader
        self._writer = writer
        self._tasks = TaskOwner(f"control/{self.name}")
        self._slots = asyncio.Semaphore(max_inflight)
        self._write_lock = asyncio.Lock()
        self._requests = itertools.count(1)
        self._answering: set[asyncio.Task[None]] = set()
        self._aborted = False

    def describe(self) -> str:
        return f"{self.name} (pid {self.peer.pid}, uid {self.peer.uid})"

    def info(self) -> ClientInfo:
        return ClientInfo(
            self.peer, self.admin, self.connected_at, self.topics, self.events.qsize()
        )

    def wants(self, topic: str) -> bool:
        return any(topic_matches(pattern, topic) for pattern in self.topics)

    def offer(self, line: bytes) -> bool:
        """Queue an event; a client whose queue is full is dropped (returns False)."""
        if self._aborted:
            return False
        try:
            self.events.put_nowait(line)
        except asyncio.QueueFull:
            log.warning(
                "control %s dropped: it left %d events unread",
                self.describe(),
                self.events.qsize(),
            )
            self.abort()
            return False
        return True

    def abort(self) -> None:
        """Cut the connection at once, discarding whatever it has not read."""
        if not self._aborted:
            self._aborted = True
            self._writer.transport.abort()
            while not self.events.empty():
                self.events.get_nowait()

    async def send(self, line: bytes) -> None:
        async with self._write_lock:
            if self._writer.transport.is_closing():
                raise ConnectionResetError("control client went away")
            self._writer.write(line)
            await self._writer.drain()

    async def run(self) -> None:
        try:
            self._tasks.spawn(self._pump_events(), "events")
            await self._read_requests()
            # The client closed its end: let the answers still being worked out go out first.
            if self._answering and not self._aborted:
                await asyncio.wait(self._answering)
        except ConnectionError:
            pass
        finally:
            await self._tasks.close()
            if not self._aborted:
                self._writer.close()
            self._forget(self)
            log.debug("control %s disconnected", self.describe())

    async def _read_requests(self) -> None:
        framer = LineFramer(MAX_LINE)
        while True:
            data = await self._reader.read(_READ_CHUNK)
            if data:
                lines = framer.feed(data)
            else:  # end of stream: a last line without its newline still counts
                rest = framer.rest()
                lines = [rest] if rest.strip() else []
            for line in lines:
                await self._slots.acquire()
                task = self._tasks.spawn(self._answer(line), f"request-{next(self._requests)}")
                self._answering.add(task)
                task.add_done_callback(self._answering.discard)
            if not data:
                return

    async def _pump_events(self) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                await self.send(await self.events.get())

    async def _answer(self, line: bytes | Literal[Framing.TOO_LONG]) -> None:
        try:
            if line is Framing.TOO_LONG:
                answer: bytes | None = encode_error(
                    None, ErrorCode.TOO_LARGE, f"request line longer than {MAX_LINE} bytes"
                )
            elif not line.strip():
                answer = None  # blank lines are tolerated (someone typing into socat)
            else:
                answer = await self._dispatch(self, line)
            if answer is not None:
                await self.send(answer)
        except ConnectionError:
            pass
        finally:
            self._slots.release()
