"""Charger actions someone asks for: stop a session, unlock, reset, enable or disable.

Each sends one OCPP call, in the version the charger speaks (the one place each is built):

============  ===============================  ==============================================
action        OCPP 1.6                         OCPP 2.0.1 (and 2.1: same payloads)
============  ===============================  ==============================================
stop          RemoteStopTransaction            RequestStopTransaction, the charger's own
              (integer ``transactionId``)      string ``transactionId``
unlock        UnlockConnector ``connectorId``  UnlockConnector ``evseId`` (the connector a
                                               2.x charger shows is its EVSE) + ``connectorId``
                                               (the EVSE's plug, 1 unless asked)
reset         Reset ``Soft``/``Hard``          Reset ``OnIdle``/``Immediate`` (``Soft`` asks
                                               ``OnIdle``: no session is cut; ``Hard`` asks
                                               ``Immediate``), ``evseId`` for one EVSE
enable        ChangeAvailability               ChangeAvailability ``operationalStatus``, and
              ``connectorId`` + ``type``       ``evse`` ``{"id": n}`` unless the whole station
============  ===============================  ==============================================

Each call is a gateway call of the gateway's own to a connected charger (ids that never collide
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

from edgegw.ocpp.versions import OCPP16, is_v2
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
from edgegw.store.sessions201 import running_201

if TYPE_CHECKING:
    from edgegw.live.state import LiveState
    from edgegw.store.store import Store

log = logging.getLogger(__name__)

CALL_TIMEOUT: Final = 20.0
RESET_TYPES: Final = ("Soft", "Hard")
RESET_TYPES_V2: Final = {
    "onidle": "OnIdle",
    "immediate": "Immediate",
    "soft": "OnIdle",
    "hard": "Immediate",
}
"""A 2.x charger's reset types (any case), 1.6's names taken as the nearest 2.0.1 one."""
MAX_TX_LENGTH_V2: Final = 36
"""2.0.1's ``transactionId`` is an identifierString of at most 36 characters."""

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
    """:class:`RunningSessions` from the store's open transactions (no live state): 1.6 ones
    by their integer id, a 2.x charger's by its own string id (on its EVSE)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def running(self, charger_id: str) -> list[tuple[int, TransactionId]]:
        latest: dict[int, TransactionId] = {}
        for row in await self._store.transactions(charger_id):  # oldest first: newer wins
            if row.stopped_at is None and row.transaction_id is not None:
                latest[row.connector_id] = row.transaction_id
        for _, tx_ref, evse in await running_201(self._store, charger_id):  # oldest first
            latest[evse] = tx_ref
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
    action: str = "RemoteStopTransaction"
    """The call it took (``RequestStopTransaction`` for a 2.x charger)."""


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
        """RemoteStopTransaction (2.x: RequestStopTransaction) of the charger's running
        sessions: all of them, or the one on ``connector`` (2.x: EVSE) / with
        ``transaction_id``; :class:`NotFound` when none matches."""
        require_connected(self.chargers, charger_id)
        version = self.chargers.version_of(charger_id)
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
            if is_v2(version):
                action = "RequestStopTransaction"
                payload: JsonDict = {"transactionId": _ocpp2_transaction_id(charger_id, tx)}
                where = f"EVSE {conn}"
            else:
                action = "RemoteStopTransaction"
                payload = {"transactionId": _ocpp16_transaction_id(charger_id, tx)}
                where = f"connector {conn}"
            done = await self._send(
                charger_id,
                action,
                payload,
                what=f"stop transaction {tx} on {where}",
                via=via,
                version=version,
            )
            stopped.append(Stopped(conn, tx, done.status, action))
        return stopped

    async def unlock(
        self, charger_id: str, connector: int, *, plug: int = 1, via: str = VIA_CONTROL
    ) -> Answered:
        """UnlockConnector of ``connector`` (a 2.x charger: of EVSE ``connector``'s ``plug``)."""
        require_connected(self.chargers, charger_id)
        if connector < 1 or plug < 1:
            raise BadRequest("connector must be 1 or more")
        version = self.chargers.version_of(charger_id)
        if is_v2(version):
            payload: JsonDict = {"evseId": connector, "connectorId": plug}
            what = f"unlock EVSE {connector}" + (f" connector {plug}" if plug != 1 else "")
        else:
            payload, what = {"connectorId": connector}, f"unlock connector {connector}"
        return await self._send(
            charger_id, "UnlockConnector", payload, what=what, via=via, version=version
        )

    async def reset(
        self, charger_id: str, kind: str, *, evse: int | None = None, via: str = VIA_CONTROL
    ) -> Answered:
        """Reset ``Soft`` or ``Hard`` (any case); a 2.x charger ``OnIdle`` or ``Immediate``
        (``Soft``/``Hard`` taken as those), the whole station or one ``evse``."""
        require_connected(self.chargers, charger_id)
        version = self.chargers.version_of(charger_id)
        if is_v2(version):
            wanted = RESET_TYPES_V2.get(kind.strip().lower())
            if wanted is None:
                raise BadRequest(
                    f"type must be 'OnIdle' or 'Immediate' ({charger_id} speaks OCPP 2.x)"
                )
            if evse is not None and evse < 1:
                raise BadRequest("evse must be 1 or more (none: the whole station)")
            payload: JsonDict = {"type": wanted}
            if evse is not None:
                payload["evseId"] = evse
            where = "" if evse is None else f" of EVSE {evse}"
            return await self._send(
                charger_id,
                "Reset",
                payload,
                what=f"{wanted} reset{where}",
                via=via,
                version=version,
            )
        kind = kind.strip().capitalize()
        if kind not in RESET_TYPES:
            raise BadRequest("type must be 'Soft' or 'Hard'")
        if evse is not None:
            raise BadRequest(f"{charger_id} speaks OCPP 1.6: a reset is of the whole charger")
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
        version = self.chargers.version_of(charger_id)
        if is_v2(version):  # the connector a 2.x charger shows is its EVSE
            payload: JsonDict = {"operationalStatus": kind}
            if connector:
                payload["evse"] = {"id": connector}
            where = "the station" if connector == 0 else f"EVSE {connector}"
        else:
            payload = {"connectorId": connector, "type": kind}
            where = "the charger" if connector == 0 else f"connector {connector}"
        return await self._send(
            charger_id,
            "ChangeAvailability",
            payload,
            what=f"{'enable' if available else 'disable'} {where}",
            via=via,
            version=version,
        )

    async def _send(
        self,
        charger_id: str,
        action: str,
        payload: JsonDict,
        *,
        what: str,
        via: str,
        version: str = OCPP16,
    ) -> Answered:
        try:
            answer = await self._call(charger_id, action, payload, self._timeout, version=version)
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


def _ocpp2_transaction_id(charger_id: str, tx: TransactionId) -> str:
    """RequestStopTransaction in OCPP 2.0.1 takes the charger's own string id."""
    text = str(tx)
    if not text or len(text) > MAX_TX_LENGTH_V2:
        raise Conflict(
            f"{charger_id}: transaction {tx!r} is not an OCPP 2.0.1 transaction id "
            f"(1 to {MAX_TX_LENGTH_V2} characters)"
        )
    return text


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
