"""Every charger's relay session, whether the charger is connected or not.

A charger's :class:`~edgegw.proxy.session.ChargerSession` (its link core and cloud connection)
lives while the charger is connected **or** the cloud is owed something by it: a call the cloud
has not answered yet, or queued transaction messages. So:

* a late answer from a slow cloud still completes what it answers after the charger has gone;
* a charger that queued sessions during an outage and then lost power for good still has them
  delivered once the cloud is reachable (the *orphan drain*: at start-up, every charger with
  queued messages gets a session of its own, connected to the cloud as that charger);
* a charger that connects again meanwhile takes over the same session.

One connection per identity at a time, and the newest wins: a new connection closes the one
before it, and of several that arrive together only the last is served (the others are closed
with 1008), so one session never has two live connections feeding it. A connection its
session refuses (another OCPP version than the messages it still owes the cloud, see
:meth:`ChargerSession.attach`) is closed without being served: nothing records it as connected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection

from edgegw.ocpp.versions import OCPP16
from edgegw.proxy.session import ChargerSession
from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)

SessionFactory = Callable[[str, ServerConnection | None], Awaitable[ChargerSession]]
"""Makes the session of a charger (from its first connection, or None for an orphan drain)."""


@dataclass(slots=True)
class _Gate:
    """The connections of one identity pass one at a time; ``latest`` names the newest."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    latest: int = 0
    users: int = 0


class Relays:
    """The registry of relay sessions, by charger identity."""

    def __init__(self, make_session: SessionFactory) -> None:
        self._make_session = make_session
        self._sessions: dict[str, ChargerSession] = {}
        self._lives: dict[str, asyncio.Task[None]] = {}
        self._gates: dict[str, _Gate] = {}
        self._tasks = TaskOwner("relays")

    def get(self, charger_id: str) -> ChargerSession | None:
        """The charger's session, connected or only still owed to the cloud."""
        return self._sessions.get(charger_id)

    def __len__(self) -> int:
        return len(self._sessions)

    def sessions(self) -> list[ChargerSession]:
        """Every session, connected or only still owed to the cloud."""
        return list(self._sessions.values())

    async def connection(
        self,
        charger_id: str,
        ws: ServerConnection,
        serve: Callable[[ChargerSession], Awaitable[None]],
    ) -> None:
        """Hand the charger's new connection to its session; ``serve`` relays it to the end."""
        gate = self._gates.setdefault(charger_id, _Gate())
        gate.latest += 1
        mine = gate.latest
        gate.users += 1
        try:
            current = self._sessions.get(charger_id)
            if current is not None and current.ws is not None:
                log.warning("%s connected again; closing its previous connection", charger_id)
                await current.close(1008, "replaced by a new connection")
            async with gate.lock:
                session = await self._session_for(charger_id, ws)
                if gate.latest != mine:
                    log.warning(
                        "%s: a newer connection of this charger arrived meanwhile; closing "
                        "this one",
                        charger_id,
                    )
                    await ws.close(1008, "replaced by a newer connection")
                    return
                session.attach(ws)  # no await since the check above: nothing can come between
                if session.link.version != (ws.subprotocol or OCPP16):
                    # attach refused it (another version than the session's owed messages):
                    # closed unserved, so it is never recorded nor announced as connected
                    await session.serve()
                    return
                try:
                    await serve(session)
                finally:
                    if session.ws is ws:  # serve failed before relaying: free the session
                        await session.detach()
        finally:
            gate.users -= 1
            self._forget_gate(charger_id)

    async def drain(self, charger_ids: Iterable[str]) -> int:
        """Give each charger that has no session one that delivers what it owes the cloud."""
        started = 0
        for charger_id in charger_ids:
            gate = self._gates.get(charger_id)
            if charger_id in self._sessions or (gate is not None and gate.lock.locked()):
                continue  # connected, or connecting: its own session drains it
            gate = self._gates.setdefault(charger_id, _Gate())
            gate.users += 1
            try:
                async with gate.lock:
                    if charger_id not in self._sessions:
                        await self._session_for(charger_id, None)
                        started += 1
            finally:
                gate.users -= 1
                self._forget_gate(charger_id)
        return started

    async def close(self) -> None:
        """Stop every session (the charger connections were closed before)."""
        await self._tasks.close("shutdown")

    async def _session_for(self, charger_id: str, ws: ServerConnection | None) -> ChargerSession:
        session = self._sessions.get(charger_id)
        if session is not None and session.closing:
            life = self._lives.get(charger_id)
            if life is not None:
                await asyncio.wait({life})  # it is closing its cloud connection: let it finish
            session = self._sessions.get(charger_id)
        if session is None:
            session = await self._make_session(charger_id, ws)
            self._sessions[charger_id] = session
            self._lives[charger_id] = self._tasks.spawn(
                self._life(charger_id, session), f"relay:{charger_id}"
            )
        return session

    async def _life(self, charger_id: str, session: ChargerSession) -> None:
        try:
            await session.run()
        finally:
            if self._sessions.get(charger_id) is session:
                del self._sessions[charger_id]
                del self._lives[charger_id]
            self._forget_gate(charger_id)

    def _forget_gate(self, charger_id: str) -> None:
        gate = self._gates.get(charger_id)
        if gate is not None and gate.users == 0 and charger_id not in self._sessions:
            del self._gates[charger_id]
