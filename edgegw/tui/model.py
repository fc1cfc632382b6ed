"""The site as the screens see it, read defensively from the daemon's JSON.

The daemon's answers are plain JSON and may come from an older or newer version than the TUI:
every field is read with a fallback, so a missing or renamed field shows as "--" instead of
crashing the caretaker's screen. :func:`parse_snapshot` reads ``live.snapshot`` (and the
``live`` events, which carry the same document); a daemon without it is still shown, more
coarsely, from ``status`` and ``sync.status`` by :func:`snapshot_from_status`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgegw.tui.history import LoadHistory
from edgegw.tui.text import number, phase_values

Phases = tuple[float | None, float | None, float | None]
NO_PHASES: Phases = (None, None, None)


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else ()


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class SessionView:
    transaction_id: int | None
    id_tag: str | None
    owner: str | None
    started_at: float | None
    energy_wh: float | None

    @property
    def who(self) -> str:
        """The card's owner, else its tag, else "unknown card"."""
        return self.owner or self.id_tag or "unknown card"


@dataclass(frozen=True, slots=True)
class ConnectorView:
    connector_id: int
    status: str | None
    error_code: str | None
    current_a: Phases
    limit_a: float | None
    session: SessionView | None


@dataclass(frozen=True, slots=True)
class ChargerView:
    id: str
    label: str = ""
    connected: bool = False
    status: str = "Unknown"
    enabled: bool | None = None
    cloud_link: str = ""
    vendor: str | None = None
    model: str | None = None
    firmware: str | None = None
    current_a: Phases = NO_PHASES
    power_w: float | None = None
    energy_wh: float | None = None
    connectors: tuple[ConnectorView, ...] = ()
    faults: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    last_seen: float | None = None
    connected_since: float | None = None

    @property
    def sessions(self) -> list[tuple[int, SessionView]]:
        return [(c.connector_id, c.session) for c in self.connectors if c.session is not None]

    @property
    def name(self) -> str:
        return f"{self.id} ({self.label})" if self.label else self.id


@dataclass(frozen=True, slots=True)
class MeterView:
    name: str
    health: str
    ok: bool | None
    age_s: float | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class SiteView:
    at: float | None = None
    limit_a: Phases | None = None
    margin_a: float | None = None
    mode: str | None = None
    current_a: Phases | None = None
    power_w: float | None = None
    meter: MeterView | None = None
    ev_current_a: Phases | None = None
    ev_power_w: float | None = None
    cloud: str = "unknown"
    sync_queued: int | None = None
    sync_parked: int | None = None
    sync_oldest_age_s: float | None = None
    chargers_total: int = 0
    chargers_connected: int = 0
    sessions_active: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    site: SiteView
    chargers: tuple[ChargerView, ...]
    source: str = "live"
    """'live' (the live state) or 'status' (an older daemon: no currents, no sessions)."""

    def charger(self, charger_id: str) -> ChargerView | None:
        return next((c for c in self.chargers if c.id == charger_id), None)


def _phases_or_none(value: Any) -> Phases | None:
    return None if value is None else phase_values(value)


def _session(data: Any) -> SessionView | None:
    if not isinstance(data, Mapping):
        return None
    return SessionView(
        transaction_id=_int(data.get("transaction_id")),
        id_tag=_str(data.get("id_tag")),
        owner=_str(data.get("owner")) or None,
        started_at=number(data.get("started_at")),
        energy_wh=number(data.get("energy_wh")),
    )


def _connector(data: Mapping[str, Any]) -> ConnectorView:
    return ConnectorView(
        connector_id=_int(data.get("connector_id")) or 0,
        status=_str(data.get("status")),
        error_code=_str(data.get("error_code")),
        current_a=phase_values(data.get("current_a")),
        limit_a=number(data.get("limit_a")),
        session=_session(data.get("session")),
    )


def parse_charger(data: Mapping[str, Any]) -> ChargerView:
    return ChargerView(
        id=str(data.get("id", "?")),
        label=str(data.get("label") or ""),
        connected=bool(data.get("connected", False)),
        status=str(data.get("status") or "Unknown"),
        enabled=_bool(data.get("enabled")),
        cloud_link=str(data.get("cloud_link") or ""),
        vendor=_str(data.get("vendor")),
        model=_str(data.get("model")),
        firmware=_str(data.get("firmware")),
        current_a=phase_values(data.get("current_a")),
        power_w=number(data.get("power_w")),
        energy_wh=number(data.get("energy_wh")),
        connectors=tuple(_connector(c) for c in _list(data.get("connectors")) if _map(c)),
        faults=tuple(str(f) for f in _list(data.get("faults"))),
        flags=tuple(str(f) for f in _list(data.get("flags"))),
        last_seen=number(data.get("last_seen")),
        connected_since=number(data.get("connected_since")),
    )


