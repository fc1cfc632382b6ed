"""When a charger is ready for the gateway's local-list calls: the list pusher's subscriber."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from edgegw.ocpp.events import (
    CallExchanged,
    ChargerBooted,
    ChargerConnected,
    ChargerDisconnected,
    Event,
)
from edgegw.ocpp.hub import route
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
        self._routes: Mapping[type[Event], Callable[[Any], None]] = {
            ChargerConnected: self._connected,
            ChargerDisconnected: self._disconnected,
            CallExchanged: self._call,
            ChargerBooted: self._booted,
        }

    def event_routes(self) -> Mapping[type[Event], Callable[[Any], None]]:
        """The events it uses, each to its handler (the hub's routing)."""
        return self._routes

    def handle(self, event: Event) -> None:
        handler = route(self._routes, event)
        if handler is not None:
            handler(event)

    def _connected(self, event: ChargerConnected) -> None:
        charger_id = event.charger_id
        if is_v2(event.version) and event.version != OCPP201:
            self._waiting.pop(charger_id, None)
            self._pusher.charger_connected(charger_id, event.version)
        else:
            self._waiting[charger_id] = event.version if is_v2(event.version) else None

    def _disconnected(self, event: ChargerDisconnected) -> None:
        self._waiting.pop(event.charger_id, None)
        self._pusher.charger_disconnected(event.charger_id)

    def _call(self, event: CallExchanged) -> None:
        if event.action != "BootNotification" and event.charger_id in self._waiting:
            self._ready(event.charger_id)

    def _booted(self, event: ChargerBooted) -> None:
        if event.accepted and event.charger_id in self._waiting:
            self._ready(event.charger_id)

    def _ready(self, charger_id: str) -> None:
        version = self._waiting.pop(charger_id)
        if version is None:
            self._pusher.charger_connected(charger_id)
        else:
            self._pusher.charger_connected(charger_id, version)
