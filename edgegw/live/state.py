"""The live picture of the site: every charger and the site meter, as they are now.

MQTT, the TUI and ``edgegw status`` all want the same answer to "what is happening here?", so
it is built once. :class:`LiveState` is a subscriber of the charger event hub: it is handed
every :mod:`edgegw.ocpp.events` event (:meth:`LiveState.handle`) and keeps a small model of
each charger. What the chargers do not say (the site meter, the load controller's limit and
mode, each charger's cloud link, the outbox backlog) it reads from the gateway's parts: on each
meter sample, and on a short refresh timer for the rest.

A current reported without a phase counts on *every* phase the charger is wired with, by
:meth:`edgegw.ocpp.events.Measured.currents` (the rule the load controller acts on), so the TUI
and MQTT show the load the controller saw. The chargers' currents add up to the site's EV load
on the site phases each charger is wired to (its ``phases`` in the configuration).

Two rules keep it off the relay path's back. :meth:`LiveState.handle` only updates a few
fields and tells listeners *what* changed (:class:`LiveChange`); nothing is built or sent there.
A listener must be just as quick (mark something dirty, set an event). Snapshots
(:meth:`LiveState.snapshot`) are built on demand, by whoever wants one, as the frozen
:mod:`edgegw.live.snapshot` dataclasses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from edgegw.auth.idtags import parse_card_id
from edgegw.config import Config
from edgegw.live.changes import ChangeListener, EventKind, LiveChange, LiveEvent, Scope
from edgegw.live.chargers import (
    ALL_PHASES,
    ChargerBook,
    ConnectorBook,
    SessionBook,
    charger_live,
    energy,
)
from edgegw.live.circuits import circuits_live
from edgegw.live.outside import limits_live, outside_signature, peak_live
from edgegw.live.site import (
    Backlog,
    GatewayParts,
    cloud_summary,
    limit_of,
    link_counts,
    link_state,
    meter_live,
    outbox_backlog,
    site_live,
)
from edgegw.live.snapshot import (
    ChargerLive,
    CircuitLive,
    LiveSnapshot,
    MeterLive,
    SiteLive,
    snapshot_transaction_id,
)
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
    SessionStarted,
    SessionStopped,
)
from edgegw.ocpp.hub import route
from edgegw.ocpp.lifecycle import measured_opens, record_ends, status_ends, stop_ends
from edgegw.tasks import TaskOwner

if TYPE_CHECKING:
    from edgegw.energy.controller import ControllerState
    from edgegw.energy.meters import MeterHealth, MeterPoller, MeterSample
    from edgegw.energy.outside import OutsideLimits

log = logging.getLogger(__name__)

OwnerLookup = Callable[[str, str], str | None]
"""``(charger_id, id_tag) -> card owner`` (None when unknown)."""


@dataclass(frozen=True, slots=True)
class _SiteSignature:
    """The slowly changing part of the site state: a change here is worth telling."""

    limit_a: tuple[float, float, float] | None
    mode: str | None
    meter_ok: bool | None
    meter_health: str | None
    cloud: str
    links: tuple[tuple[str, int], ...]
    backlog: tuple[int, int] | None
    outside: tuple[Any, ...] = ()
    """The limits from outside and peak shaving (:func:`outside_signature`)."""


class LiveState:
    """The site's live state; subscribe it to the charger event hub, then :meth:`start` it.

    ``owner_lookup`` names a card's owner (default: the installer card the authorizer
    resolves the idTag to, in the charger's idTag format). ``refresh_interval`` is how often
    the parts that have no events (cloud links, controller, meter health) are looked at,
    ``backlog_interval`` how often the outbox is counted.
    """

    def __init__(
        self,
        parts: GatewayParts,
        *,
        owner_lookup: OwnerLookup | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        refresh_interval: float = 1.0,
        backlog_interval: float = 5.0,
        event_history: int = 100,
    ) -> None:
        self._parts = parts
        self._owner_lookup = owner_lookup
        self._clock = clock
        self._monotonic = monotonic
        self._refresh_interval = refresh_interval
        self._backlog_interval = backlog_interval
        self._tasks = TaskOwner("livestate")
        self._listeners: dict[Scope, list[ChangeListener]] = {scope: [] for scope in Scope}
        """Each scope's listeners: a change nobody listens to is not even made."""
        self._routes: Mapping[type[Event], Callable[[Any], None]] = {
            CallExchanged: self._call,
            ChargerConnected: self._connected,
            ChargerDisconnected: self._disconnected,
            ChargerBooted: self._booted,
            ConnectorStatus: self._status,
            CardAnswered: self._card,
            SessionStarted: self._started,
            SessionStopped: self._stopped,
            Measured: self._measured,
            DeviceReported: self._other,
        }
        self._chargers: dict[str, ChargerBook] = {}
        self._config_seen: Config | None = None
        self._events: deque[LiveEvent] = deque(maxlen=event_history)
        self._seen: dict[str, tuple[str, tuple[Any, ...]]] = {}
        """Each charger's cloud link and load-capping view as last told."""
        self._backlog: Backlog | None = None
        self._site_signature: _SiteSignature | None = None
        self._meter_ok: bool | None = None
        self._limit: tuple[float, float, float] | None = None
        self._poller: MeterPoller | None = None
        self._refreshed = asyncio.Event()
        self._wiring_of: tuple[Config, dict[str, tuple[int, ...]]] | None = None

    @property
    def _config(self) -> Config:
        return self._sync_config()

    def _sync_config(self) -> Config:
        """The gateway's configuration *now* (a reload replaces ``parts.config``): configured
        chargers get a book with their label; one removed goes unless it is still connected."""
        config = self._parts.config
        if config is not self._config_seen:
            self._config_seen = config
            labels = {c.id: c.label for c in config.chargers}
            for charger_id, book in list(self._chargers.items()):
                if charger_id in labels:
                    book.label = labels[charger_id]
                elif not book.connected:
                    del self._chargers[charger_id]
                else:
                    book.label = ""
            for charger_id, label in labels.items():
                if charger_id not in self._chargers:
                    self._chargers[charger_id] = ChargerBook(charger_id, label)
        return config

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Follow the site meter's samples and refresh the rest on a timer."""
        poller = self._site_poller()
        if poller is not None:
            poller.add_listener(self._meter_sample)
            poller.add_health_listener(self._meter_health)
            self._poller = poller
        self._tasks.spawn(self._refresh_loop(), "refresh")

    async def close(self) -> None:
        if self._poller is not None:
            poller, self._poller = self._poller, None
            poller.remove_listener(self._meter_sample)
            poller.remove_health_listener(self._meter_health)
        await self._tasks.close("live state closing")

    def on_change(
        self, callback: ChangeListener, *, scopes: Iterable[Scope] = tuple(Scope)
    ) -> Callable[[], None]:
        """Call ``callback`` on every change of ``scopes`` (default: all); it must return at
        once. Returns an unsubscriber."""
        wanted = tuple(scopes)
        for scope in wanted:
            self._listeners[scope].append(callback)

        def remove() -> None:
            for scope in wanted:
                if callback in self._listeners[scope]:
                    self._listeners[scope].remove(callback)

        return remove

    async def wait_refreshed(self, timeout: float = 10.0) -> None:
        """Wait until the next refresh round (of links, controller, backlog) has run."""
        event = self._refreshed
        async with asyncio.timeout(timeout):
            await event.wait()

    # ------------------------------------------------------------ charger events

    def event_routes(self) -> Mapping[type[Event], Callable[[Any], None]]:
        """Each event type to its handler (the hub's routing: no type test per event)."""
        return self._routes

    def handle(self, event: Event) -> None:
        """Take one charger event (the hub's subscriber call; quick, never raises)."""
        handler = route(self._routes, event)
        (self._other if handler is None else handler)(event)

    def _book(self, charger_id: str) -> ChargerBook:
        """The charger's book (made if new), the configuration followed first: a reload may
        have added or removed chargers."""
        if self._parts.config is not self._config_seen:
            self._sync_config()
        ch = self._chargers.get(charger_id)
        if ch is None:
            ch = self._chargers[charger_id] = ChargerBook(charger_id, "")
        return ch

    def _call(self, event: CallExchanged) -> None:
        self._book(event.charger_id).last_seen = event.at

    def _connected(self, event: ChargerConnected) -> None:
        ch = self._book(event.charger_id)
        ch.connected = True
        ch.version = event.version or ch.version
        ch.connected_since = ch.last_seen = event.at
        self._event(EventKind.CHARGER_CONNECTED, ch.id, at=event.at)
        self._changed(ch.id, site=True)

    def _disconnected(self, event: ChargerDisconnected) -> None:
        self._sync_config()
        ch = self._chargers.get(event.charger_id)
        if ch is None:
            return
        ch.connected = False
        ch.connected_since = None
        for conn in ch.connectors.values():  # nobody measures them now
            conn.current_a = None
            conn.power_w = None
        self._event(EventKind.CHARGER_DISCONNECTED, ch.id, at=event.at)
        self._changed(ch.id, site=True)

    def _booted(self, event: ChargerBooted) -> None:
        ch = self._book(event.charger_id)
        ch.vendor, ch.model = event.vendor, event.model
        ch.firmware, ch.serial = event.firmware, event.serial
        self._changed(ch.id)

    def _status(self, event: ConnectorStatus) -> None:
        ch = self._book(event.charger_id)
        self._on_status(ch, event)
        self._changed(ch.id, site=True)

    def _card(self, event: CardAnswered) -> None:
        ch = self._book(event.charger_id)
        if not event.accepted:
            self._event(
                EventKind.CARD_REFUSED,
                ch.id,
                event.connector,
                at=event.at,
                id_tag=event.id_tag,
                owner=self._owner(ch.id, event.id_tag),
                status=event.status,
                during=event.during,
            )
        self._changed(ch.id)

    def _started(self, event: SessionStarted) -> None:
        ch = self._book(event.charger_id)
        self._on_start(ch, event)
        self._changed(ch.id, site=True)

    def _stopped(self, event: SessionStopped) -> None:
        ch = self._book(event.charger_id)
        self._changed(ch.id, site=self._on_stop(ch, event))

    def _measured(self, event: Measured) -> None:
        ch = self._book(event.charger_id)
        self._on_measured(ch, event)
        self._changed(ch.id, site=True)

    def _other(self, event: Event) -> None:
        """Any other event (a device model report): its charger is known, and told about."""
        self._changed(self._book(event.charger_id).id)

    def _on_status(self, ch: ChargerBook, event: ConnectorStatus) -> None:
        conn = ch.connector(event.connector)
        was_faulted = conn.faulted()
        conn.status = event.status
        conn.error_code = event.error_code
        conn.info = event.info
        conn.vendor_error_code = event.vendor_error_code
        conn.status_at = event.at
        if conn.faulted() and not was_faulted:
            self._event(
                EventKind.CHARGER_FAULT,
                ch.id,
                conn.connector_id,
                at=event.at,
                status=conn.status,
                error_code=conn.error_code,
                info=conn.info,
                vendor_error_code=conn.vendor_error_code,
            )
        if status_ends(conn.status):  # the one rule (edgegw.ocpp.lifecycle)
            if conn.session is not None and record_ends(conn.status):
                self._end_session(ch, conn, event.at, reason=event.status)
            conn.idle()

    def _on_start(self, ch: ChargerBook, event: SessionStarted) -> None:
        conn = ch.connector(event.connector)
        owner = None if event.id_tag is None else self._owner(ch.id, event.id_tag)
        session = SessionBook(
            transaction_id=snapshot_transaction_id(event.transaction_id),
            id_tag=event.id_tag,
            owner=owner,
            id_tag_status=event.id_tag_status,
            started_at=event.at,
            meter_start_wh=event.meter_start_wh,
        )
        conn.session = session
        if event.meter_start_wh is not None and conn.register_wh is None:
            conn.register_wh = event.meter_start_wh
        self._event(
            EventKind.SESSION_STARTED,
            ch.id,
            conn.connector_id,
            at=event.at,
            transaction_id=session.transaction_id,
            id_tag=event.id_tag,
            owner=owner,
            id_tag_status=event.id_tag_status,
            meter_start_wh=event.meter_start_wh,
        )

    def _on_stop(self, ch: ChargerBook, event: SessionStopped) -> bool:
        """Whether a session we knew ended (a stop we never saw the start of, or a repeated
        one, changes nothing)."""
        tx = snapshot_transaction_id(event.transaction_id)
        for conn in ch.connectors.values():
            session = conn.session
            if session is None or not stop_ends(tx, session.transaction_id):
                continue
            if event.connector is not None and event.connector != conn.connector_id:
                continue
            if event.meter_stop_wh is not None:
                conn.register_wh = event.meter_stop_wh
            self._end_session(ch, conn, event.at, reason=event.reason)
            conn.idle()
            return True
        return False

    def _end_session(self, ch: ChargerBook, conn: ConnectorBook, at: float, *, reason: str) -> None:
        """End ``conn``'s session (by its stop, or by an idle status: ``reason`` the status)."""
        session = conn.session
        if session is None:
            return
        conn.session = None
        self._event(
            EventKind.SESSION_STOPPED,
            ch.id,
            conn.connector_id,
            at=at,
            transaction_id=session.transaction_id,
            id_tag=session.id_tag,
            owner=session.owner,
            reason=reason,
            energy_wh=energy(session, conn.register_wh),
            duration_s=round(at - session.started_at, 1),
        )

    def _on_measured(self, ch: ChargerBook, event: Measured) -> None:
        conn = ch.connector(event.connector)
        currents = event.currents(len(self._wiring(ch.id)))
        if currents is not None:
            padded = (*currents, None, None, None)
            conn.current_a = (padded[0], padded[1], padded[2])
        if event.power_w is not None:
            conn.power_w = event.power_w
        if event.energy_wh is not None:
            conn.register_wh = event.energy_wh
        if conn.session is None and measured_opens(conn.status, event.transaction_id):
            # a session that started before we were watching (not on an idle connector:
            # Alfen's replayed backlog carries transaction ids)
            tx = snapshot_transaction_id(event.transaction_id)
            conn.session = SessionBook(tx, None, None, None, event.at, None)

    def _wiring(self, charger_id: str) -> tuple[int, ...]:
        """The site phases (0 = L1) the charger's L1, L2, L3 are wired to (configuration)."""
        config = self._parts.config
        if self._wiring_of is None or self._wiring_of[0] is not config:
            self._wiring_of = (config, {c.id: c.site_phases() for c in config.chargers})
        return self._wiring_of[1].get(charger_id, ALL_PHASES)

    # ------------------------------------------------------------ telling listeners

    def _charger(self, charger_id: str) -> ChargerBook:
        ch = self._chargers.get(charger_id)
        if ch is None:
            ch = self._chargers[charger_id] = ChargerBook(charger_id, "")
        return ch

    def _changed(self, charger_id: str | None, *, site: bool = False) -> None:
        listeners = self._listeners
        if charger_id is not None and listeners[Scope.CHARGER]:
            self._tell(LiveChange(Scope.CHARGER, charger_id))
        if site and listeners[Scope.SITE]:
            self._tell(LiveChange(Scope.SITE))

    def _event(
        self,
        kind: EventKind,
        charger_id: str | None,
        connector: int | None = None,
        *,
        at: float | None = None,
        **data: Any,
    ) -> None:
        event = LiveEvent(kind, self._clock() if at is None else at, charger_id, connector, data)
        self._events.append(event)
        log.debug("live event %s", event)
        self._tell(LiveChange(Scope.EVENT, charger_id, event))

    def _tell(self, change: LiveChange) -> None:
        for listener in tuple(self._listeners[change.scope]):
            try:
                listener(change)
            except Exception:  # a listener's bug must not reach the relay path
                log.exception("live state listener %r failed", listener)

    def _owner(self, charger_id: str, id_tag: str) -> str | None:
        try:
            if self._owner_lookup is not None:
                return self._owner_lookup(charger_id, id_tag)
            authorizer = self._parts.authorizer
            if authorizer is None:
                return None
            card = authorizer.card(parse_card_id(id_tag, authorizer.charger_format(charger_id)))
        except ValueError:  # not a card id an installer could have enrolled
            return None
        return (card.owner or None) if card is not None else None

    # ------------------------------------------------------------ site parts

    def _site_poller(self) -> MeterPoller | None:
        meters = self._parts.meters
        return meters.site_meter if meters is not None else None

    def _meter_sample(self, sample: MeterSample) -> None:
        self._tell(LiveChange(Scope.SITE))

    def _meter_health(self, health: MeterHealth) -> None:
        if self._poller is not None:
            self._check_site()

    async def _refresh_loop(self) -> None:
        next_backlog = 0.0
        while True:
            now = self._monotonic()
            if now >= next_backlog:
                next_backlog = now + self._backlog_interval
                await self._refresh_backlog()
            controller = self._parts.controller
            cstate = controller.state() if controller is not None else None
            self._check_site(cstate, self._check_links(cstate))
            event, self._refreshed = self._refreshed, asyncio.Event()
            event.set()
            await asyncio.sleep(self._refresh_interval)

    async def _refresh_backlog(self) -> None:
        store = self._parts.store
        if store is not None:
            self._backlog = await outbox_backlog(store) or self._backlog

    def _check_links(self, cstate: ControllerState | None) -> dict[str, int]:
        """Tell about chargers whose cloud link or load-capping view changed; the connected
        chargers' links counted by state (:func:`link_counts`, from the same one walk: this
        runs every second over every charger)."""
        config = self._config
        sessions = self._parts.sessions
        extra: dict[str, tuple[Any, ...]] = {}
        if cstate is not None:
            for state in cstate.chargers:
                extra[state.id] = (
                    state.flags,
                    tuple((s.connector, s.offered_a) for s in state.sessions),
                )
        counted = config.cloud is not None
        counts: dict[str, int] = {}
        seen = self._seen
        for charger_id, ch in list(self._chargers.items()):
            session = sessions.get(charger_id)
            link = link_state(config, session)
            if counted and session is not None and ch.connected:
                counts[link] = counts[link] + 1 if link in counts else 1
            now = (link, extra.get(charger_id, ()) if extra else ())
            if seen.get(charger_id) != now:
                seen[charger_id] = now
                self._changed(charger_id)
        return counts

    def _check_site(
        self, cstate: ControllerState | None = None, links: dict[str, int] | None = None
    ) -> None:
        """Tell about a changed site; raise meter and limit events on their transitions.
        ``cstate`` and ``links`` as the refresh round read them (None: read them now)."""
        if cstate is None:
            controller = self._parts.controller
            cstate = controller.state() if controller is not None else None
        meter = self._meter_live(cstate)
        limit = self._limit_of(cstate)
        if meter is not None and meter.ok is not None and meter.ok != self._meter_ok:
            if not meter.ok:
                self._event(
                    EventKind.METER_LOST, None, None, meter=meter.name, reason=meter.last_error
                )
            elif self._meter_ok is False:
                self._event(EventKind.METER_RESTORED, None, None, meter=meter.name)
            self._meter_ok = meter.ok
        if limit != self._limit:
            if self._limit is not None:
                self._event(
                    EventKind.LIMIT_CHANGED,
                    None,
                    None,
                    limit_a=list(limit) if limit else None,
                    previous_limit_a=list(self._limit),
                )
            self._limit = limit
        if links is None:
            links = self._link_counts()
        outside = self._outside()
        signature = _SiteSignature(
            limit_a=limit,
            mode=cstate.mode if cstate is not None else None,
            meter_ok=meter.ok if meter is not None else None,
            meter_health=meter.health if meter is not None else None,
            cloud=self._cloud_summary(links)[0],
            links=tuple(sorted(links.items())),
            backlog=self._backlog[:2] if self._backlog is not None else None,
            outside=outside_signature(limits_live(outside), peak_live(outside)),
        )
        if signature != self._site_signature:
            self._site_signature = signature
            self._tell(LiveChange(Scope.SITE))

    def _limit_of(self, cstate: ControllerState | None) -> tuple[float, float, float] | None:
        return limit_of(self._config, cstate)

    def _meter_live(self, cstate: ControllerState | None) -> MeterLive | None:
        return meter_live(self._site_poller(), cstate, self._monotonic())

    def _link_counts(self) -> dict[str, int]:
        connected = {cid for cid, ch in self._chargers.items() if ch.connected}
        return link_counts(self._config, self._parts.sessions, connected)

    def _cloud_summary(self, links: Mapping[str, int]) -> tuple[str, bool | None]:
        return cloud_summary(self._config, links)

    # ------------------------------------------------------------ snapshots

    def events(self, limit: int | None = None) -> list[LiveEvent]:
        """The latest events, oldest first."""
        items = list(self._events)
        return items if limit is None else items[-limit:]

    def last_message(self, charger_id: str) -> float | None:
        """When ``charger_id`` last sent a call (or connected) during this run; kept in memory
        only (a disk write per message would wear out the SD card)."""
        ch = self._chargers.get(charger_id)
        return None if ch is None else ch.last_seen

    def charger_ids(self) -> list[str]:
        """Configured chargers in configuration order, then others seen, by id."""
        configured = [c.id for c in self._config.chargers]
        others = sorted(set(self._chargers) - set(configured))
        return configured + others

    def snapshot(self) -> LiveSnapshot:
        controller = self._parts.controller
        cstate = controller.state() if controller is not None else None
        chargers = tuple(self._charger_live(cid, cstate) for cid in self.charger_ids())
        circuits = circuits_live(self._config, cstate, chargers, self._wiring)
        outside, site = self._outside(), self._site_live(cstate, chargers)
        return LiveSnapshot(site, chargers, circuits, limits_live(outside), peak_live(outside))

    def _outside(self) -> OutsideLimits | None:  # limits from outside, peak (None: neither)
        return cast("OutsideLimits | None", getattr(self._parts, "outside_limits", None))

    def site(self) -> SiteLive:
        return self.snapshot().site

    @property
    def config(self) -> Config:
        """The gateway's configuration in force."""
        return self._config

    def circuits(self) -> tuple[CircuitLive, ...]:
        """The circuit tree alone (the chargers' loads are read for it)."""
        return self.snapshot().circuits

    def charger(self, charger_id: str) -> ChargerLive | None:
        if charger_id not in self._chargers:
            return None
        controller = self._parts.controller
        return self._charger_live(charger_id, controller.state() if controller else None)

    def _site_live(
        self, cstate: ControllerState | None, chargers: tuple[ChargerLive, ...]
    ) -> SiteLive:
        poller = self._site_poller()
        return site_live(
            self._config,
            cstate,
            chargers,
            sample=poller.latest if poller is not None else None,
            meter=self._meter_live(cstate),
            links=self._link_counts(),
            backlog=self._backlog,
            now=self._clock(),
            wiring=self._wiring,
        )

    def _charger_live(self, charger_id: str, cstate: ControllerState | None) -> ChargerLive:
        limits: dict[int, float] = {}
        flags: tuple[str, ...] = ()
        if cstate is not None:
            for state in cstate.chargers:
                if state.id == charger_id:
                    flags = state.flags
                    limits = {s.connector: s.offered_a for s in state.sessions}
        return charger_live(
            self._chargers[charger_id],
            cloud_link=link_state(self._config, self._parts.sessions.get(charger_id)),
            flags=flags,
            limits=limits,
            circuit=self._circuit_of(charger_id),
        )

    def _circuit_of(self, charger_id: str) -> str | None:
        configured = self._config.charger(charger_id)
        return None if configured is None else configured.circuit
