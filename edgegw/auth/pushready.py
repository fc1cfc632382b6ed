"""When a charger is ready for the gateway's local-list calls: the list pusher's subscriber."""

from __future__ import annotations

from typing import Protocol

from edgegw.ocpp.events import (
    CallExchanged,
    ChargerBooted,
    ChargerConnected,
    ChargerDisconnected,
    Event,
)
from edgegw.ocpp.versions import OCPP201, is_v2


class Pusher(Protocol):
    """What :class:`PushWhenReady` drives (:class:`~edgegw.auth.listpush.ListPusher`)."""

    def charger_connected(self, charger_id: str, version: str | None = None) -> None: ...

    def charger_disconnected(self, charger_id: str) -> None: ...


class PushWhenReady:
    """Starts a charger's list pusher once the charger is ready for the gateway's calls.

    That is after its BootNotification was accepted, or, for a charger that reconnected without
    rebooting, after its first other call: a charger still booting may not answer anything
    else. The same for a 2.0.1 station (its version is handed on: its list goes in 2.0.1
    form); a 2.1 charger is handed on at once: the pusher makes it no call (its lists are not
    managed yet) and says so in its status. An event subscriber of the daemon's hub.
    """

    def __init__(self, pusher: Pusher) -> None:
        self._pusher = pusher
        self._waiting: dict[str, str | None] = {}  # charger id -> OCPP version (None: 1.6)

    def handle(self, event: Event) -> None:
        charger_id = event.charger_id
        if isinstance(event, ChargerConnected):
            if is_v2(event.version) and event.version != OCPP201:
                self._waiting.pop(charger_id, None)
                self._pusher.charger_connected(charger_id, event.version)
            else:
                self._waiting[charger_id] = event.version if is_v2(event.version) else None
        elif isinstance(event, ChargerDisconnected):
            self._waiting.pop(charger_id, None)
            self._pusher.charger_disconnected(charger_id)
        elif charger_id not in self._waiting:
            return
        elif (isinstance(event, CallExchanged) and event.action != "BootNotification") or (
            isinstance(event, ChargerBooted) and event.accepted
        ):
            version = self._waiting.pop(charger_id)
            if version is None:
                self._pusher.charger_connected(charger_id)
            else:
                self._pusher.charger_connected(charger_id, version)
