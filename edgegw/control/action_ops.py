"""Control-socket operations that act on a charger: stop a session, unlock, restart, disable.

A thin adapter over :class:`~edgegw.services.charger_actions.ChargerActions` (which sends the
call and records the event, as it does for MQTT). All are admin-only.

- ``chargers.stop_session`` (charger, connector?, transaction_id?): RemoteStopTransaction of
  the charger's running sessions (all of them, or the one on ``connector`` / with
  ``transaction_id``). The transaction id sent is the one the charger knows (for a session
  started offline, the gateway's local id), read from the live state, else from the store.
- ``chargers.unlock`` (charger, connector, plug=1): UnlockConnector.
- ``chargers.reset`` (charger, type=Soft|Hard, evse?): Reset.

An OCPP 2.x charger gets each in 2.0.1 form (RequestStopTransaction with its own string
transaction id; its connectors are its EVSEs, ``plug`` the EVSE's connector; Reset
OnIdle|Immediate, Soft and Hard taken as those): see :mod:`edgegw.services.charger_actions`.
- ``chargers.availability`` (charger, available, connector=0): ChangeAvailability
  Operative/Inoperative; a charger with a running session answers Scheduled and changes
  when the session ends.

What the charger answers (Accepted, Rejected, Unlocked, Scheduled ...) is returned as
``status``; the op itself fails only when the call could not be made (unknown or offline
charger, no answer).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from edgegw.control.protocol import ControlError, ErrorCode, get_arg
from edgegw.control.server import ControlServer
from edgegw.services.charger_actions import Answered, ChargerActions, overall_status


class ActionOps:
    """Registers the charger action ops on a :class:`ControlServer`."""

    def __init__(self, actions: ChargerActions) -> None:
        self._actions = actions

    def register(self, server: ControlServer) -> None:
        ops: list[tuple[str, Callable[[dict[str, Any]], Awaitable[Any]], str]] = [
            (
                "chargers.stop_session",
                self.stop_session,
                "Stop running sessions remotely (args: charger, connector, transaction_id).",
            ),
            (
                "chargers.unlock",
                self.unlock,
                "Unlock a connector (args: charger, connector; a 2.x charger: connector is the "
                "EVSE, plug=1 its connector).",
            ),
            (
                "chargers.reset",
                self.reset,
                "Restart a charger (args: charger, type=Soft|Hard; a 2.x charger also "
                "OnIdle|Immediate, evse).",
            ),
            (
                "chargers.availability",
                self.availability,
                "Enable or disable a charger or connector (args: charger, available, connector=0).",
            ),
        ]
        for name, handler, description in ops:
            server.register(name, handler, admin=True, description=description)

    async def stop_session(self, args: dict[str, Any]) -> dict[str, Any]:
        charger_id = _charger(args)
        stopped = await self._actions.stop_sessions(
            charger_id,
            connector=get_arg(args, "connector", int, None),
            transaction_id=_transaction_id(args),
        )
        return {
            "charger": charger_id,
            "action": stopped[0].action,
            "status": overall_status(stopped),
            "sessions": [
                {"connector": s.connector, "transaction_id": s.transaction_id, "status": s.status}
                for s in stopped
            ],
        }

    async def unlock(self, args: dict[str, Any]) -> dict[str, Any]:
        charger_id = _charger(args)
        connector = get_arg(args, "connector", int)
        plug = get_arg(args, "plug", int, 1)
        return _result(await self._actions.unlock(charger_id, connector, plug=plug))

    async def reset(self, args: dict[str, Any]) -> dict[str, Any]:
        charger_id = _charger(args)
        kind = get_arg(args, "type", str, "Soft")
        evse = get_arg(args, "evse", int, None)
        return _result(await self._actions.reset(charger_id, kind, evse=evse))

    async def availability(self, args: dict[str, Any]) -> dict[str, Any]:
        charger_id = _charger(args)
        available = get_arg(args, "available", bool)
        connector = get_arg(args, "connector", int, 0)
        return _result(await self._actions.set_availability(charger_id, available, connector))


def _transaction_id(args: dict[str, Any]) -> int | str | None:
    """An OCPP 1.6 transaction id is an integer, a 2.0.1 one the charger's own string."""
    value = args.get("transaction_id")
    if value is None or (isinstance(value, int | str) and not isinstance(value, bool)):
        return value
    raise ControlError(
        ErrorCode.BAD_ARGS,
        f"argument 'transaction_id' must be int or str, not {type(value).__name__}",
    )


def _charger(args: dict[str, Any]) -> str:
    return get_arg(args, "charger", str).strip()


def _result(done: Answered) -> dict[str, Any]:
    return {
        "charger": done.charger_id,
        "action": done.action,
        "request": done.request,
        "status": done.status,
        "answer": done.answer,
    }
