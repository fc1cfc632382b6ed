"""What the chargers send, kept per charger for the commissioning steps.

A step looks back at a charger's recent calls (``seen``: was there a BootNotification?) or
waits for the next one (``wait``: the MeterValues a TriggerMessage asked for). The daemon puts
the :class:`CommissionObserver` in its event hub; a call is kept as the event it meant
(:class:`Exchange`), never as its raw payload.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from edgegw.ocpp.events import (
    CallExchanged,
    CardAnswered,
    ChargerBooted,
    ChargerConnected,
    ChargerDisconnected,
    ConnectorStatus,
    Event,
    Measured,
)

MEANT: Final = frozenset(
    {"BootNotification", "StatusNotification", "MeterValues", "Authorize", "StartTransaction"}
)
"""Calls kept as the event they meant; any other call is kept as its :class:`CallExchanged`."""


class ChargerGone(LookupError):
    """The charger disconnected while a step waited for it."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One answered charger call, as the observer saw it: when, which, and what it meant.

    ``event`` is :class:`ChargerBooted` for a BootNotification, :class:`ConnectorStatus` for a
    StatusNotification, :class:`Measured` for MeterValues, :class:`CardAnswered` for Authorize
    and StartTransaction, else the call's :class:`CallExchanged` (``Heartbeat``...).
    """

    at: float
    action: str
    event: Event

    @property
    def connector(self) -> int | None:
        """The connector the call was about (None: the charger, or not said)."""
        event = self.event
        if isinstance(event, ConnectorStatus | Measured | CardAnswered):
            return event.connector
        return None


@dataclass(slots=True)
class _Waiter:
    charger_id: str
    actions: frozenset[str]
    since: float
    predicate: Callable[[Exchange], bool]
    future: asyncio.Future[Exchange]


class CommissionObserver:
    """Keeps each charger's recent calls, so a step can look back at them or wait for one.

    An event subscriber: the daemon puts it in its event hub before chargers connect. It
    sees every call of every charger, all
    the time, so it keeps only the latest call per action and connector (a handful per
    charger): a soak at 200 chargers showed a 200-call history per charger costing ~0.7 MB
    each, 1.4 GB at 2,000 chargers. The steps ask "since when", which the latest answers.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._recent: dict[str, dict[tuple[str, object], Exchange]] = {}
        self._connected_at: dict[str, float] = {}
        self._waiters: list[_Waiter] = []

    # ------------------------------------------------------------------ events

    def handle(self, event: Event) -> None:
        charger_id = event.charger_id
        if isinstance(event, ChargerConnected):
            self._connected_at[charger_id] = self._clock()
        elif isinstance(event, ChargerDisconnected):
            self._gone(charger_id)
        else:
            action = _action(event)
            if action is not None:
                self._keep(Exchange(self._clock(), action, event), charger_id)

    def _gone(self, charger_id: str) -> None:
        self._connected_at.pop(charger_id, None)
        for waiter in [w for w in self._waiters if w.charger_id == charger_id]:
            self._waiters.remove(waiter)
            if not waiter.future.done():
                waiter.future.set_exception(ChargerGone(f"{charger_id} disconnected"))

    def _keep(self, exchange: Exchange, charger_id: str) -> None:
        recent = self._recent.setdefault(charger_id, {})
        key = (exchange.action, exchange.connector)
        recent.pop(key, None)  # re-inserted last: the values stay oldest first
        recent[key] = exchange
        for waiter in list(self._waiters):
            if waiter.charger_id == charger_id and _wanted(waiter, exchange):
                self._waiters.remove(waiter)
                if not waiter.future.done():
                    waiter.future.set_result(exchange)

    # ------------------------------------------------------------------ queries

    def connected_since(self, charger_id: str) -> float | None:
        """When the charger's current connection started (None: not seen connecting)."""
        return self._connected_at.get(charger_id)

    def seen(
        self,
        charger_id: str,
        actions: Iterable[str],
        *,
        since: float = -math.inf,
        predicate: Callable[[Exchange], bool] | None = None,
    ) -> list[Exchange]:
        """The calls of ``actions`` the charger made since ``since``, oldest first."""
        wanted = frozenset(actions)
        return [
            e
            for e in self._recent.get(charger_id, {}).values()
            if e.action in wanted and e.at >= since and (predicate is None or _safe(predicate, e))
        ]

    async def wait(
        self,
        charger_id: str,
        actions: Iterable[str],
        *,
        since: float,
        timeout: float,
        predicate: Callable[[Exchange], bool] = lambda _e: True,
    ) -> Exchange:
        """The first call of ``actions`` since ``since`` that satisfies ``predicate``, past or
        future. Raises ``TimeoutError``, or :class:`ChargerGone` if the charger disconnects."""
        wanted = frozenset(actions)
        past = self.seen(charger_id, wanted, since=since, predicate=predicate)
        if past:
            return past[0]
        future: asyncio.Future[Exchange] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(charger_id, wanted, since, predicate, future)
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)


def _safe(predicate: Callable[[Exchange], bool], exchange: Exchange) -> bool:
    try:
        return predicate(exchange)
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


def _wanted(waiter: _Waiter, exchange: Exchange) -> bool:
    return (
        exchange.action in waiter.actions
        and exchange.at >= waiter.since
        and _safe(waiter.predicate, exchange)
    )


def on_connector(connector: int) -> Callable[[Exchange], bool]:
    """A predicate: the exchange is about ``connector``."""

    def matches(exchange: Exchange) -> bool:
        return exchange.connector == connector

    return matches


def _action(event: Event) -> str | None:
    """The call an event is kept as (None: not kept)."""
    if isinstance(event, CallExchanged):
        return None if event.action in MEANT else event.action
    if isinstance(event, ChargerBooted):
        return "BootNotification"
    if isinstance(event, ConnectorStatus):
        return "StatusNotification"
    if isinstance(event, Measured):
        return "MeterValues"
    if isinstance(event, CardAnswered):
        return event.during
    return None
