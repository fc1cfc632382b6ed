"""Control-socket operations that act on a charger: stop a session, unlock, restart, disable.

Each op sends one OCPP call of the gateway's own to the charger (``Gateway.call``: ids that
never collide with the cloud's, answers that never go upstream), returns the charger's answer,
and records what was asked and answered as an event, so the caretaker screen and the
installer's ``edgegw events`` show who stopped what. All are admin-only.

- ``chargers.stop_session`` (charger, connector?, transaction_id?): RemoteStopTransaction of
  the charger's running sessions (all of them, or the one on ``connector`` / with
  ``transaction_id``). The transaction id sent is the one the charger knows (for a session
  started offline, the gateway's local id), read from the live state, else from the store.
- ``chargers.unlock`` (charger, connector): UnlockConnector.
- ``chargers.reset`` (charger, type=Soft|Hard): Reset.
- ``chargers.availability`` (charger, available, connector=0): ChangeAvailability
  Operative/Inoperative; a charger with a running session answers Scheduled and changes
  when the session ends.

What the charger answers (Accepted, Rejected, Unlocked, Scheduled ...) is returned as
``status``; the op itself fails only when the call could not be made (unknown or offline
charger, no answer).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from edgegw.control.protocol import ControlError, ErrorCode, get_arg
from edgegw.control.server import ControlServer
from edgegw.proxy.session import CallFailed
from edgegw.store.journal import event_recorder

if TYPE_CHECKING:
    from edgegw.daemon import Gateway
    from edgegw.livestate import LiveState

log = logging.getLogger(__name__)

CALL_TIMEOUT: Final = 20.0
RESET_TYPES: Final = ("Soft", "Hard")


class ActionOps:
    """Registers the charger action ops on a :class:`ControlServer`.

    ``live`` is the daemon's live state (to find running sessions); without it, the open
    transactions of the store are used.
    """

    def __init__(
        self,
        gateway: Gateway,
        *,
        live: LiveState | None = None,
        call_timeout: float = CALL_TIMEOUT,
    ) -> None:
        self._gw = gateway
        self._live = live
        self._timeout = call_timeout

    def register(self, server: ControlServer) -> None:
        ops: list[tuple[str, Callable[[dict[str, Any]], Awaitable[Any]], str]] = [
            (
                "chargers.stop_session",
                self.stop_session,
                "Stop running sessions remotely (args: charger, connector, transaction_id).",
            ),
            ("chargers.unlock", self.unlock, "Unlock a connector (args: charger, connector)."),
            ("chargers.reset", self.reset, "Restart a charger (args: charger, type=Soft|Hard)."),
            (
                "chargers.availability",
                self.availability,
                "Enable or disable a charger or connector (args: charger, available, connector=0).",
            ),
        ]
        for name, handler, description in ops:
            server.register(name, handler, admin=True, description=description)

    # ------------------------------------------------------------------ ops

    async def stop_session(self, args: dict[str, Any]) -> dict[str, Any]:
        charger_id = self._connected_charger(args)
        connector = get_arg(args, "connector", int, None)
        transaction_id = get_arg(args, "transaction_id", int, None)
        running = await self._running(charger_id)
        if connector is not None:
            running = [r for r in running if r[0] == connector]
        if transaction_id is not None:
            running = [r for r in running if r[1] == transaction_id]
        if not running:
            which = "" if connector is None else f" on connector {connector}"
            which += "" if transaction_id is None else f" with transaction id {transaction_id}"
            raise ControlError(ErrorCode.NOT_FOUND, f"no session runs on {charger_id}{which}")
        stopped = []
        for conn, tx in running:
            answer = await self._call(
                charger_id,
                "RemoteStopTransaction",
                {"transactionId": tx},
                what=f"stop transaction {tx} on connector {conn}",
            )
            stopped.append({"connector": conn, "transaction_id": tx, "status": _status(answer)})
        statuses = {s["status"] for s in stopped}
        return {
            "charger": charger_id,
            "action": "RemoteStopTransaction",
            "status": statuses.pop() if len(statuses) == 1 else "Mixed",
            "sessions": stopped,
        }

    async def unlock(self, args: dict[str, Any]) -> dict[str, Any]:
        charger_id = self._connected_charger(args)
        connector = get_arg(args, "connector", int)
        if connector < 1:
            raise ControlError(ErrorCode.BAD_ARGS, "connector must be 1 or more")
        payload = {"connectorId": connector}
        answer = await self._call(
            charger_id, "UnlockConnector", payload, what=f"unlock connector {connector}"
        )
        return _result(charger_id, "UnlockConnector", payload, answer)

    async def reset(self, args: dict[str, Any]) -> dict[str, Any]:
        charger_id = self._connected_charger(args)
        kind = get_arg(args, "type", str, "Soft").strip().capitalize()
        if kind not in RESET_TYPES:
            raise ControlError(ErrorCode.BAD_ARGS, "type must be 'Soft' or 'Hard'")
        payload = {"type": kind}
        answer = await self._call(charger_id, "Reset", payload, what=f"{kind.lower()} reset")
        return _result(charger_id, "Reset", payload, answer)

    async def availability(self, args: dict[str, Any]) -> dict[str, Any]:
        charger_id = self._connected_charger(args)
        available = get_arg(args, "available", bool)
        connector = get_arg(args, "connector", int, 0)
        if connector < 0:
            raise ControlError(ErrorCode.BAD_ARGS, "connector must be 0 (the charger) or more")
        kind = "Operative" if available else "Inoperative"
        payload = {"connectorId": connector, "type": kind}
        where = "the charger" if connector == 0 else f"connector {connector}"
        answer = await self._call(
            charger_id,
            "ChangeAvailability",
            payload,
            what=f"{'enable' if available else 'disable'} {where}",
        )
        return _result(charger_id, "ChangeAvailability", payload, answer)

    # ------------------------------------------------------------------ helpers

    def _connected_charger(self, args: dict[str, Any]) -> str:
        gw = self._gw
        charger_id = get_arg(args, "charger", str).strip()
        if charger_id in gw.sessions:
            return charger_id
        if gw.config.charger(charger_id) is None:
            known = ", ".join(c.id for c in gw.config.chargers) or "none"
            raise ControlError(
                ErrorCode.NOT_FOUND,
                f"no charger {charger_id!r} is configured (configured: {known})",
            )
        raise ControlError(
            ErrorCode.UNAVAILABLE,
            f"{charger_id} is not connected to the gateway; nothing can be sent to it until "
            "it is back online",
        )

    async def _running(self, charger_id: str) -> list[tuple[int, int]]:
        """``(connector, transaction id as the charger knows it)`` of its running sessions."""
        live = self._live
        if live is not None:
            charger = live.charger(charger_id)
            if charger is None:
                return []
            return [
                (c.connector_id, c.session.transaction_id)
                for c in charger.connectors
                if c.session is not None and c.session.transaction_id is not None
            ]
        store = self._gw.store
        if store is None:
            raise ControlError(ErrorCode.UNAVAILABLE, "the daemon is starting; try again")
        open_rows = [
            r
            for r in await store.transactions(charger_id)
            if r.stopped_at is None and r.transaction_id is not None
        ]
        latest: dict[int, int] = {}
        for row in open_rows:  # oldest first: a newer one on the same connector wins
            assert row.transaction_id is not None
            latest[row.connector_id] = row.transaction_id
        return sorted(latest.items())

    async def _call(
        self, charger_id: str, action: str, payload: dict[str, Any], *, what: str
    ) -> dict[str, Any]:
        try:
            answer = await self._gw.call(charger_id, action, payload, self._timeout)
        except (CallFailed, LookupError) as exc:
            # LookupError: ChargerNotConnected, the charger left between the check and the call.
            reason = str(exc) if isinstance(exc, CallFailed) else "it disconnected"
            await self._record(
                charger_id,
                f"{what}: not done, {reason}",
                action,
                payload=payload,
                answer=None,
                error=reason,
            )
            raise ControlError(
                ErrorCode.UNAVAILABLE, f"{charger_id} did not take {action}: {reason}"
            ) from None
        await self._record(
            charger_id,
            f"{what}: {_status(answer)}",
            action,
            payload=payload,
            answer=answer,
            error=None,
        )
        return answer

    async def _record(
        self,
        charger_id: str,
        message: str,
        action: str,
        *,
        payload: dict[str, Any],
        answer: dict[str, Any] | None,
        error: str | None,
    ) -> None:
        log.info("%s: %s (asked on the control socket)", charger_id, message)
        record = event_recorder(self._gw)
        if record is None:
            return
        try:
            await record(
                f"action.{action}",
                message,
                charger_id=charger_id,
                data={"request": payload, "answer": answer, "error": error},
            )
        except Exception:  # the action was done; a full disk must not hide its answer
            log.exception("%s: could not record %s", charger_id, action)


def _status(answer: dict[str, Any]) -> str:
    return str(answer.get("status", "no status"))


def _result(
    charger_id: str, action: str, payload: dict[str, Any], answer: dict[str, Any]
) -> dict[str, Any]:
    return {
        "charger": charger_id,
        "action": action,
        "request": payload,
        "status": _status(answer),
        "answer": answer,
    }
