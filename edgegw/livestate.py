"""The live picture of the site: every charger and the site meter, as they are now.

MQTT, the TUI and ``edgegw status`` all want the same answer to "what is happening here?", so
it is built once. :class:`LiveState` is a :class:`~edgegw.proxy.hooks.ChargerObserver`: it sees
every answered charger call (status, meter values, sessions, cards) and keeps a small model of
each charger. What the chargers do not say (the site meter, the load controller's limit and
mode, each charger's cloud link, the outbox backlog) it reads from the gateway's parts: on each
meter sample, and on a short refresh timer for the rest.

Two rules keep it off the relay path's back. The observer callbacks only update a few fields
and tell listeners *what* changed (:class:`LiveChange`); nothing is built or sent there.
A listener must be just as quick (mark something dirty, set an event). Snapshots
(:meth:`LiveState.snapshot`) are built on demand, by whoever wants one, as plain frozen
dataclasses that turn into JSON with :meth:`LiveSnapshot.as_dict`.

Values carry their unit in their name (``current_a``, ``power_w``, ``energy_wh``); per-phase
values are ``(L1, L2, L3)`` as the charger (or meter) reports them, ``None`` where unknown.
Times are POSIX seconds, ages seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from edgegw.auth.idtags import parse_card_id
from edgegw.config import Config
from edgegw.tasks import TaskOwner

if TYPE_CHECKING:
    from edgegw.auth.authorizer import Authorizer
    from edgegw.energy.controller import ControllerState, LoadController
    from edgegw.energy.meters import MeterHealth, MeterPoller, MeterSample, MeterService
    from edgegw.proxy.session import ChargerSession
    from edgegw.store.store import Store

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
Phases = tuple[float | None, float | None, float | None]
OwnerLookup = Callable[[str, str], str | None]
"""``(charger_id, id_tag) -> card owner`` (None when unknown)."""

STATUS_ORDER: tuple[str, ...] = (
    "Faulted",
    "Charging",
    "SuspendedEV",
    "SuspendedEVSE",
    "Preparing",
    "Finishing",
    "Reserved",
    "Available",
    "Unavailable",
)
"""OCPP 1.6 connector statuses, most telling first: a charger shows its most telling one."""
CHARGER_STATUSES: tuple[str, ...] = (*STATUS_ORDER, "Offline", "Unknown")
"""Every value :attr:`ChargerLive.status` can take."""
_RANK = {status: rank for rank, status in enumerate(STATUS_ORDER)}


class EventKind(StrEnum):
    SESSION_STARTED = "session_started"
    SESSION_STOPPED = "session_stopped"
    CARD_REFUSED = "card_refused"
    """Authorize or StartTransaction answered with a status other than Accepted."""
    METER_LOST = "meter_lost"
    METER_RESTORED = "meter_restored"
    LIMIT_CHANGED = "limit_changed"
    CHARGER_CONNECTED = "charger_connected"
    CHARGER_DISCONNECTED = "charger_disconnected"
    CHARGER_FAULT = "charger_fault"
    """A connector reported an error code or the Faulted status."""


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """Something that happened once (not a state): sent as a message, kept in a short list."""

    kind: EventKind
    at: float
    charger_id: str | None = None
    connector: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> JsonDict:
        return {
            "event": self.kind.value,
            "at": self.at,
            "charger": self.charger_id,
            "connector": self.connector,
            **self.data,
        }


class Scope(StrEnum):
    SITE = "site"
    CHARGER = "charger"
    EVENT = "event"


@dataclass(frozen=True, slots=True)
class LiveChange:
    """What a listener is told: the site or one charger changed, or an event happened."""

    scope: Scope
    charger_id: str | None = None
    event: LiveEvent | None = None


ChangeListener = Callable[[LiveChange], None]


# --------------------------------------------------------------------------------------------
# Snapshots


@dataclass(frozen=True, slots=True)
class SessionLive:
    transaction_id: int | None
    """As the charger knows it."""
    id_tag: str | None
    owner: str | None
    """The installer card's owner, when the card is enrolled and has one."""
    id_tag_status: str | None
    started_at: float
    meter_start_wh: float | None
    energy_wh: float | None
    """Meter register now minus meterStart."""


