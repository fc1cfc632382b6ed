"""The TUI's line to the daemon: one control connection, kept up for as long as the TUI runs.

The TUI is a thin client of the control socket (:mod:`edgegw.control`). :class:`DaemonLink`
connects, learns which ops this daemon has and which this user may run (the ``ops`` op),
subscribes to the live topics, and hands every pushed event to its listener. When the daemon
is not there, or goes away, it says so (:attr:`LinkState.DOWN` with the reason, worded for the
person at the screen) and tries again every ``retry_interval`` seconds until it is back.

Screens never talk to a :class:`~edgegw.control.client.ControlClient` directly but to a
:class:`Backend`, so the snapshot tests can put canned data behind the very same screens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from edgegw.control.client import (
    ControlClient,
    ControlClientError,
    ControlTimeout,
    DaemonNotRunning,
    PermissionDenied,
    ProtocolError,
    RemoteError,
)
from edgegw.control.protocol import ErrorCode

log = logging.getLogger(__name__)

LIVE_TOPICS: tuple[str, ...] = ("live", "live.event")
"""What the TUI subscribes to: the coalesced live snapshot and the live events."""
BUILTIN_OPS = frozenset({"ping", "ops", "subscribe"})


class LinkState(StrEnum):
    CONNECTING = "connecting"
    """Before the first attempt has an answer."""
    UP = "up"
    DOWN = "down"
    """The daemon is not running (no socket, nobody answers) or it stopped."""
    UNREACHABLE = "unreachable"
    """The daemon may be running but this TUI cannot use it (permissions, protocol)."""


class OpUnavailable(ControlClientError):
    """The daemon has no such op: it is an older (or differently built) version."""


class NotConnected(ControlClientError):
    """The daemon is not connected right now."""


@dataclass(frozen=True, slots=True)
class OpInfo:
    name: str
    admin: bool
    allowed: bool
    description: str = ""


class LinkListener(Protocol):
    """Told about the connection and about every event the daemon pushes."""

    def link_changed(self, state: LinkState, problem: str) -> None: ...

    def link_event(self, topic: str, data: Any) -> None: ...


class Backend(Protocol):
    """What the screens need of the daemon."""

    @property
    def state(self) -> LinkState: ...

    @property
    def problem(self) -> str:
        """Why the link is down (for the "not running" screen); "" when up."""
        ...

    @property
    def where(self) -> str:
        """The socket path, to show."""
        ...

    def has(self, op: str) -> bool:
        """The daemon has ``op`` (True while unknown, so a call can say what is wrong)."""
        ...

    def allowed(self, op: str) -> bool:
        """This user may run ``op`` (admin ops need root or the daemon's user)."""
        ...

    @property
    def admin(self) -> bool:
        """This user may run the daemon's admin ops (True while not known)."""
        ...

    async def call(
        self, op: str, args: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        """Run ``op``; raises a ``ControlClientError`` (:class:`OpUnavailable`,
        :class:`NotConnected`, ``RemoteError``, ``ControlTimeout``...) with a readable message."""
        ...

    async def run(self, listener: LinkListener) -> None:
        """Connect and stay connected until cancelled, telling ``listener`` everything."""
        ...

    def retry_now(self) -> None:
        """Skip the wait before the next connection attempt."""
        ...


Connector = Callable[[Path], Awaitable[ControlClient]]


async def _connect(path: Path) -> ControlClient:
    return await ControlClient.connect(path, timeout=5.0)


class DaemonLink:
    """:class:`Backend` over the daemon's control socket at ``path``."""

    def __init__(
        self,
        path: Path,
        *,
        retry_interval: float = 2.0,
        call_timeout: float = 15.0,
        topics: tuple[str, ...] = LIVE_TOPICS,
        connect: Connector = _connect,
    ) -> None:
        self.path = Path(path)
        self._retry_interval = retry_interval
        self._call_timeout = call_timeout
        self._topics = topics
        self._connect = connect
        self._client: ControlClient | None = None
        self._ops: dict[str, OpInfo] | None = None
        self._state = LinkState.CONNECTING
        self._problem = ""
        self._wake = asyncio.Event()
        self.attempts = 0
        """Connection attempts since the link was last up."""

    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def problem(self) -> str:
        return self._problem

    @property
    def where(self) -> str:
        return str(self.path)

    @property
    def ops(self) -> Mapping[str, OpInfo]:
        return dict(self._ops or {})

    def has(self, op: str) -> bool:
        return self._ops is None or op in self._ops or op in BUILTIN_OPS

    def allowed(self, op: str) -> bool:
        info = (self._ops or {}).get(op)
        return info is None or info.allowed

    @property
    def admin(self) -> bool:
        ops = self._ops
        if ops is None:
            return True
        admin_ops = [o for o in ops.values() if o.admin]
        return not admin_ops or any(o.allowed for o in admin_ops)

    def retry_now(self) -> None:
        self._wake.set()

    async def call(
        self, op: str, args: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        client = self._client
        if client is None:
            raise NotConnected(self._problem or "not connected to edgegw")
        if not self.has(op):
            raise OpUnavailable(f"{op!r} is not available in this daemon version")
        limit = self._call_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                return await client.call(op, **dict(args or {}))
        except TimeoutError:
            raise ControlTimeout(f"edgegw did not answer {op!r} within {limit:g} s") from None
        except RemoteError as exc:
            if exc.code == ErrorCode.UNKNOWN_OP:
                raise OpUnavailable(f"{op!r} is not available in this daemon version") from None
            raise

    async def run(self, listener: LinkListener) -> None:
        while True:
            self.attempts += 1
            try:
                client = await self._connect(self.path)
            except DaemonNotRunning as exc:
                self._down(listener, str(exc))
            except ControlClientError as exc:
                self._down(listener, f"cannot use edgegw's control socket: {exc}", reachable=False)
            else:
                await self._serve(client, listener)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._retry_interval):
                    await self._wake.wait()

    async def _serve(self, client: ControlClient, listener: LinkListener) -> None:
        problem = "edgegw stopped: the control connection closed"
        reachable = True
        try:
            self._ops = _parse_ops(await client.call("ops"))
            await client.subscribe(*self._topics)
            self._client = client
            self._state, self._problem = LinkState.UP, ""
            self.attempts = 0
            log.info("connected to edgegw at %s", self.path)
            listener.link_changed(LinkState.UP, "")
            async for event in client.events():
                listener.link_event(event.topic, event.data)
        except (PermissionDenied, ProtocolError) as exc:
            problem, reachable = f"edgegw refused this screen: {exc}", False
        except ControlClientError as exc:
            problem = f"edgegw stopped or dropped this screen: {exc}"
        finally:
            self._client = None
            await client.close()
        self._down(listener, problem, reachable=reachable)

    def _down(self, listener: LinkListener, problem: str, *, reachable: bool = True) -> None:
        state = LinkState.DOWN if reachable else LinkState.UNREACHABLE
        if self._state is not state or self._problem != problem:
            log.info("edgegw not reachable: %s", problem)
        self._state, self._problem = state, problem
        listener.link_changed(state, problem)


def _parse_ops(listing: Any) -> dict[str, OpInfo]:
    ops: dict[str, OpInfo] = {}
    if not isinstance(listing, list):
        return ops
    for entry in listing:
        if isinstance(entry, Mapping) and isinstance(entry.get("op"), str):
            name = entry["op"]
            ops[name] = OpInfo(
                name,
                bool(entry.get("admin", False)),
                bool(entry.get("allowed", True)),
                str(entry.get("description", "")),
            )
    return ops
