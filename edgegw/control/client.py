"""Clients of the control socket: an async one for the TUI, a blocking one-shot for the CLI.

Every failure surfaces as a :class:`ControlClientError` whose message can be shown to the
person at the terminal as it is: the daemon not running says how to start it, a permission
problem says which group to join, a daemon-side error keeps its code and message.

Async use::

    async with await ControlClient.connect(path) as client:
        status = await client.call("sync.status")
        await client.subscribe("charger.*")
        async for event in client.events():
            ...

Use ``asyncio.timeout`` around a call to bound it. Events are held in a bounded queue; a client
that subscribes but does not consume them stops reading, and the daemon then drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import itertools
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgegw.control.protocol import (
    MAX_LINE,
    ErrorCode,
    Event,
    Framing,
    LineFramer,
    Reply,
    encode_request,
    parse_server_message,
)
from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)

_START_HINT = "start it with `systemctl start edgegw`"
_READ_CHUNK = 64 * 1024


class ControlClientError(Exception):
    """Anything that kept a control call from giving a result."""


class DaemonNotRunning(ControlClientError):
    """No daemon answers on the control socket."""


class ConnectionLost(ControlClientError):
    """The connection ended before the answer came (the daemon stopped, or dropped us)."""


class ProtocolError(ControlClientError):
    """The daemon sent something that is not the control protocol."""


class ControlTimeout(ControlClientError, TimeoutError):
    """The daemon did not answer in time."""


class RemoteError(ControlClientError):
    """The daemon answered with an error; ``code`` is an :class:`ErrorCode` value."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class PermissionDenied(RemoteError):
    """Not allowed: the socket file refused us, or the op needs admin rights."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.PERMISSION_DENIED, message)


def _access_hint(path: Path) -> str:
    try:
        group = grp.getgrgid(path.stat().st_gid).gr_name
    except (OSError, KeyError):
        return "ask for access to the edgegw control socket, or use sudo"
    return f"add your user to group {group!r} (and log in again), or use sudo"


def connect_error(path: Path, exc: OSError) -> ControlClientError:
    """The exception to raise when connecting to ``path`` failed with ``exc``."""
    if isinstance(exc, FileNotFoundError):
        return DaemonNotRunning(
            f"edgegw is not running (no control socket at {path}); {_START_HINT}"
        )
    if isinstance(exc, ConnectionRefusedError):
        return DaemonNotRunning(
            f"edgegw is not running (nothing answers at {path}, "
            f"a socket left by a stopped run); {_START_HINT}"
        )
    if isinstance(exc, PermissionError):
        return PermissionDenied(f"not allowed to use {path}: {_access_hint(path)}")
    return ControlClientError(f"cannot connect to the edgegw control socket {path}: {exc}")


def _result_of(reply: Reply) -> Any:
    failure = reply.failure
    if failure is None:
        return reply.result
    if failure.code == ErrorCode.PERMISSION_DENIED:
        raise PermissionDenied(failure.message)
    raise RemoteError(failure.code, failure.message)


@dataclass(frozen=True, slots=True)
class _End:
    error: ControlClientError | None


class ControlClient:
    """One connection to the daemon; any number of calls may be in flight on it."""

    def __init__(
        self,
        path: Path,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        max_queued_events: int = 1024,
    ) -> None:
        """Use :meth:`connect`."""
        self.path = path
        self._reader = reader
        self._writer = writer
        self._tasks = TaskOwner("control-client")
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._events: asyncio.Queue[Event | _End] = asyncio.Queue(max_queued_events)
        self._failure: ControlClientError | None = None
        self._ended = False
        self._closed = False

    @classmethod
    async def connect(
        cls, path: Path | str, *, timeout: float = 5.0, max_queued_events: int = 1024
    ) -> ControlClient:
        """Connect to the daemon's control socket at ``path``."""
        path = Path(path)
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(os.fsdecode(path))
        except TimeoutError:
            raise ControlTimeout(f"edgegw did not accept a connection on {path}") from None
        except OSError as exc:
            raise connect_error(path, exc) from exc
        client = cls(path, reader, writer, max_queued_events=max_queued_events)
        client._tasks.spawn(client._read(), "reader")
        return client

    async def call(self, op: str, /, **args: Any) -> Any:
        """Run ``op`` in the daemon and return its result, or raise what went wrong."""
        if self._closed:
            raise ConnectionLost("this control client is closed")
        if self._failure is not None:
            raise type(self._failure)(*self._failure.args)
        request_id = next(self._ids)
        line = encode_request(request_id, op, args)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            # If the daemon hung up, maybe after saying why, the reader settles the future
            # with that answer, or with ConnectionLost at the end of the stream.
            with contextlib.suppress(ConnectionError):
                self._writer.write(line)
                await self._writer.drain()
            reply = await future
        finally:
            self._pending.pop(request_id, None)
        return _result_of(reply)

    async def subscribe(self, *topics: str) -> list[str]:
        """Receive events for ``topics`` (replacing earlier ones); read them with ``events``."""
        result = await self.call("subscribe", topics=list(topics))
        return list(result["topics"])

    async def events(self) -> AsyncIterator[Event]:
        """Events in arrival order; ends when the client is closed.

        Raises :class:`ConnectionLost` if the daemon ends the connection (it stopped, or
        dropped this client for not keeping up).
        """
        while True:
            item = await self._events.get()
            if isinstance(item, _End):
                self._events.put_nowait(item)  # every later iterator ends the same way
                if item.error is not None:
                    raise type(item.error)(*item.error.args)
                return
            yield item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._tasks.close()
        transport = self._writer.transport
        if transport.get_write_buffer_size():
            transport.abort()  # the daemon is not reading; do not wait for it
        else:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._fail(ConnectionLost("the control client was closed"), ended_by_us=True)

    async def __aenter__(self) -> ControlClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _read(self) -> None:
        framer = LineFramer(MAX_LINE)
        error: ControlClientError
        try:
            while True:
                data = await self._reader.read(_READ_CHUNK)
                if not data:
                    error = ConnectionLost("edgegw closed the control connection")
                    break
                for line in framer.feed(data):
                    if line is Framing.TOO_LONG:
                        raise ProtocolError(f"the daemon sent a line over {MAX_LINE} bytes")
                    try:
                        message = parse_server_message(line)
                    except ValueError as exc:
                        raise ProtocolError(str(exc)) from None
                    if isinstance(message, Event):
                        await self._events.put(message)
                    else:
                        self._resolve(message)
        except ProtocolError as exc:
            log.warning("control connection to %s: %s", self.path, exc)
            self._writer.transport.abort()
            error = exc
        except OSError as exc:
            error = ConnectionLost(f"lost the control connection to edgegw: {exc}")
        self._fail(error, ended_by_us=False)

    def _resolve(self, reply: Reply) -> None:
        if reply.id is None:
            # The daemon could not read one of our lines, so it cannot say which call failed.
            assert reply.failure is not None
            log.warning("edgegw refused a control request: %s", reply.failure.message)
            for waiting in self._pending.values():
                if not waiting.done():
                    waiting.set_result(reply)
            return
        future = self._pending.get(reply.id)
        if future is not None and not future.done():
            future.set_result(reply)

    def _fail(self, error: ControlClientError, *, ended_by_us: bool) -> None:
        if self._failure is None:
            self._failure = error
        for future in self._pending.values():
            if not future.done():
                future.set_exception(type(error)(*error.args))
        if not self._ended:
            self._ended = True
            end = _End(None if ended_by_us else error)
            while True:
                try:
                    self._events.put_nowait(end)
                    break
                except asyncio.QueueFull:
                    self._events.get_nowait()  # the connection is over; make room for the end


