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
from collections.abc import Callable, Mapping
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
    digits = text[1:] if text.startswith("-") else text  # one optional sign, not "--1"
    if digits.isascii() and digits.isdigit() and len(text) <= 19:
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
    ocpp_version: str | None = None
    """The OCPP version of its connection (``ocpp1.6``, ``ocpp2.0.1``, ``ocpp2.1``); None
    before it connected. A 2.x charger's connectors are its EVSEs (``connector_id`` is the
    EVSE id, statuses in OCPP 1.6's names, see :mod:`edgegw.ocpp.interpret201`)."""
    circuit: str | None = None
    """The circuit (distribution board) it hangs on; None: directly on the site."""

    @property
    def is_v2(self) -> bool:
        """It speaks OCPP 2.x: its connectors are EVSEs."""
        return (self.ocpp_version or "").startswith("ocpp2")

    @property
    def version_label(self) -> str:
        """Its OCPP version for people: ``1.6``, ``2.0.1``, or ``-`` when not known."""
        return (self.ocpp_version or "-").removeprefix("ocpp")

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


PerPhase = tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class CircuitLive:
    """One circuit (distribution board) below the site, as load capping keeps it."""

    name: str
    parent: str | None
    """The circuit it hangs on; None: directly on the site."""
    limit_a: PerPhase
    """Its fuse per site phase (as load capping keeps to it: lowered from outside if it is)."""
    margin_a: float
    allocated_a: PerPhase | None
    """What the last load-capping round allocated under it (its sub-circuits and the load held
    on its chargers included); None before the first round."""
    headroom_a: PerPhase | None
    """limit - margin - allocated, per phase (None before the first round)."""
    load_a: Phases | None
    """What the chargers under it (sub-circuits included) measure now, on the site phases."""
    measured_a: Phases | None
    """The board's own meter, when it has one (None: no meter of its own, or no reading)."""
    chargers: tuple[str, ...]
    """The chargers hung directly on it (configuration order)."""
    meter: str | None = None
    """Its own meter: 'ok', 'lost' or 'waiting' (None: it has none)."""
    fallback: bool = False
    """Its meter is lost: its chargers share the board's fallback current."""
    other_a: PerPhase | None = None
    """The load under it besides the chargers, as the last round counted it (its meter's
    reading less what the chargers draw; None: no meter, or before a round)."""
    meter_hold: bool = False
    """Its meter's last read failed: no charger under it is raised until it reads again."""
    meter_age_s: float | None = None
    """How old its meter's reading is (s; None: no meter or no reading)."""


@dataclass(frozen=True, slots=True)
class LimitLive:
    """One limit from outside (``[[limits]]``: a control box's relay or register, a GPIO, an
    MQTT topic, §14a), as the daemon follows it."""

    name: str
    source: str
    node: str
    """What it lowers: ``site`` or a circuit's name."""
    para14a: bool
    active: bool
    since: float | None
    """When it became active (None: not active)."""
    limit_a: PerPhase
    """What its node is lowered to while it is active (§14a: what the dimmed chargers may
    draw together)."""
    granted_kw: float | None
    """§14a: the power granted to the dimmed chargers."""
    chargers: int | None
    """§14a: how many controllable chargers the grant is for."""
    last_error: str | None


@dataclass(frozen=True, slots=True)
class PeakLive:
    """Capacity-peak shaving (``[peak]``): the month's peak and what was shaved."""

    month: str
    target_kw: float
    effective_target_kw: float
    """The target in force (raised to the month's peak once that is over the target)."""
    month_peak_kw: float
    month_peak_at: float | None
    projected_kw: float | None
    """The running quarter-hour's average as projected to its end."""
    limiting: bool
    """The cap acts now."""
    shaved_quarters: int
    """Quarter-hours of the month during which the cap acted."""
    shaved_kw_max: float
    """The most a quarter-hour's average was brought down this month."""


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
    allocated_a: PerPhase | None = None
    """What the last load-capping round allocated to the chargers, per site phase."""
    headroom_a: PerPhase | None = None
    """The site's limit - margin - what that round counted in use, per phase."""


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    site: SiteLive
    chargers: tuple[ChargerLive, ...]
    circuits: tuple[CircuitLive, ...] = ()
    """The circuits below the site, in configuration order (none: every charger hangs on the
    site)."""
    limits: tuple[LimitLive, ...] = ()
    """The limits from outside, configured order (none configured: empty)."""
    peak: PeakLive | None = None
    """Peak shaving (None: no ``[peak]``)."""

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

    def circuit(self, name: str) -> CircuitLive | None:
        return next((c for c in self.circuits if c.name == name), None)


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
Reader = Callable[[Any], Any]


