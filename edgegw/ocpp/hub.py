"""The event hub: the proxy's one charger observer, handing events to the daemon's parts.

The composition root builds one :class:`EventHub` with its subscribers in a fixed order (the
order is stated once, in the daemon) and gives it to every charger session as the session's
observer. For each charger call the proxy reports, the hub runs :func:`interpret` once and
hands the events to each subscriber in turn (each subscriber gets all the events of a call
before the next subscriber gets any). A subscriber that raises is logged and skipped for that
event: the relay path and the other subscribers go on.

Routing by type: a subscriber that names its handler per event type (:class:`RoutedSubscriber`)
is handed each event by the hub's look-up, made once at construction, instead of running its
own ``isinstance`` chain per event; the types it does not name are not handed to it at all.
This runs for every relayed charger call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol, get_args

from edgegw.ocpp.events import CallExchanged, ChargerConnected, ChargerDisconnected, Event
from edgegw.ocpp.interpret import interpret
from edgegw.ocpp.interpret201 import TransactionEvses
from edgegw.ocpp.versions import is_v2

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]


class EventSubscriber(Protocol):
    """A part of the daemon that follows the chargers through their events."""

    def handle(self, event: Event) -> None:
        """Called synchronously inside the relay path: return quickly, hand slow work on."""


class RoutedSubscriber(EventSubscriber, Protocol):
    """A subscriber that names its handler per event type: the hub calls it directly."""

    def event_routes(self) -> Mapping[type[Event], Callable[[Any], None]]:
        """The handler of each event type it uses (an event of a type not named here is not
        handed to it). ``handle`` must mean the same: a test or tool may call it directly."""


EVENT_TYPES: Final[tuple[type[Event], ...]] = get_args(Event)
"""Every event type (the members of :data:`~edgegw.ocpp.events.Event`)."""

_Table = dict[type, Callable[[Any], None] | None]


def route(
    routes: Mapping[type[Event], Callable[[Any], None]], event: Event
) -> Callable[[Any], None] | None:
    """The handler ``routes`` names for ``event``'s type (or a base of it; None: none): what a
    :class:`RoutedSubscriber`'s ``handle`` does with an event handed to it directly."""
    for kind in type(event).__mro__:
        handler = routes.get(kind)
        if handler is not None:
            return handler
    return None


def _table(subscriber: EventSubscriber) -> _Table:
    """The subscriber's handler per event type (None: not handed to it)."""
    routes = getattr(subscriber, "event_routes", None)
    if routes is None:
        return dict.fromkeys(EVENT_TYPES, subscriber.handle)
    named = routes()
    return {kind: named.get(kind) for kind in EVENT_TYPES}


Interpreter = Callable[[str, str, Any, Any, float], tuple[Event, ...]]


class EventHub:
    """Interprets each charger call once and delivers its events, in a fixed order.

    A ``ChargerObserver`` (``edgegw.proxy.hooks``) for the proxy; its subscribers are fixed at
    construction.
    """

    def __init__(
        self,
        subscribers: Sequence[EventSubscriber],
        *,
        clock: Callable[[], float] = time.time,
        interpreter: Interpreter = interpret,
        version_of: Callable[[str], str | None] | None = None,
    ) -> None:
        """``version_of`` names a charger's negotiated OCPP version: a 2.x charger's calls are
        read by :func:`~edgegw.ocpp.interpret201.interpret201` instead of ``interpreter``."""
        self._subscribers = tuple(subscribers)
        self._tables = tuple((s, _table(s)) for s in self._subscribers)
        self._clock = clock
        self._interpret = interpreter
        self._version_of = version_of
        self._v2 = TransactionEvses()
        """2.x calls are read with each running transaction's EVSE (only its first event names
        it); kept across the charger's reconnects (a running transaction sends no new Started)."""

    @property
    def subscribers(self) -> tuple[EventSubscriber, ...]:
        """The subscribers, in the order they get each call's events."""
        return self._subscribers

    def extended(self, *more: EventSubscriber) -> EventHub:
        """A new hub with ``more`` subscribers after these (same clock and interpreter): for a
        test or tool that follows the chargers too. It takes effect where it is installed
        (``Gateway.hub``) for the sessions that start after."""
        hub = EventHub(
            (*self._subscribers, *more),
            clock=self._clock,
            interpreter=self._interpret,
            version_of=self._version_of,
        )
        hub._v2 = self._v2  # the running 2.x transactions' EVSEs are the same
        return hub

    def running201(self, charger_id: str, transaction_id: str, evse: int) -> None:
        """A 2.x transaction the store recorded as running on ``evse``, put back at start: its
        later events, which name no EVSE, are read on that one."""
        self._v2.running(charger_id, transaction_id, evse)

    # ------------------------------------------------------------------ ChargerObserver

    def charger_connected(self, charger_id: str) -> None:
        version = None if self._version_of is None else self._version_of(charger_id)
        self._deliver((ChargerConnected(charger_id=charger_id, at=self._clock(), version=version),))

    def charger_disconnected(self, charger_id: str) -> None:
        self._deliver((ChargerDisconnected(charger_id=charger_id, at=self._clock()),))

    def charger_exchanged(
        self, charger_id: str, action: str, request: JsonDict, response: JsonDict
    ) -> None:
        at = self._clock()
        read = self._interpret
        if self._version_of is not None and is_v2(self._version_of(charger_id)):
            read = self._v2
        try:
            events = read(charger_id, action, request, response, at)
        except Exception:  # interpret is total; should it ever fail, the call is still heard
            log.exception("%s: %s could not be interpreted", charger_id, action)
            events = (CallExchanged(charger_id=charger_id, at=at, action=action),)
        self._deliver(events)

    # ------------------------------------------------------------------ delivery

    def _deliver(self, events: tuple[Event, ...]) -> None:
        for subscriber, table in self._tables:
            for event in events:
                try:
                    handler = table[event.__class__]
                except KeyError:  # not one of the event types (a subclass): the full entry
                    handler = subscriber.handle
                if handler is None:
                    continue  # a type the subscriber does not use
                try:
                    handler(event)
                except Exception:  # one part's bug must not reach the relay or the others
                    log.exception(
                        "%s: %r failed on %s", event.charger_id, subscriber, type(event).__name__
                    )
