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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from edgegw.ocpp.events import (
    CallExchanged,
    CardAnswered,
    ChargerBooted,
    ChargerConnected,
    ChargerDisconnected,
    ConnectorStatus,
    DeviceReported,
    Event,
    Measured,
)
from edgegw.ocpp.hub import route
from edgegw.ocpp.versions import OCPP16

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


class ReportParts:
    """The NotifyReport parts of one device model report (one ``requestId``) as they come,
    kept only while a probe collects them (:meth:`CommissionObserver.collect_reports`)."""

    def __init__(self, charger_id: str, request_id: int) -> None:
        self.charger_id = charger_id
        self.request_id = request_id
        self.parts: dict[int, DeviceReported] = {}
        self._done = asyncio.Event()
        self.gone = False
        """The charger disconnected while they were collected."""

    def add(self, part: DeviceReported) -> None:
        self.parts[part.seq_no] = part
        if self.complete:
            self._done.set()

    def disconnected(self) -> None:
        self.gone = True
        self._done.set()

    @property
    def last(self) -> int | None:
        """The ``seqNo`` of the last part (``tbc`` false), if it came."""
        return next((seq for seq, p in sorted(self.parts.items()) if not p.tbc), None)

    @property
    def complete(self) -> bool:
        last = self.last
        return last is not None and all(seq in self.parts for seq in range(last + 1))

    def missing(self) -> str | None:
        """What is missing, in words (None: nothing)."""
        last = self.last
        top = last if last is not None else max(self.parts, default=-1)
        gaps = [seq for seq in range(top + 1) if seq not in self.parts]
        words = []
        if gaps:
            words.append("part(s) seqNo " + ", ".join(str(g) for g in gaps))
        if last is None:
            words.append(
                "the last part (tbc false)"
                + (f" after seqNo {top}" if top >= 0 else ": no part came at all")
            )
        return "; ".join(words) or None

    def payloads(self) -> list[dict[str, object]]:
        """The parts as NotifyReport payloads (what
        :func:`~edgegw.commission.devicemodel.read_reports` reads)."""
        return [
            {
                "requestId": p.request_id,
                "seqNo": p.seq_no,
                "tbc": p.tbc,
                "reportData": list(p.report_data),
            }
            for p in self.parts.values()
        ]

    async def wait(self, timeout: float) -> None:
        """Until complete or the charger gone; ``TimeoutError`` after ``timeout`` s."""
        async with asyncio.timeout(timeout):
            await self._done.wait()


_Kept = tuple[float, str, Event]
"""A kept call no step asked about yet: (when, action, the event)."""


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
        self._recent: dict[str, dict[tuple[str, object], Exchange | _Kept]] = {}
        """Per charger, its latest call per (action, connector): kept as (when, action, the
        event), made an :class:`Exchange` (and kept as that one) only when a step asks: this
        runs for every call of every charger."""
        self._connected_at: dict[str, float] = {}
        self._waiters: list[_Waiter] = []
        self._versions: dict[str, str] = {}
        self._reports: list[ReportParts] = []
        self._routes: Mapping[type[Event], Callable[[Any], None]] = {
            ChargerConnected: self._connected,
            ChargerDisconnected: self._disconnected,
            DeviceReported: self._reported,
            CallExchanged: self._call,
            ChargerBooted: self._booted,
            ConnectorStatus: self._status,
            Measured: self._measured,
            CardAnswered: self._card,
        }

    # ------------------------------------------------------------------ events

    def event_routes(self) -> Mapping[type[Event], Callable[[Any], None]]:
        """Every event but a session's start and stop, each to its handler (the hub's routing:
        no ``isinstance`` chain per event)."""
        return self._routes

    def handle(self, event: Event) -> None:
        handler = route(self._routes, event)
        if handler is not None:
            handler(event)

    def _connected(self, event: ChargerConnected) -> None:
        self._connected_at[event.charger_id] = self._clock()
        self._versions[event.charger_id] = event.version or OCPP16

    def _disconnected(self, event: ChargerDisconnected) -> None:
        self._gone(event.charger_id)

    def _reported(self, event: DeviceReported) -> None:
        for parts in self._reports:
            if parts.charger_id == event.charger_id and parts.request_id == event.request_id:
                parts.add(event)

    def _call(self, event: CallExchanged) -> None:
        if event.action not in MEANT:  # the others are kept as the event they meant
            self._keep(event.charger_id, event.action, None, event)

    def _booted(self, event: ChargerBooted) -> None:
        self._keep(event.charger_id, "BootNotification", None, event)

    def _status(self, event: ConnectorStatus) -> None:
        self._keep(event.charger_id, "StatusNotification", event.connector, event)

    def _measured(self, event: Measured) -> None:
        self._keep(event.charger_id, "MeterValues", event.connector, event)

    def _card(self, event: CardAnswered) -> None:
        self._keep(event.charger_id, event.during, event.connector, event)

    def _gone(self, charger_id: str) -> None:
        self._connected_at.pop(charger_id, None)
        self._versions.pop(charger_id, None)
        for parts in self._reports:
            if parts.charger_id == charger_id:
                parts.disconnected()
        for waiter in [w for w in self._waiters if w.charger_id == charger_id]:
            self._waiters.remove(waiter)
            if not waiter.future.done():
                waiter.future.set_exception(ChargerGone(f"{charger_id} disconnected"))

    def _keep(self, charger_id: str, action: str, connector: int | None, event: Event) -> None:
        """Keep the event (a reference, not a copy) as the charger's latest call of ``action``
        on ``connector``; hand it to the steps waiting for it."""
        kept = (self._clock(), action, event)
        key = (action, connector)
        try:
            recent = self._recent[charger_id]
        except KeyError:
            recent = self._recent[charger_id] = {}
        if key in recent:
            del recent[key]  # re-inserted last: the values stay oldest first
        recent[key] = kept
        if not self._waiters:
            return
        exchange = recent[key] = Exchange(*kept)
        for waiter in list(self._waiters):
            if waiter.charger_id == charger_id and _wanted(waiter, exchange):
                self._waiters.remove(waiter)
                if not waiter.future.done():
                    waiter.future.set_result(exchange)

    # ------------------------------------------------------------------ queries

    def version_of(self, charger_id: str) -> str:
        """The OCPP version of the charger's current connection (``ocpp1.6`` if not seen)."""
        return self._versions.get(charger_id, OCPP16)

    def collect_reports(self, charger_id: str, request_id: int) -> ReportParts:
        """Keep the charger's NotifyReport parts of ``request_id`` from now on, until
        :meth:`stop_collecting` (ask before sending the request: parts may come at once)."""
        parts = ReportParts(charger_id, request_id)
        self._reports.append(parts)
        return parts

    def stop_collecting(self, parts: ReportParts) -> None:
        if parts in self._reports:
            self._reports.remove(parts)

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
        recent = self._recent.get(charger_id, {})
        found: list[Exchange] = []
        for key, kept in recent.items():
            if isinstance(kept, tuple):
                if kept[1] not in wanted or kept[0] < since:
                    continue
                exchange = recent[key] = Exchange(*kept)  # the same one for every later asker
            elif kept.action not in wanted or kept.at < since:
                continue
            else:
                exchange = kept
            if predicate is None or _safe(predicate, exchange):
                found.append(exchange)
        return found

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