def call_sync(
    path: Path | str, op: str, args: Mapping[str, Any] | None = None, timeout: float = 5.0
) -> Any:
    """Run one op and return its result, blocking; for CLI commands.

    Uses a plain blocking socket (no event loop), so it also works where a loop is running.
    ``timeout`` bounds the whole exchange.
    """
    path = Path(path)
    deadline = time.monotonic() + timeout
    line = encode_request(1, op, args or {})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(os.fsdecode(path))
        except TimeoutError:
            raise ControlTimeout(f"edgegw did not accept a connection on {path}") from None
        except OSError as exc:
            raise connect_error(path, exc) from exc
        framer = LineFramer(MAX_LINE)
        try:
            # If the daemon hung up, it may have said why (too many clients): read on.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(line)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                sock.settimeout(remaining)
                data = sock.recv(_READ_CHUNK)
                if not data:
                    raise ConnectionLost(f"edgegw closed the control connection during {op!r}")
                for raw in framer.feed(data):
                    if raw is Framing.TOO_LONG:
                        raise ProtocolError(f"the daemon sent a line over {MAX_LINE} bytes")
                    try:
                        message = parse_server_message(raw)
                    except ValueError as exc:
                        raise ProtocolError(str(exc)) from None
                    if isinstance(message, Reply) and message.id in (1, None):
                        return _result_of(message)
        except TimeoutError:
            raise ControlTimeout(f"edgegw did not answer {op!r} within {timeout:g} s") from None
        except ConnectionError as exc:
            raise ConnectionLost(f"lost the control connection to edgegw: {exc}") from exc