@dataclass(frozen=True, slots=True)
class ConnectorLive:
    connector_id: int
    status: str | None
    error_code: str | None
    info: str | None
    vendor_error_code: str | None
    status_at: float | None
    current_a: Phases | None
    power_w: float | None
    limit_a: float | None
    """What the load controller has in force for its session (A per phase)."""
    session: SessionLive | None


@dataclass(frozen=True, slots=True)
class ChargerLive:
    id: str
    label: str
    connected: bool
    status: str
    """One of :data:`CHARGER_STATUSES`: 'Offline', or its most telling connector status."""
    enabled: bool | None
    """False when the charger (or every connector) is Unavailable; None before any status."""
    cloud_link: str
    vendor: str | None
    model: str | None
    firmware: str | None
    current_a: Phases | None
    power_w: float | None
    energy_wh: float | None
    """Energy of its running sessions."""
    sessions_active: int
    connectors: tuple[ConnectorLive, ...]
    faults: tuple[str, ...]
    flags: tuple[str, ...]
    """Load-capping problems (``ignores_limit``, ``profile_rejected`` ...)."""
    last_seen: float | None
    connected_since: float | None
    serial: str | None = None
    """chargePointSerialNumber from its BootNotification."""


@dataclass(frozen=True, slots=True)
class MeterLive:
    name: str
    health: str
    """'ok', 'stale', 'error' or 'unknown' (see ``edgegw.energy.meters.HealthState``)."""
    ok: bool | None
    """Load capping can follow it (None: no reading yet)."""
    age_s: float | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class SiteLive:
    at: float
    limit_a: tuple[float, float, float] | None
    """The limit per phase load capping keeps to (None: no load capping)."""
    margin_a: float | None
    mode: str | None
    """Load capping: 'normal', 'fallback', 'overload', 'idle'; None without load capping."""
    current_a: Phases | None
    """From the site meter."""
    power_w: float | None
    energy_import_wh: float | None
    meter: MeterLive | None
    ev_current_a: Phases | None
    """What the connected chargers report, added up."""
    ev_power_w: float | None
    cloud: str
    """'standalone', 'online', 'offline', 'degraded' (some links down) or 'unknown'."""
    cloud_online: bool | None
    links: Mapping[str, int]
    """How many connected chargers' cloud links are in each state."""
    sync_queued: int | None
    sync_parked: int | None
    sync_oldest_age_s: float | None
    chargers_total: int
    chargers_connected: int
    sessions_active: int


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    site: SiteLive
    chargers: tuple[ChargerLive, ...]

    def as_dict(self) -> JsonDict:
        """Plain JSON types (tuples become lists)."""
        out: JsonDict = to_json(self)
        return out


