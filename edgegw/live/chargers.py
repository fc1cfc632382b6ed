"""The live state's small model of each charger, and how it reads as a snapshot.

Mutable bookkeeping (:class:`ChargerBook`, :class:`ConnectorBook`, :class:`SessionBook`) that
:class:`~edgegw.live.state.LiveState` updates from charger events, and the pure functions that
turn it into the frozen :mod:`edgegw.live.snapshot` types.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from edgegw.live.snapshot import (
    STATUS_ORDER,
    ChargerLive,
    ConnectorLive,
    Phases,
    SessionLive,
    TransactionId,
)

_RANK = {status: rank for rank, status in enumerate(STATUS_ORDER)}
ALL_PHASES: tuple[int, ...] = (0, 1, 2)
"""A charger's wiring when the configuration does not name it: L1, L2, L3 on L1, L2, L3."""


@dataclass(slots=True)
class SessionBook:
    transaction_id: TransactionId | None
    id_tag: str | None
    owner: str | None
    id_tag_status: str | None
    started_at: float
    meter_start_wh: float | None


@dataclass(slots=True)
class ConnectorBook:
    connector_id: int
    status: str | None = None
    error_code: str | None = None
    info: str | None = None
    vendor_error_code: str | None = None
    status_at: float | None = None
    current_a: Phases | None = None
    power_w: float | None = None
    register_wh: float | None = None
    session: SessionBook | None = None

    def faulted(self) -> bool:
        return self.status == "Faulted" or self.error_code not in (None, "NoError")

    def idle(self) -> None:
        """Nothing flows (no session, or its session just ended)."""
        self.current_a, self.power_w = (0.0, 0.0, 0.0), 0.0


@dataclass(slots=True)
class ChargerBook:
    id: str
    label: str
    connected: bool = False
    connected_since: float | None = None
    last_seen: float | None = None
    vendor: str | None = None
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None
    version: str | None = None
    """The OCPP version of its (last) connection."""
    connectors: dict[int, ConnectorBook] = field(default_factory=dict)
    """Connector 0 is the charger itself (its StatusNotification)."""

    def connector(self, connector_id: int) -> ConnectorBook:
        conn = self.connectors.get(connector_id)
        if conn is None:
            conn = self.connectors[connector_id] = ConnectorBook(connector_id)
        return conn


def charger_live(
    ch: ChargerBook,
    *,
    cloud_link: str,
    flags: tuple[str, ...] = (),
    limits: Mapping[int, float] | None = None,
    circuit: str | None = None,
) -> ChargerLive:
    """The snapshot of one charger; ``limits`` are the controller's per connector, ``circuit``
    the one it hangs on (configuration)."""
    limits = limits or {}
    connectors = tuple(
        connector_live(conn, limits.get(conn.connector_id))
        for _, conn in sorted(ch.connectors.items())
        if conn.connector_id > 0
    )
    sessions = [c.session for c in connectors if c.session is not None]
    return ChargerLive(
        id=ch.id,
        label=ch.label,
        connected=ch.connected,
        status=summary(ch),
        enabled=enabled(ch),
        cloud_link=cloud_link,
        vendor=ch.vendor,
        model=ch.model,
        firmware=ch.firmware,
        current_a=sum_phases(c.current_a for c in connectors) if ch.connected else None,
        power_w=sum_known(c.power_w for c in connectors) if ch.connected else None,
        energy_wh=sum_known(s.energy_wh for s in sessions),
        sessions_active=len(sessions),
        connectors=connectors,
        faults=tuple(fault(c) for _, c in sorted(ch.connectors.items()) if c.faulted()),
        flags=flags,
        last_seen=ch.last_seen,
        connected_since=ch.connected_since,
        serial=ch.serial,
        ocpp_version=ch.version,
        circuit=circuit,
    )


def connector_live(conn: ConnectorBook, limit_a: float | None) -> ConnectorLive:
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
            energy_wh=energy(session, conn.register_wh),
        ),
    )


def on_site_phases(current_a: Phases | None, wiring: tuple[int, ...]) -> Phases | None:
    """A charger's per-phase current on the site phases it is wired to (its L1 on
    ``wiring[0]`` ...), None on site phases it is not wired to."""
    if current_a is None:
        return None
    site: list[float | None] = [None, None, None]
    for index, amps in enumerate(current_a):
        if amps is not None and index < len(wiring):
            site[wiring[index]] = amps
    return (site[0], site[1], site[2])


def energy(session: SessionBook, register_wh: float | None) -> float | None:
    if session.meter_start_wh is None or register_wh is None:
        return None
    return max(0.0, register_wh - session.meter_start_wh)


def sum_known(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def sum_phases(values: Iterable[Phases | None]) -> Phases | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    a, b, c = (sum_known(v[i] for v in known) for i in range(3))
    return (a, b, c)


def summary(ch: ChargerBook) -> str:
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


def enabled(ch: ChargerBook) -> bool | None:
    own = ch.connectors.get(0)
    if own is not None and own.status == "Unavailable":
        return False
    statuses = [c.status for n, c in ch.connectors.items() if n > 0 and c.status]
    if statuses:
        return not all(s == "Unavailable" for s in statuses)
    if own is not None and own.status:
        return True
    return None


def fault(conn: ConnectorBook) -> str:
    where = "charger" if conn.connector_id == 0 else f"connector {conn.connector_id}"
    what = conn.error_code if conn.error_code not in (None, "NoError") else conn.status
    details = ", ".join(x for x in (conn.info, conn.vendor_error_code) if x)
    return f"{where}: {what}" + (f" ({details})" if details else "")
