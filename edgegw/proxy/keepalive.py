"""One keepalive for every WebSocket connection of the site, instead of a task per connection.

websockets pings each connection from a task of its own (``ping_interval``): two tasks per
connected charger (its connection and its cloud link), about 1.5 KiB each while they sleep.
Here the connections are opened with ``ping_interval=None`` and registered with the site's one
:class:`Keepalive` while they are open. It keeps them in a heap by the time their next ping (or
the deadline of the pong they owe) is due and sleeps until the earliest: each connection is
pinged ``interval`` seconds after it was registered and every ``interval`` seconds after that,
so the pings are spread as the connections arrived, never all at once (the next ping goes
``interval`` seconds after the last once that one is answered, however long ``timeout`` is, as
with websockets' own keepalive). A connection whose pong
has not come ``timeout`` seconds after its ping is closed as websockets closes it: code 1011,
"keepalive ping timeout". An interval of 0 (the configuration's "off") registers nothing.

Sending a ping may wait (a peer that stopped reading fills the socket buffer), so each ping and
each close runs in a short task of its own; the pong is not waited for, the heap checks it at
its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from typing import Final, cast

from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.protocol import State

from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)

CLOSE_GRACE_S: Final = 10.0
"""How long a connection closed for a missing pong may take to finish closing before its
socket is aborted (the peer that stopped answering may have stopped reading too)."""


class _Entry:
    """One registered connection: its settings and where its keepalive stands."""

    __slots__ = ("at", "interval", "pinged_at", "pong", "timeout")

    def __init__(self, interval: float, timeout: float, at: float) -> None:
        self.interval = interval
        self.timeout = timeout
        self.at = at  # when the heap looks at it next (its current heap item's time)
        self.pinged_at: float | None = None  # the ping whose pong is owed, None: none owed
        self.pong: asyncio.Future[float] | None = None  # set once the ping has been sent


class Keepalive:
    """Pings the registered connections and closes those that stop answering."""

    def __init__(self) -> None:
        self._entries: dict[Connection, _Entry] = {}
        self._heap: list[tuple[float, int, Connection]] = []
        self._order = itertools.count()  # ties in the heap never compare connections
        self._changed = asyncio.Event()
        self._tasks = TaskOwner("keepalive")
        self._runner: asyncio.Task[None] | None = None
        self._closed = False

    def __len__(self) -> int:
        """How many connections are registered."""
        return len(self._entries)

    def register(self, ws: Connection, interval: float, timeout: float) -> None:
        """Keep ``ws`` alive until :meth:`unregister`: a ping every ``interval`` seconds (0:
        none), closed when a pong is ``timeout`` seconds late."""
        if interval <= 0 or ws in self._entries or self._closed:
            return
        at = asyncio.get_running_loop().time() + interval
        self._entries[ws] = _Entry(interval, timeout, at)
        self._push(at, ws)
        if self._runner is None:
            self._runner = self._tasks.spawn(self._run(), "pings")

    def unregister(self, ws: Connection) -> None:
        """Forget ``ws`` (it has closed). Its items left in the heap are skipped when due."""
        self._entries.pop(ws, None)

    async def close(self) -> None:
        """Stop pinging (at shutdown); connections registered later are not pinged."""
        self._closed = True
        await self._tasks.close("keepalive stopping")
        self._entries.clear()
        self._heap.clear()

    def _push(self, at: float, ws: Connection) -> None:
        if not self._heap or at < self._heap[0][0]:
            self._changed.set()  # the runner sleeps until a later time: wake it
        heapq.heappush(self._heap, (at, next(self._order), ws))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._changed.clear()
            delay = self._heap[0][0] - loop.time() if self._heap else None
            if delay is None or delay > 0:
                try:
                    async with asyncio.timeout(delay):
                        await self._changed.wait()
                except TimeoutError:
                    pass
            now = loop.time()
            while self._heap and self._heap[0][0] <= now:
                at, _, ws = heapq.heappop(self._heap)
                entry = self._entries.get(ws)
                if entry is not None and entry.at == at:  # else unregistered or rescheduled
                    self._due(ws, entry, now)

    def _due(self, ws: Connection, entry: _Entry, now: float) -> None:
        if ws.state is not State.OPEN:
            self._entries.pop(ws, None)  # closing: its owner unregisters it soon anyway
            return
        if entry.pinged_at is None:  # a ping is due
            entry.pinged_at = now
            entry.pong = None
            self._tasks.spawn(self._ping(ws, entry), "ping")
            entry.at = now + min(entry.interval, entry.timeout)
        elif entry.pong is not None and entry.pong.done():  # answered in time
            entry.at = max(entry.pinged_at + entry.interval, now)
            entry.pinged_at = None
        elif now < entry.pinged_at + entry.timeout:  # not answered yet, still in time
            entry.at = entry.pinged_at + entry.timeout
        else:  # no pong within the timeout
            self._entries.pop(ws, None)
            self._tasks.spawn(self._fail(ws), "ping-timeout")
            return
        self._push(entry.at, ws)

    @staticmethod
    async def _ping(ws: Connection, entry: _Entry) -> None:
        with contextlib.suppress(ConnectionClosed):  # closed meanwhile: its owner unregisters it
            entry.pong = cast("asyncio.Future[float]", await ws.ping())

    @staticmethod
    async def _fail(ws: Connection) -> None:
        log.debug("%s: no pong within the keepalive timeout: closing", ws.id)
        try:
            async with asyncio.timeout(CLOSE_GRACE_S):
                async with ws.send_context():
                    ws.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        except ConnectionClosed:
            pass  # closed, as meant
        except TimeoutError:
            ws.transport.abort()
