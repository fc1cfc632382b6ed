"""The live snapshot: one typed definition the daemon builds and every reader parses.

:class:`LiveSnapshot` is what ``live.snapshot`` answers and the ``live`` topic pushes (as JSON
through :meth:`LiveSnapshot.as_dict`), what MQTT publishes parts of, and what the TUI reads
back with :meth:`LiveSnapshot.from_dict`. The TUI ships in the same wheel as the daemon, so the
reading is strict: a missing, unknown or mistyped field raises :class:`SnapshotMismatch` (one
clear message: the daemon and the TUI are not the same version) instead of being guessed at.

Values carry their unit in their name (``current_a``, ``power_w``, ``energy_wh``); per-phase
values are ``(L1, L2, L3)`` as the charger (or meter) reports them, ``None`` where unknown.
Times are POSIX seconds, ages seconds. A transaction id is an integer when the charger's id is
a decimal number (every OCPP 1.6 charger: the published shape of 1.6 sessions is unchanged),
else the charger's string.

This module imports nothing of the daemon: the TUI loads it without the gateway's parts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar, cast

JsonDict = dict[str, Any]
Phases = tuple[float | None, float | None, float | None]
TransactionId = int | str

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


def snapshot_transaction_id(transaction_id: str | None) -> TransactionId | None:
    """An event's transaction id (a string) as the snapshot shows it: decimal ids as ints."""
    if transaction_id is None:
        return None
    text = transaction_id.strip()
    if text.isascii() and text.lstrip("-").isdigit() and len(text) <= 19:
        return int(text)
    return transaction_id


@dataclass(frozen=True, slots=True)
class SessionLive:
    transaction_id: TransactionId | None
    """As the charger knows it (see the module's note on its type)."""
    id_tag: str | None
    owner: str | None
    """The installer card's owner, when the card is enrolled and has one."""
    id_tag_status: str | None
    started_at: float
    meter_start_wh: float | None
    energy_wh: float | None
    """Meter register now minus meterStart."""

    @property
    def who(self) -> str:
        """The card's owner, else its tag, else "unknown card"."""
        return self.owner or self.id_tag or "unknown card"


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

    @property
    def sessions(self) -> list[tuple[int, SessionLive]]:
        """``(connector id, session)`` of its running sessions."""
        return [(c.connector_id, c.session) for c in self.connectors if c.session is not None]

    @property
    def name(self) -> str:
        """Its id, with its label in brackets when it has one."""
        return f"{self.id} ({self.label})" if self.label else self.id


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

    @classmethod
    def from_dict(cls, data: Any) -> LiveSnapshot:
        """The snapshot :meth:`as_dict` made (after a JSON round trip); raises
        :class:`SnapshotMismatch` on anything else."""
        return from_json(cls, data)

    def charger(self, charger_id: str) -> ChargerLive | None:
        return next((c for c in self.chargers if c.id == charger_id), None)


# --------------------------------------------------------------------------------------------
# JSON both ways


class SnapshotMismatch(ValueError):
    """A snapshot document does not have the shape of this version's :class:`LiveSnapshot`."""


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


T = TypeVar("T")


def from_json(cls: type[T], data: Any, where: str = "snapshot") -> T:
    """``data`` (plain JSON types) as the dataclass ``cls``, every field checked against its
    annotation; ``where`` names the document in the error."""
    return cast(T, _read(cls, data, where))


def _read(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        if value is None:
            if type(None) in args:
                return None
            raise SnapshotMismatch(f"{where}: null where a value is expected")
        problems = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _read(option, value, where)
            except SnapshotMismatch as exc:
                problems.append(str(exc))
        raise SnapshotMismatch(
            problems[0] if len(problems) == 1 else f"{where}: {value!r} fits no type"
        )
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _read_dataclass(tp, value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise SnapshotMismatch(f"{where}: expected a list, got {_kind(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_read(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise SnapshotMismatch(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(
            _read(t, v, f"{where}[{i}]") for i, (t, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is Mapping or origin is dict:
        if not isinstance(value, Mapping):
            raise SnapshotMismatch(f"{where}: expected an object, got {_kind(value)}")
        return {str(k): _read(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is str or tp is bool:
        if isinstance(value, tp):
            return value
    else:  # a type this reader does not know: a bug in the snapshot's definition
        raise TypeError(f"{where}: cannot read {tp!r}")
    raise SnapshotMismatch(f"{where}: expected {tp.__name__}, got {_kind(value)}")


def _read_dataclass(cls: type[Any], value: Any, where: str) -> Any:
    if not isinstance(value, Mapping):
        raise SnapshotMismatch(f"{where}: expected an object, got {_kind(value)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [n for n in names if n not in value]
    unknown = sorted(str(k) for k in value if k not in names)
    if missing or unknown:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if unknown:
            parts.append("unknown " + ", ".join(unknown))
        raise SnapshotMismatch(f"{where}: " + "; ".join(parts))
    return cls(**{n: _read(hints[n], value[n], f"{where}.{n}") for n in names})


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