def to_json(value: Any) -> Any:
    """A snapshot dataclass (or part of one) as plain JSON types."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    return value


# --------------------------------------------------------------------------------------------
# MeterValues


@dataclass(frozen=True, slots=True)
class Measured:
    """What one MeterValues carried, in A, W and Wh."""

    current_a: Phases | None = None
    power_w: float | None = None
    register_wh: float | None = None


_PHASE_INDEX = {"L1": 0, "L2": 1, "L3": 2, "L1-N": 0, "L2-N": 1, "L3-N": 2}
_SCALE = {"W": 1.0, "kW": 1000.0, "Wh": 1.0, "kWh": 1000.0, "A": 1.0}


def parse_meter_values(meter_value: Iterable[Any]) -> Measured:
    """Current per phase, power and the energy register from a MeterValues' ``meterValue``.

    Later entries win. Per-phase power and energy are added up only when no total is given;
    a current without a phase counts as L1 (single-phase chargers). Values that are not
    finite numbers, line-to-line and neutral phases, and unknown units are ignored.
    """
    currents: list[float | None] = [None, None, None]
    phased_power: dict[int, float] = {}
    phased_energy: dict[int, float] = {}
    power: float | None = None
    energy: float | None = None
    unphased_current: float | None = None
    for entry in meter_value:
        if not isinstance(entry, Mapping):
            continue
        for item in entry.get("sampledValue") or ():
            if not isinstance(item, Mapping):
                continue
            measurand = item.get("measurand", "Energy.Active.Import.Register")
            unit = item.get("unit")
            try:
                number = float(item["value"])
            except (KeyError, TypeError, ValueError):
                continue
            if not math.isfinite(number):
                continue
            phase = item.get("phase")
            index = _PHASE_INDEX.get(phase) if isinstance(phase, str) else None
            if phase is not None and index is None:
                continue  # L1-L2, N: not what a load is measured by
            if measurand == "Current.Import" and unit in (None, "A"):
                if index is None:
                    unphased_current = number
                else:
                    currents[index] = number
            elif measurand == "Power.Active.Import" and unit in (None, "W", "kW"):
                value = number * _SCALE[unit or "W"]
                if index is None:
                    power = value
                else:
                    phased_power[index] = value
            elif measurand == "Energy.Active.Import.Register" and unit in (None, "Wh", "kWh"):
                value = number * _SCALE[unit or "Wh"]
                if index is None:
                    energy = value
                else:
                    phased_energy[index] = value
    if all(c is None for c in currents) and unphased_current is not None:
        currents[0] = unphased_current
    current: Phases | None = None
    if any(c is not None for c in currents):
        current = (currents[0], currents[1], currents[2])
    if power is None and phased_power:
        power = sum(phased_power.values())
    if energy is None and phased_energy:
        energy = sum(phased_energy.values())
    return Measured(current, power, energy)


# --------------------------------------------------------------------------------------------
# What LiveState reads from the gateway


class GatewayParts(Protocol):
    """The parts of :class:`edgegw.daemon.Gateway` the live state reads (all optional)."""

    @property
    def config(self) -> Config: ...

    @property
    def sessions(self) -> Mapping[str, ChargerSession]: ...

    @property
    def store(self) -> Store | None: ...

    @property
    def meters(self) -> MeterService | None: ...

    @property
    def controller(self) -> LoadController | None: ...

    @property
    def authorizer(self) -> Authorizer | None: ...


def link_state(config: Config, session: ChargerSession | None) -> str:
    """A charger's cloud link: standalone, charger offline, online, replaying, connecting,
    offline (the same words as the control socket's ``status``)."""
    if config.cloud is None:
        return "standalone"
    if session is None:
        return "charger offline"
    link = session.link
    if link.cloud_up:
        return "replaying" if link.outbox_pending else "online"
    return "connecting" if link.cloud_connecting else "offline"


# --------------------------------------------------------------------------------------------
# Bookkeeping


@dataclass(slots=True)
class _Session:
    transaction_id: int | None
    id_tag: str | None
    owner: str | None
    id_tag_status: str | None
    started_at: float
    meter_start_wh: float | None


@dataclass(slots=True)
class _Connector:
    connector_id: int
    status: str | None = None
    error_code: str | None = None
    info: str | None = None
    vendor_error_code: str | None = None
    status_at: float | None = None
    current_a: Phases | None = None
    power_w: float | None = None
    register_wh: float | None = None
    session: _Session | None = None

    def faulted(self) -> bool:
        return self.status == "Faulted" or self.error_code not in (None, "NoError")


@dataclass(slots=True)
class _Charger:
    id: str
    label: str
    connected: bool = False
    connected_since: float | None = None
    last_seen: float | None = None
    vendor: str | None = None
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None
    connectors: dict[int, _Connector] = field(default_factory=dict)
    """Connector 0 is the charger itself (its StatusNotification)."""

    def connector(self, connector_id: int) -> _Connector:
        conn = self.connectors.get(connector_id)
        if conn is None:
            conn = self.connectors[connector_id] = _Connector(connector_id)
        return conn


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


# --------------------------------------------------------------------------------------------


class LiveState:
    """The site's live state; register it as a charger observer, then :meth:`start` it.

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
        self._config = parts.config
        self._owner_lookup = owner_lookup
        self._clock = clock
        self._monotonic = monotonic
        self._refresh_interval = refresh_interval
        self._backlog_interval = backlog_interval
        self._tasks = TaskOwner("livestate")
        self._listeners: list[ChangeListener] = []
        self._chargers: dict[str, _Charger] = {}
        for charger in self._config.chargers:
            self._chargers[charger.id] = _Charger(charger.id, charger.label)
        self._events: deque[LiveEvent] = deque(maxlen=event_history)
        self._links: dict[str, str] = {}
        self._charger_extra: dict[str, tuple[Any, ...]] = {}
        self._backlog: tuple[int, int, float | None] | None = None
        self._site_signature: _SiteSignature | None = None
        self._meter_ok: bool | None = None
        self._limit: tuple[float, float, float] | None = None
        self._poller: MeterPoller | None = None
        self._refreshed = asyncio.Event()

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

    def on_change(self, callback: ChangeListener) -> Callable[[], None]:
        """Call ``callback`` on every change; it must return at once. Returns an unsubscriber."""
        self._listeners.append(callback)

        def remove() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return remove

    async def wait_refreshed(self, timeout: float = 10.0) -> None:
        """Wait until the next refresh round (of links, controller, backlog) has run."""
        event = self._refreshed
        async with asyncio.timeout(timeout):
            await event.wait()

    # ------------------------------------------------------------ ChargerObserver

    def charger_connected(self, charger_id: str) -> None:
        ch = self._charger(charger_id)
        now = self._clock()
        ch.connected = True
        ch.connected_since = now
        ch.last_seen = now
        self._event(EventKind.CHARGER_CONNECTED, charger_id)
        self._changed(charger_id, site=True)

    def charger_disconnected(self, charger_id: str) -> None:
        ch = self._chargers.get(charger_id)
        if ch is None:
            return
        ch.connected = False
        ch.connected_since = None
        for conn in ch.connectors.values():  # nobody measures them now
            conn.current_a = None
            conn.power_w = None
        self._event(EventKind.CHARGER_DISCONNECTED, charger_id)
        self._changed(charger_id, site=True)

    def charger_exchanged(
        self, charger_id: str, action: str, request: JsonDict, response: JsonDict
    ) -> None:
        ch = self._charger(charger_id)
        ch.last_seen = self._clock()
        try:
            handler = self._handlers.get(action)
            if handler is None:
                return
            site = handler(self, ch, request, response)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.debug("%s: %s not understood for live state: %s", charger_id, action, exc)
            return
        self._changed(charger_id, site=site)

    def _on_boot(self, ch: _Charger, request: JsonDict, response: JsonDict) -> bool:
        ch.vendor = _text(request.get("chargePointVendor"))
        ch.model = _text(request.get("chargePointModel"))
        ch.firmware = _text(request.get("firmwareVersion"))
        ch.serial = _text(request.get("chargePointSerialNumber"))
        return False

    def _on_status(self, ch: _Charger, request: JsonDict, response: JsonDict) -> bool:
        conn = ch.connector(int(request["connectorId"]))
        was_faulted = conn.faulted()
        conn.status = str(request["status"])
        conn.error_code = _text(request.get("errorCode"))
        conn.info = _text(request.get("info"))
        conn.vendor_error_code = _text(request.get("vendorErrorCode"))
        conn.status_at = self._clock()
        if conn.faulted() and not was_faulted:
            self._event(
                EventKind.CHARGER_FAULT,
                ch.id,
                conn.connector_id,
                status=conn.status,
                error_code=conn.error_code,
                info=conn.info,
                vendor_error_code=conn.vendor_error_code,
            )
        if conn.status == "Available" and conn.session is None:
            conn.current_a, conn.power_w = (0.0, 0.0, 0.0), 0.0
        return True

    def _on_authorize(self, ch: _Charger, request: JsonDict, response: JsonDict) -> bool:
        status = str(response["idTagInfo"]["status"])
        if status != "Accepted":
            id_tag = str(request["idTag"])
            self._event(
                EventKind.CARD_REFUSED,
                ch.id,
                None,
                id_tag=id_tag,
                owner=self._owner(ch.id, id_tag),
                status=status,
                during="Authorize",
            )
        return False

    def _on_start(self, ch: _Charger, request: JsonDict, response: JsonDict) -> bool:
        conn = ch.connector(int(request["connectorId"]))
        id_tag = str(request["idTag"])
        info = response.get("idTagInfo") or {}
        status = _text(info.get("status"))
        tx = response.get("transactionId")
        meter_start = _number(request.get("meterStart"))
        session = _Session(
            transaction_id=int(tx) if tx is not None else None,
            id_tag=id_tag,
            owner=self._owner(ch.id, id_tag),
            id_tag_status=status,
            started_at=self._clock(),
            meter_start_wh=meter_start,
        )
        conn.session = session
        if meter_start is not None and conn.register_wh is None:
            conn.register_wh = meter_start
        self._event(
            EventKind.SESSION_STARTED,
            ch.id,
            conn.connector_id,
            transaction_id=session.transaction_id,
            id_tag=id_tag,
            owner=session.owner,
            id_tag_status=status,
            meter_start_wh=meter_start,
        )
        if status is not None and status != "Accepted":
            self._event(
                EventKind.CARD_REFUSED,
                ch.id,
                conn.connector_id,
                id_tag=id_tag,
                owner=session.owner,
                status=status,
                during="StartTransaction",
            )
        return True

    def _on_stop(self, ch: _Charger, request: JsonDict, response: JsonDict) -> bool:
        tx = request.get("transactionId")
        meter_stop = _number(request.get("meterStop"))
        for conn in ch.connectors.values():
            session = conn.session
            if session is None or session.transaction_id != tx:
                continue
            conn.session = None
            if meter_stop is not None:
                conn.register_wh = meter_stop
            conn.current_a, conn.power_w = (0.0, 0.0, 0.0), 0.0
            energy = _energy(session, meter_stop)
            self._event(
                EventKind.SESSION_STOPPED,
                ch.id,
                conn.connector_id,
                transaction_id=session.transaction_id,
                id_tag=session.id_tag,
                owner=session.owner,
                reason=_text(request.get("reason")) or "Local",
                energy_wh=energy,
                duration_s=round(self._clock() - session.started_at, 1),
            )
            return True
        return False  # a stop we never saw the start of (or a repeated one)

    def _on_meter_values(self, ch: _Charger, request: JsonDict, response: JsonDict) -> bool:
        connector_id = int(request["connectorId"])
        if connector_id <= 0:
            return False
        conn = ch.connector(connector_id)
        measured = parse_meter_values(request.get("meterValue") or ())
        if measured.current_a is not None:
            conn.current_a = measured.current_a
        if measured.power_w is not None:
            conn.power_w = measured.power_w
        if measured.register_wh is not None:
            conn.register_wh = measured.register_wh
        tx = request.get("transactionId")
        if tx is not None and conn.session is None:  # started before we were watching
            conn.session = _Session(int(tx), None, None, None, self._clock(), None)
        return True

    _handlers: Mapping[str, Callable[[LiveState, _Charger, JsonDict, JsonDict], bool]] = {
        "BootNotification": _on_boot,
        "StatusNotification": _on_status,
        "Authorize": _on_authorize,
        "StartTransaction": _on_start,
        "StopTransaction": _on_stop,
        "MeterValues": _on_meter_values,
    }
    """Action → handler; a handler returns whether the site totals changed too."""

    # ------------------------------------------------------------ telling listeners

    def _charger(self, charger_id: str) -> _Charger:
        ch = self._chargers.get(charger_id)
        if ch is None:
            ch = self._chargers[charger_id] = _Charger(charger_id, "")
        return ch

    def _changed(self, charger_id: str | None, *, site: bool = False) -> None:
        if charger_id is not None:
            self._tell(LiveChange(Scope.CHARGER, charger_id))
        if site:
            self._tell(LiveChange(Scope.SITE))

    def _event(
        self, kind: EventKind, charger_id: str | None, connector: int | None = None, **data: Any
    ) -> None:
        event = LiveEvent(kind, self._clock(), charger_id, connector, data)
        self._events.append(event)
        log.debug("live event %s", event)
        self._tell(LiveChange(Scope.EVENT, charger_id, event))

    def _tell(self, change: LiveChange) -> None:
        for listener in tuple(self._listeners):
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
            self._check_links()
            self._check_site()
            event, self._refreshed = self._refreshed, asyncio.Event()
            event.set()
            await asyncio.sleep(self._refresh_interval)

    async def _refresh_backlog(self) -> None:
        store = self._parts.store
        if store is None:
            return
        try:
            rows = await store.outbox.status()
        except Exception as exc:  # the store closing under us, or a locked database
            log.debug("outbox status unavailable: %s", exc)
            return
        oldest = [r.oldest_queued_at for r in rows if r.oldest_queued_at is not None]
        self._backlog = (
            sum(r.queued for r in rows),
            sum(r.parked for r in rows),
            min(oldest) if oldest else None,
        )

    def _check_links(self) -> None:
        """Tell about chargers whose cloud link or load-capping view changed."""
        sessions = self._parts.sessions
        controller = self._parts.controller
        extra: dict[str, tuple[Any, ...]] = {}
        if controller is not None:
            for state in controller.state().chargers:
                extra[state.id] = (
                    state.flags,
                    tuple((s.connector, s.offered_a) for s in state.sessions),
                )
        for charger_id in list(self._chargers):
            link = link_state(self._config, sessions.get(charger_id))
            seen = extra.get(charger_id, ())
            if self._links.get(charger_id) != link or self._charger_extra.get(charger_id) != seen:
                self._links[charger_id] = link
                self._charger_extra[charger_id] = seen
                self._changed(charger_id)

    def _check_site(self) -> None:
        """Tell about a changed site; raise meter and limit events on their transitions."""
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
        links = self._link_counts()
        signature = _SiteSignature(
            limit_a=limit,
            mode=cstate.mode if cstate is not None else None,
            meter_ok=meter.ok if meter is not None else None,
            meter_health=meter.health if meter is not None else None,
            cloud=self._cloud_summary(links)[0],
            links=tuple(sorted(links.items())),
            backlog=self._backlog[:2] if self._backlog is not None else None,
        )
        if signature != self._site_signature:
            self._site_signature = signature
            self._tell(LiveChange(Scope.SITE))

    def _limit_of(self, cstate: ControllerState | None) -> tuple[float, float, float] | None:
        if cstate is not None:
            return cstate.limit_a
        site = self._config.site
        return site.limits() if site is not None else None

    def _meter_live(self, cstate: ControllerState | None) -> MeterLive | None:
        poller = self._site_poller()
        if poller is None:
            return None
        health = poller.health
        if cstate is not None:  # the controller's view decides whether capping can follow it
            ok = {"ok": True, "lost": False}.get(cstate.meter)
        else:
            ok = {"ok": True, "stale": False, "error": False}.get(health.state.value)
        sample = poller.latest
        return MeterLive(
            name=poller.name,
            health=health.state.value,
            ok=ok,
            age_s=None if sample is None else round(max(0.0, self._monotonic() - sample.at), 1),
            last_error=health.last_error,
        )

    def _link_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        if self._config.cloud is None:
            return counts
        for charger_id, session in self._parts.sessions.items():
            if charger_id in self._chargers and self._chargers[charger_id].connected:
                state = link_state(self._config, session)
                counts[state] = counts.get(state, 0) + 1
        return counts

    def _cloud_summary(self, links: Mapping[str, int]) -> tuple[str, bool | None]:
        if self._config.cloud is None:
            return "standalone", None
        total = sum(links.values())
        if total == 0:
            return "unknown", None
        up = links.get("online", 0) + links.get("replaying", 0)
        if up == total:
            return "online", True
        return ("offline" if up == 0 else "degraded"), False

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
        return LiveSnapshot(self._site_live(cstate, chargers), chargers)

    def site(self) -> SiteLive:
        controller = self._parts.controller
        cstate = controller.state() if controller is not None else None
        chargers = tuple(self._charger_live(cid, cstate) for cid in self.charger_ids())
        return self._site_live(cstate, chargers)

    def charger(self, charger_id: str) -> ChargerLive | None:
        if charger_id not in self._chargers:
            return None
        controller = self._parts.controller
        return self._charger_live(charger_id, controller.state() if controller else None)

    def _site_live(
        self, cstate: ControllerState | None, chargers: tuple[ChargerLive, ...]
    ) -> SiteLive:
        poller = self._site_poller()
        sample = poller.latest if poller is not None else None
        reading = sample.reading if sample is not None else None
        links = self._link_counts()
        cloud, cloud_online = self._cloud_summary(links)
        connected = [c for c in chargers if c.connected]
        backlog = self._backlog
        now = self._clock()
        return SiteLive(
            at=now,
            limit_a=self._limit_of(cstate),
            margin_a=self._config.site.margin_a if self._config.site is not None else None,
            mode=cstate.mode if cstate is not None else None,
            current_a=None
            if reading is None
            else (reading.current_l1_a, reading.current_l2_a, reading.current_l3_a),
            power_w=None if reading is None else reading.power_w,
            energy_import_wh=None if reading is None else reading.energy_import_wh,
            meter=self._meter_live(cstate),
            ev_current_a=_sum_phases(c.current_a for c in connected),
            ev_power_w=_sum(c.power_w for c in connected),
            cloud=cloud,
            cloud_online=cloud_online,
            links=links,
            sync_queued=None if backlog is None else backlog[0],
            sync_parked=None if backlog is None else backlog[1],
            sync_oldest_age_s=None
            if backlog is None or backlog[2] is None
            else round(max(0.0, now - backlog[2]), 1),
            chargers_total=len(chargers),
            chargers_connected=len(connected),
            sessions_active=sum(c.sessions_active for c in chargers),
        )

    def _charger_live(self, charger_id: str, cstate: ControllerState | None) -> ChargerLive:
        ch = self._chargers[charger_id]
        limits: dict[int, float] = {}
        flags: tuple[str, ...] = ()
        if cstate is not None:
            for state in cstate.chargers:
                if state.id == charger_id:
                    flags = state.flags
                    limits = {s.connector: s.offered_a for s in state.sessions}
        connectors = tuple(
            self._connector_live(conn, limits.get(conn.connector_id))
            for _, conn in sorted(ch.connectors.items())
            if conn.connector_id > 0
        )
        sessions = [c.session for c in connectors if c.session is not None]
        return ChargerLive(
            id=ch.id,
            label=ch.label,
            connected=ch.connected,
            status=_summary(ch),
            enabled=_enabled(ch),
            cloud_link=link_state(self._config, self._parts.sessions.get(charger_id)),
            vendor=ch.vendor,
            model=ch.model,
            firmware=ch.firmware,
            current_a=_sum_phases(c.current_a for c in connectors) if ch.connected else None,
            power_w=_sum(c.power_w for c in connectors) if ch.connected else None,
            energy_wh=_sum(s.energy_wh for s in sessions),
            sessions_active=len(sessions),
            connectors=connectors,
            faults=tuple(_fault(c) for _, c in sorted(ch.connectors.items()) if c.faulted()),
            flags=flags,
            last_seen=ch.last_seen,
            connected_since=ch.connected_since,
            serial=ch.serial,
        )

    @staticmethod
    def _connector_live(conn: _Connector, limit_a: float | None) -> ConnectorLive:
        session = conn.session
        return ConnectorLive(
            connector_id=conn.connector_id,
            status=conn.status,
            error_code=conn.error_code,
            info=conn.info,
            vendor_error_code=conn.vendor_error_code,
            status_at=conn.status_at,
            current_a=conn.current_a,
            power_w=conn.power_w,
            limit_a=limit_a,
            session=None
            if session is None
            else SessionLive(
                transaction_id=session.transaction_id,
                id_tag=session.id_tag,
                owner=session.owner,
                id_tag_status=session.id_tag_status,
                started_at=session.started_at,
                meter_start_wh=session.meter_start_wh,
                energy_wh=_energy(session, conn.register_wh),
            ),
        )


# --------------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _energy(session: _Session, register_wh: float | None) -> float | None:
    if session.meter_start_wh is None or register_wh is None:
        return None
    return max(0.0, register_wh - session.meter_start_wh)


def _sum(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _sum_phases(values: Iterable[Phases | None]) -> Phases | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    a, b, c = (_sum(v[i] for v in known) for i in range(3))
    return (a, b, c)


def _summary(ch: _Charger) -> str:
    if not ch.connected:
        return "Offline"
    own = ch.connectors.get(0)
    if own is not None and own.status in ("Faulted", "Unavailable"):
        return own.status
    statuses = [c.status for n, c in ch.connectors.items() if n > 0 and c.status]
    if statuses:
        best = min(statuses, key=lambda s: _RANK.get(s, len(_RANK)))
        return best if best in _RANK else "Unknown"
    if own is not None and own.status in _RANK:
        return own.status
    return "Unknown"


def _enabled(ch: _Charger) -> bool | None:
    own = ch.connectors.get(0)
    if own is not None and own.status == "Unavailable":
        return False
    statuses = [c.status for n, c in ch.connectors.items() if n > 0 and c.status]
    if statuses:
        return not all(s == "Unavailable" for s in statuses)
    if own is not None and own.status:
        return True
    return None


def _fault(conn: _Connector) -> str:
    where = "charger" if conn.connector_id == 0 else f"connector {conn.connector_id}"
    what = conn.error_code if conn.error_code not in (None, "NoError") else conn.status
    details = ", ".join(x for x in (conn.info, conn.vendor_error_code) if x)
    return f"{where}: {what}" + (f" ({details})" if details else "")