class _Mismatch(Exception):
    """Raised inside the reader: the problem, and where (built on the way out)."""

    def __init__(self, problem: str, path: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.path = path

    def inside(self, segment: str) -> _Mismatch:
        return _Mismatch(self.problem, segment + self.path)


def from_json(cls: type[T], data: Any, where: str = "snapshot") -> T:
    """``data`` (plain JSON types) as the dataclass ``cls``, every field checked against its
    annotation; ``where`` names the document in the error. The reader is compiled from the
    annotations once per call (a few classes), not once per value."""
    try:
        return cast(T, _reader(cls)(data))
    except _Mismatch as exc:
        raise SnapshotMismatch(f"{where}{exc.path}: {exc.problem}") from None


def _reader(tp: Any) -> Reader:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return _union_reader(args)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass_reader(tp)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _sequence_reader(_reader(args[0]))
        return _fixed_reader(tuple(_reader(a) for a in args))
    if origin is Mapping or origin is dict:
        return _mapping_reader(_reader(args[1]))
    if tp is float:
        return _read_float
    if tp is int:
        return _read_int
    if tp is str or tp is bool:
        return _instance_reader(tp)
    raise TypeError(f"cannot read {tp!r}")  # a bug in the snapshot's definition


def _union_reader(args: tuple[Any, ...]) -> Reader:
    nullable = type(None) in args
    options = tuple(_reader(a) for a in args if a is not type(None))

    def read(value: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise _Mismatch("null where a value is expected")
        if len(options) == 1:
            return options[0](value)
        for option in options:
            try:
                return option(value)
            except _Mismatch:
                continue
        raise _Mismatch(f"{value!r} fits no type")

    return read


def _dataclass_reader(cls: type[Any]) -> Reader:
    hints = typing.get_type_hints(cls)
    fields = tuple((f.name, _reader(hints[f.name])) for f in dataclasses.fields(cls))
    names = {name for name, _ in fields}

    def read(value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise _Mismatch(f"expected an object, got {_kind(value)}")
        if value.keys() != names:
            missing = [n for n, _ in fields if n not in value]
            unknown = sorted(str(k) for k in value if k not in names)
            parts = ["missing " + ", ".join(missing)] if missing else []
            parts += ["unknown " + ", ".join(unknown)] if unknown else []
            raise _Mismatch("; ".join(parts))
        kwargs = {}
        for name, read_field in fields:
            try:
                kwargs[name] = read_field(value[name])
            except _Mismatch as exc:
                raise exc.inside(f".{name}") from None
        return cls(**kwargs)

    return read


def _sequence_reader(item: Reader) -> Reader:
    def read(value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise _Mismatch(f"expected a list, got {_kind(value)}")
        out = []
        for index, element in enumerate(value):
            try:
                out.append(item(element))
            except _Mismatch as exc:
                raise exc.inside(f"[{index}]") from None
        return tuple(out)

    return read


def _fixed_reader(items: tuple[Reader, ...]) -> Reader:
    def read(value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise _Mismatch(f"expected a list, got {_kind(value)}")
        if len(value) != len(items):
            raise _Mismatch(f"expected {len(items)} values, got {len(value)}")
        out = []
        for index, (item, element) in enumerate(zip(items, value, strict=True)):
            try:
                out.append(item(element))
            except _Mismatch as exc:
                raise exc.inside(f"[{index}]") from None
        return tuple(out)

    return read


def _mapping_reader(item: Reader) -> Reader:
    def read(value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise _Mismatch(f"expected an object, got {_kind(value)}")
        out = {}
        for key, element in value.items():
            try:
                out[str(key)] = item(element)
            except _Mismatch as exc:
                raise exc.inside(f".{key}") from None
        return out

    return read


def _read_float(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise _Mismatch(f"expected float, got {_kind(value)}")


def _read_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _Mismatch(f"expected int, got {_kind(value)}")


def _instance_reader(tp: type[Any]) -> Reader:
    def read(value: Any) -> Any:
        if isinstance(value, tp):
            return value
        raise _Mismatch(f"expected {tp.__name__}, got {_kind(value)}")

    return read


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
