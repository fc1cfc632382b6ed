"""Charger actions someone asks for: stop a session, unlock, reset, enable or disable.

Each sends one OCPP call of the gateway's own to a connected charger (ids that never collide
with the cloud's, answers that never go upstream) and records what was asked and answered as
an ``action.<Action>`` event, whichever transport asked (the control socket, MQTT): the
caretaker screen and ``edgegw events`` show who stopped what. What the charger answers
(Accepted, Rejected, Unlocked, Scheduled ...) is returned; an action fails only when the call
could not be made (unknown or offline charger, no answer).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from edgegw.proxy.session import CallFailed
from edgegw.services.errors import BadRequest, Conflict, NotFound, Unavailable
from edgegw.services.ports import (
    VIA_CONTROL,
    ChargerCall,
    ChargerDirectory,
    JsonDict,
    record_event,
    require_connected,
)
from edgegw.store.events import EventRecorder

if TYPE_CHECKING:
    from edgegw.live.state import LiveState
    from edgegw.store.store import Store

log = logging.getLogger(__name__)

CALL_TIMEOUT: Final = 20.0
RESET_TYPES: Final = ("Soft", "Hard")

TransactionId = int | str
"""A transaction id as the charger knows it (OCPP 1.6: an integer; 2.0.1: a string)."""


class RunningSessions(Protocol):
    """The running sessions of a charger: ``(connector, transaction id as the charger knows
    it)``, the id the charger gave (for a session started offline, the gateway's local id)."""

    async def running(self, charger_id: str) -> list[tuple[int, TransactionId]]: ...


class LiveSessions:
    """:class:`RunningSessions` as the live state sees them (the daemon's choice)."""

    def __init__(self, live: LiveState) -> None:
        self._live = live

    async def running(self, charger_id: str) -> list[tuple[int, TransactionId]]:
        charger = self._live.charger(charger_id)
        if charger is None:
            return []
        return [
            (c.connector_id, c.session.transaction_id)
            for c in charger.connectors
            if c.session is not None and c.session.transaction_id is not None
        ]


class StoredSessions:
    """:class:`RunningSessions` from the store's open transactions (no live state)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def running(self, charger_id: str) -> list[tuple[int, TransactionId]]:
        latest: dict[int, TransactionId] = {}
        for row in await self._store.transactions(charger_id):  # oldest first: newer wins
            if row.stopped_at is None and row.transaction_id is not None:
                latest[row.connector_id] = row.transaction_id
        return sorted(latest.items())


@dataclass(frozen=True, slots=True)
class Answered:
    """One call made: what was sent and what the charger answered."""

    charger_id: str
    action: str
    request: JsonDict
    answer: JsonDict

    @property
    def status(self) -> str:
        return status_of(self.answer)


@dataclass(frozen=True, slots=True)
class Stopped:
    """One session asked to stop, and the charger's answer."""

    connector: int
    transaction_id: TransactionId
    status: str


class ChargerActions:
    """The charger actions, over narrow parts: ``call`` a charger, the site's ``chargers``,
    the ``sessions`` running on them, and where to ``record`` an event (None: nowhere)."""

    def __init__(
        self,
        call: ChargerCall,
        chargers: ChargerDirectory,
        sessions: RunningSessions,
        record: EventRecorder | None,
        *,
        timeout: float = CALL_TIMEOUT,
    ) -> None:
        self._call = call
        self.chargers = chargers
        self._sessions = sessions
        self._record = record
        self._timeout = timeout

    async def stop_sessions(
        self,
        charger_id: str,
        *,
        connector: int | None = None,
        transaction_id: TransactionId | None = None,
        via: str = VIA_CONTROL,
    ) -> list[Stopped]:
        """RemoteStopTransaction of the charger's running sessions: all of them, or the one on
        ``connector`` / with ``transaction_id``; :class:`NotFound` when none matches."""
        require_connected(self.chargers, charger_id)
        running = await self._sessions.running(charger_id)
        which = ""
        if connector is not None:
            running = [r for r in running if r[0] == connector]
            which += f" on connector {connector}"
        if transaction_id is not None:
            running = [r for r in running if str(r[1]) == str(transaction_id)]
            which += f" with transaction id {transaction_id}"
        if not running:
            raise NotFound(f"no session runs on {charger_id}{which}")
        stopped = []
        for conn, tx in running:
            done = await self._send(
                charger_id,
                "RemoteStopTransaction",
                {"transactionId": _ocpp16_transaction_id(charger_id, tx)},
                what=f"stop transaction {tx} on connector {conn}",
                via=via,
            )
            stopped.append(Stopped(conn, tx, done.status))
        return stopped

    async def unlock(self, charger_id: str, connector: int, *, via: str = VIA_CONTROL) -> Answered:
        require_connected(self.chargers, charger_id)
        if connector < 1:
            raise BadRequest("connector must be 1 or more")
        return await self._send(
            charger_id,
            "UnlockConnector",
            {"connectorId": connector},
            what=f"unlock connector {connector}",
            via=via,
        )

    async def reset(self, charger_id: str, kind: str, *, via: str = VIA_CONTROL) -> Answered:
        """Reset ``Soft`` or ``Hard`` (any case)."""
        require_connected(self.chargers, charger_id)
        kind = kind.strip().capitalize()
        if kind not in RESET_TYPES:
            raise BadRequest("type must be 'Soft' or 'Hard'")
        return await self._send(
            charger_id, "Reset", {"type": kind}, what=f"{kind.lower()} reset", via=via
        )

    async def set_availability(
        self, charger_id: str, available: bool, connector: int = 0, *, via: str = VIA_CONTROL
    ) -> Answered:
        """ChangeAvailability Operative/Inoperative of the charger (connector 0) or one
        connector; a charger with a running session answers Scheduled."""
        require_connected(self.chargers, charger_id)
        if connector < 0:
            raise BadRequest("connector must be 0 (the charger) or more")
        kind = "Operative" if available else "Inoperative"
        where = "the charger" if connector == 0 else f"connector {connector}"
        return await self._send(
            charger_id,
            "ChangeAvailability",
            {"connectorId": connector, "type": kind},
            what=f"{'enable' if available else 'disable'} {where}",
            via=via,
        )

    async def _send(
        self, charger_id: str, action: str, payload: JsonDict, *, what: str, via: str
    ) -> Answered:
        try:
            answer = await self._call(charger_id, action, payload, self._timeout)
        except (CallFailed, LookupError) as exc:
            # LookupError: ChargerNotConnected, the charger left between the check and the call.
            reason = str(exc) if isinstance(exc, CallFailed) else "it disconnected"
            await self._recorded(
                charger_id,
                f"{what}: not done, {reason}",
                action,
                via,
                request=payload,
                error=reason,
            )
            raise Unavailable(f"{charger_id} did not take {action}: {reason}") from None
        await self._recorded(
            charger_id, f"{what}: {status_of(answer)}", action, via, request=payload, answer=answer
        )
        return Answered(charger_id, action, payload, answer)

    async def _recorded(
        self,
        charger_id: str,
        message: str,
        action: str,
        via: str,
        *,
        request: JsonDict,
        answer: JsonDict | None = None,
        error: str | None = None,
    ) -> None:
        log.info("%s: %s (asked over %s)", charger_id, message, via)
        await record_event(
            self._record,
            f"action.{action}",
            message,
            charger_id=charger_id,
            data={"request": request, "answer": answer, "error": error, "via": via},
        )


def status_of(answer: JsonDict) -> str:
    return str(answer.get("status", "no status"))


def overall_status(stopped: Sequence[Stopped]) -> str:
    """One status for several stops: theirs if they agree, else ``Mixed``."""
    statuses = {s.status for s in stopped}
    return statuses.pop() if len(statuses) == 1 else "Mixed"


def _ocpp16_transaction_id(charger_id: str, tx: TransactionId) -> int:
    """RemoteStopTransaction in OCPP 1.6 takes an integer: the one place it is built."""
    if isinstance(tx, int):
        return tx
    try:
        return int(tx)
    except ValueError:
        raise Conflict(
            f"{charger_id}: transaction {tx!r} is not an OCPP 1.6 transaction id (an integer)"
        ) from None