def _meter(data: Any) -> MeterView | None:
    if not isinstance(data, Mapping):
        return None
    return MeterView(
        name=str(data.get("name") or "meter"),
        health=str(data.get("health") or "unknown"),
        ok=_bool(data.get("ok")),
        age_s=number(data.get("age_s")),
        last_error=_str(data.get("last_error")),
    )


def parse_snapshot(data: Any) -> Snapshot:
    """A ``live.snapshot`` answer (or ``live`` event) as views; never raises on odd data."""
    root = _map(data)
    site = _map(root.get("site"))
    limit = site.get("limit_a")
    return Snapshot(
        SiteView(
            at=number(site.get("at")),
            limit_a=None if limit is None else phase_values(limit),
            margin_a=number(site.get("margin_a")),
            mode=_str(site.get("mode")),
            current_a=_phases_or_none(site.get("current_a")),
            power_w=number(site.get("power_w")),
            meter=_meter(site.get("meter")),
            ev_current_a=_phases_or_none(site.get("ev_current_a")),
            ev_power_w=number(site.get("ev_power_w")),
            cloud=str(site.get("cloud") or "unknown"),
            sync_queued=_int(site.get("sync_queued")),
            sync_parked=_int(site.get("sync_parked")),
            sync_oldest_age_s=number(site.get("sync_oldest_age_s")),
            chargers_total=_int(site.get("chargers_total")) or 0,
            chargers_connected=_int(site.get("chargers_connected")) or 0,
            sessions_active=_int(site.get("sessions_active")) or 0,
        ),
        tuple(parse_charger(c) for c in _list(root.get("chargers")) if isinstance(c, Mapping)),
    )


def snapshot_from_status(status: Any, sync: Any, now: float) -> Snapshot:
    """A coarse snapshot from the ``status`` and ``sync.status`` ops (daemons without
    ``live.snapshot``): who is connected and what waits for the cloud, nothing measured.

    ``sync.status`` lists every configured charger; ``status`` adds what the store knows of
    those that connected at least once.
    """
    rows = {str(_map(r).get("id")): _map(r) for r in _list(_map(status).get("chargers")) if _map(r)}
    sync_map = _map(sync)
    sync_rows = {
        str(_map(r).get("id")): _map(r) for r in _list(sync_map.get("chargers")) if _map(r)
    }
    chargers = []
    for charger_id in [*sync_rows, *(i for i in rows if i not in sync_rows)]:
        data = {**sync_rows.get(charger_id, {}), **rows.get(charger_id, {})}
        connected = bool(data.get("connected", False))
        chargers.append(
            ChargerView(
                id=charger_id,
                connected=connected,
                status="Unknown" if connected else "Offline",
                cloud_link=str(data.get("cloud_link") or ""),
                vendor=_str(data.get("vendor")),
                model=_str(data.get("model")),
                last_seen=number(data.get("last_seen")),
            )
        )
    ages = [number(r.get("oldest_age_s")) for r in sync_rows.values()]
    known_ages = [a for a in ages if a is not None]
    links = [c.cloud_link for c in chargers if c.connected]
    cloud = "standalone" if _map(status).get("cloud") is None else _cloud_of(links)
    return Snapshot(
        SiteView(
            at=now,
            cloud=cloud,
            sync_queued=_int(sync_map.get("queued")),
            sync_parked=_int(sync_map.get("parked")),
            sync_oldest_age_s=max(known_ages) if known_ages else None,
            chargers_total=len(chargers),
            chargers_connected=sum(1 for c in chargers if c.connected),
        ),
        tuple(chargers),
        source="status",
    )


def _cloud_of(links: list[str]) -> str:
    if not links:
        return "unknown"
    up = sum(1 for link in links if link in ("online", "replaying"))
    if up == len(links):
        return "online"
    return "offline" if up == 0 else "degraded"


@dataclass(slots=True)
class SiteData:
    """Everything the screens show that outlives one screen: the newest snapshot, the live
    events seen, and the load history kept while the TUI runs."""

    snapshot: Snapshot | None = None
    updated_at: float | None = None
    live_events: deque[Mapping[str, Any]] = field(default_factory=lambda: deque(maxlen=500))
    history: LoadHistory = field(default_factory=LoadHistory)
    version: str | None = None

    def add_event(self, event: Mapping[str, Any]) -> None:
        self.live_events.append(event)
