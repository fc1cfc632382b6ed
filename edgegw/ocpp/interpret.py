"""OCPP 1.6: what one answered charger call means, as :mod:`edgegw.ocpp.events`.

:func:`interpret` is pure and total: it never raises, whatever the payloads hold (missing keys,
wrong types, NaN or infinite numbers, huge lists or integers). A part it cannot read gives no
event; the rest of the call still does. It is the one place outside ``proxy/`` that reads raw
OCPP 1.6 payloads.

Every answered call gives :class:`CallExchanged` first, then what it means:

- ``BootNotification`` → :class:`ChargerBooted` (``accepted``: the answer's status).
- ``StatusNotification`` → :class:`ConnectorStatus` (connector 0, the whole charger, included).
- ``Authorize`` → :class:`CardAnswered` (``during="Authorize"``).
- ``StartTransaction`` → :class:`SessionStarted`, then :class:`CardAnswered`
  (``during="StartTransaction"``, with the connector) when the answer carries a status. The
  session starts whatever the status: the charger decides whether it charges.
- ``StopTransaction`` → :class:`SessionStopped`. Its ``transactionData`` is a record of the past,
  not a measurement of now: ignored.
- ``MeterValues`` on a connector ≥ 1 → :class:`Measured`. Connector 0 (the charger's own main
  meter) gives none: no consumer reads it as a connector's load.

Transaction ids are decimal strings (``"42"``); a missing or unreadable one is None.

Reading MeterValues, where the load controller and the live state used to disagree (choice
made, and why):

- *Which entries.* The controller read only the last ``meterValue`` entry; the live state read
  all, later values winning. All entries, later values winning: the same result when the last
  entry is complete, and a measurand only an earlier entry carried is not lost.
- *Locations.* The controller took ``Outlet`` (the default), ``Body``, ``Cable`` and ``EV``; the
  live state took any, ``Inlet`` too. ``Inlet`` is the charger's supply side, which includes its
  own consumption and, on a shared supply, other connectors: the controller's set.
- *Phases.* Both take L1, L2, L3 and L1-N, L2-N, L3-N; line-to-line (``L1-L2``…) and ``N`` are
  not what a load is measured by: skipped. (Unchanged.)
- *A current without a phase.* The controller counted it on every wired phase, the live state
  on L1 only. The event carries it apart (``overall_current_a``) and
  :meth:`Measured.currents` is the one rule (every phase: the cautious reading).
- *Units.* The controller read any ``Current.Import`` as A and any power not in kW as W; the
  live state skipped unknown units. Unknown units are skipped (a value in an unknown unit is
  not a number we can use); A, W/kW, Wh/kWh are scaled.
- *Per-phase power and energy.* The controller ignored per-phase power; the live state added
  per-phase power and energy up when no total was given. Added up when no total: a charger
  reporting only per-phase power then also gives the controller a current from power (as a
  total would have).
- *Negative values* are kept as reported (an export); :meth:`Measured.currents` clamps to 0.
- *A transaction id without values* still gives a :class:`Measured` (both used it to learn a
  session they had missed the start of).
- ``Current.Offered`` gives ``offered_a`` (the value without a phase, else the largest phase).
- *Not a measurement of now.* A value whose ``context`` is not one of OCPP 1.6's
  ReadingContexts (``Interruption.Begin``/``End``, ``Other``, ``Sample.Clock``,
  ``Sample.Periodic``, ``Transaction.Begin``/``End``, ``Trigger``; absent means
  ``Sample.Periodic``) is skipped: an Alfen replays its backlog with context ``CurrentMax``
  (``hardware/chargers/alfen-eve.toml``), which read as the load of now opened a phantom
  session at 32 A. A ``SignedData`` value is not a number: skipped. Such values' measurands
  are still listed in ``measurands`` (the call carried them).
- *Finite.* Every number in every event is finite: a value is checked *after* its kW/kWh
  scaling ("1e306" kW is not a power), and per-phase values added up must stay finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final

from edgegw.ocpp.events import (
    CallExchanged,
    CardAnswered,
    ChargerBooted,
    ConnectorStatus,
    Event,
    Measured,
    SessionStarted,
    SessionStopped,
)

DEFAULT_MEASURAND: Final = "Energy.Active.Import.Register"
DEFAULT_LOCATION: Final = "Outlet"
DEFAULT_CONTEXT: Final = "Sample.Periodic"
READING_CONTEXTS: Final = frozenset(
    {
        "Interruption.Begin",
        "Interruption.End",
        "Other",
        "Sample.Clock",
        "Sample.Periodic",
        "Transaction.Begin",
        "Transaction.End",
        "Trigger",
    }
)
"""OCPP 1.6's ReadingContext values: a value with any other context is not read."""
LOAD_LOCATIONS: Final = frozenset({"Outlet", "Body", "Cable", "EV"})
"""Locations whose values are the connector's load (not ``Inlet``: the supply side)."""

_PHASE_INDEX: Final = {"L1": 0, "L2": 1, "L3": 2, "L1-N": 0, "L2-N": 1, "L3-N": 2}
_CURRENT_UNITS: Final = {"A": 1.0}
_POWER_UNITS: Final = {"W": 1.0, "kW": 1000.0}
_ENERGY_UNITS: Final = {"Wh": 1.0, "kWh": 1000.0}
_MEASURANDS: Final = {
    "Current.Import": ("current", _CURRENT_UNITS, "A"),
    "Current.Offered": ("offered", _CURRENT_UNITS, "A"),
    "Power.Active.Import": ("power", _POWER_UNITS, "W"),
    "Energy.Active.Import.Register": ("energy", _ENERGY_UNITS, "Wh"),
}
"""Measurand → (what it is, its units and their scale, the default unit)."""
_MAX_TX_DIGITS: Final = 20
_MAX_TX: Final = 10**_MAX_TX_DIGITS
_MAX_MEASURANDS: Final = 64
"""Distinct measurand names kept per call (a hostile call could send thousands)."""

JsonDict = dict[str, Any]
"""A decoded JSON object (``json.loads`` gives dicts: checked as ``dict``, the fast check)."""


def interpret(
    charger_id: str, action: str, request: Any, response: Any, at: float
) -> tuple[Event, ...]:
    """The events an answered OCPP 1.6 charger call means (see the module's text)."""
    return read_call(_READERS, charger_id, action, request, response, at=at)


def read_call(
    readers: Mapping[str, _Reader],
    charger_id: str,
    action: str,
    request: Any,
    response: Any,
    *,
    at: float,
) -> tuple[Event, ...]:
    """Every answered call is heard (:class:`CallExchanged`); a call of an action ``readers``
    knows, with object payloads, also gives what its reader makes of it."""
    heard = CallExchanged(charger_id=charger_id, at=at, action=str(action))
    read = readers.get(action) if isinstance(action, str) else None
    if read is None or not isinstance(request, dict) or not isinstance(response, dict):
        return (heard,)
    return (heard, *read(charger_id, at, request, response))


# ------------------------------------------------------------------ one reader per action


def _boot(charger_id: str, at: float, request: JsonDict, response: JsonDict) -> tuple[Event, ...]:
    status = _text(response.get("status"))
    return (
        ChargerBooted(
            charger_id=charger_id,
            at=at,
            accepted=status == "Accepted",
            status=status,
            vendor=_text(request.get("chargePointVendor")),
            model=_text(request.get("chargePointModel")),
            firmware=_text(request.get("firmwareVersion")),
            serial=_text(request.get("chargePointSerialNumber")),
        ),
    )


def _status(charger_id: str, at: float, request: JsonDict, response: JsonDict) -> tuple[Event, ...]:
    connector = _connector(request.get("connectorId"))
    status = _text(request.get("status"))
    if connector is None or status is None:
        return ()
    return (
        ConnectorStatus(
            charger_id=charger_id,
            at=at,
            connector=connector,
            status=status,
            error_code=_text(request.get("errorCode")),
            info=_text(request.get("info")),
            vendor_error_code=_text(request.get("vendorErrorCode")),
        ),
    )


def _authorize(
    charger_id: str, at: float, request: JsonDict, response: JsonDict
) -> tuple[Event, ...]:
    id_tag = _text(request.get("idTag"))
    status = _id_tag_status(response)
    if id_tag is None or status is None:
        return ()
    return (
        CardAnswered(
            charger_id=charger_id, at=at, id_tag=id_tag, status=status, during="Authorize"
        ),
    )


def _start(charger_id: str, at: float, request: JsonDict, response: JsonDict) -> tuple[Event, ...]:
    connector = _connector(request.get("connectorId"))
    if connector is None:
        return ()
    id_tag = _text(request.get("idTag"))
    status = _id_tag_status(response)
    started = SessionStarted(
        charger_id=charger_id,
        at=at,
        connector=connector,
        transaction_id=_transaction_id(response.get("transactionId")),
        id_tag=id_tag,
        id_tag_status=status,
        meter_start_wh=_number(request.get("meterStart")),
    )
    if id_tag is None or status is None:
        return (started,)
    card = CardAnswered(
        charger_id=charger_id,
        at=at,
        id_tag=id_tag,
        status=status,
        during="StartTransaction",
        connector=connector,
    )
    return (started, card)


def _stop(charger_id: str, at: float, request: JsonDict, response: JsonDict) -> tuple[Event, ...]:
    return (
        SessionStopped(
            charger_id=charger_id,
            at=at,
            transaction_id=_transaction_id(request.get("transactionId")),
            id_tag=_text(request.get("idTag")),
            meter_stop_wh=_number(request.get("meterStop")),
            reason=_text(request.get("reason")) or "Local",
        ),
    )


def _meter_values(
    charger_id: str, at: float, request: JsonDict, response: JsonDict
) -> tuple[Event, ...]:
    connector = _connector(request.get("connectorId"))
    if connector is None or connector == 0:
        return ()
    entries = request.get("meterValue")
    measurands, values = _samples(entries if isinstance(entries, list) else [])
    current: tuple[float | None, float | None, float | None] | None = None
    if ("current", 0) in values or ("current", 1) in values or ("current", 2) in values:
        current = (
            values.get(("current", 0)),
            values.get(("current", 1)),
            values.get(("current", 2)),
        )
    offered = values.get(("offered", _TOTAL))
    if offered is None:
        offered = max((values[k] for k in _PHASE_KEYS["offered"] if k in values), default=None)
    return (
        Measured(
            charger_id=charger_id,
            at=at,
            connector=connector,
            transaction_id=_transaction_id(request.get("transactionId")),
            current_a=current,
            overall_current_a=values.get(("current", _TOTAL)),
            power_w=_summed(values, "power"),
            energy_wh=_summed(values, "energy"),
            offered_a=offered,
            measurands=tuple(measurands),
        ),
    )


_Reader = Callable[[str, float, JsonDict, JsonDict], tuple[Event, ...]]
_READERS: Final[Mapping[str, _Reader]] = {
    "BootNotification": _boot,
    "StatusNotification": _status,
    "Authorize": _authorize,
    "StartTransaction": _start,
    "StopTransaction": _stop,
    "MeterValues": _meter_values,
}


# ------------------------------------------------------------------ MeterValues


_TOTAL: Final = -1
"""The phase index of a value reported without a phase."""
_PHASE_KEYS: Final = {kind: [(kind, i) for i in range(3)] for kind, _, _ in _MEASURANDS.values()}
_ABSENT: Final = object()
"""A key a sampled value does not have (its unit: the measurand's default)."""
_PLAIN: Final[Mapping[tuple[object, object, object], tuple[str, float, int]]] = {
    (measurand, unit, phase): (kind, scale, index)
    for measurand, (kind, units, default) in _MEASURANDS.items()
    for unit, scale in (*units.items(), (_ABSENT, units[default]))
    for phase, index in (*_PHASE_INDEX.items(), (None, _TOTAL))
}
"""(measurand, unit or :data:`_ABSENT`, phase or None) of a plain sampled value → (kind, scale,
phase index): every usable combination, read in one look-up."""


def _samples(entries: list[Any]) -> tuple[dict[str, None], dict[tuple[str, int], float]]:
    """The measurands seen (in order), and each usable value by (kind, phase index or
    :data:`_TOTAL`), later values winning. This runs for every MeterValues of every charger:
    a sampled value of the common form (no location, context or format: the defaults, a load
    measured now; a known measurand, unit and phase) is read by one look-up in
    :data:`_PLAIN`; any other goes through :func:`_sample`, the full rule (the same result
    for a plain one)."""
    measurands: dict[str, None] = {}
    values: dict[tuple[str, int], float] = {}
    plain, isfinite = _PLAIN, math.isfinite
    for entry in entries:
        items = entry.get("sampledValue") if isinstance(entry, dict) else None
        if not isinstance(items, list):
            continue
        for item in items:
            rule = None
            if (
                item.__class__ is dict
                and "location" not in item
                and "context" not in item
                and "format" not in item
            ):
                measurand = item.get("measurand", DEFAULT_MEASURAND)
                try:
                    rule = plain.get((measurand, item.get("unit", _ABSENT), item.get("phase")))
                except TypeError:  # an unhashable measurand, unit or phase: not plain
                    rule = None
            if rule is None:
                _sample(item, measurands, values)
                continue
            if measurand not in measurands and len(measurands) < _MAX_MEASURANDS:
                measurands[measurand] = None
            value = item.get("value")
            if value.__class__ is str and "_" not in value:
                try:
                    number = float(value)
                except ValueError:
                    continue
            else:
                read = _number(value)
                if read is None:
                    continue
                number = read
            number *= rule[1]
            if isfinite(number):  # finite as written and once in W or Wh ("1e306" kW)
                values[rule[0], rule[2]] = number
    return measurands, values


def _sample(item: Any, measurands: dict[str, None], values: dict[tuple[str, int], float]) -> None:
    """One sampled value read by the full rule: its measurand listed, its value kept in
    ``values`` when it is a usable measurement of now."""
    if not isinstance(item, dict):
        return
    measurand = item.get("measurand", DEFAULT_MEASURAND)
    if not isinstance(measurand, str):
        return
    if measurand not in measurands and len(measurands) < _MAX_MEASURANDS:
        measurands[measurand] = None
    known = _MEASURANDS.get(measurand)
    location = item.get("location", DEFAULT_LOCATION)
    if known is None or not isinstance(location, str) or location not in LOAD_LOCATIONS:
        return
    context = item.get("context", DEFAULT_CONTEXT)
    if not isinstance(context, str) or context not in READING_CONTEXTS:
        return  # not a measurement of now (Alfen's replayed "CurrentMax")
    if item.get("format") == "SignedData":
        return  # a signed blob, not a number
    kind, units, default_unit = known
    unit = item.get("unit", default_unit)
    scale = units.get(unit) if isinstance(unit, str) else None
    number = _number(item.get("value"))
    if scale is None or number is None:
        return
    number *= scale
    if not math.isfinite(number):
        return  # finite as written, not once in W or Wh ("1e306" kW)
    phase = item.get("phase")
    if phase is None:
        values[kind, _TOTAL] = number
    elif isinstance(phase, str) and phase in _PHASE_INDEX:
        values[kind, _PHASE_INDEX[phase]] = number
    # line-to-line and N are not what a load is measured by: skipped


def _summed(values: dict[tuple[str, int], float], kind: str) -> float | None:
    """The total, else the phases added up (None: neither was reported)."""
    total = values.get((kind, _TOTAL))
    if total is not None:
        return total
    phased = [values[k] for k in _PHASE_KEYS[kind] if k in values]
    if not phased:
        return None
    summed = sum(phased)  # not math.fsum: it raises OverflowError where this gives inf
    return summed if math.isfinite(summed) else None


# ------------------------------------------------------------------ tolerant field readers


def _text(value: Any) -> str | None:
    """A string field (anything else: None)."""
    return value if isinstance(value, str) else None


def _id_tag_status(response: JsonDict) -> str | None:
    info = response.get("idTagInfo")
    return _text(info.get("status")) if isinstance(info, dict) else None


def _connector(value: Any) -> int | None:
    """A connector id ≥ 0 (an integer, or a float holding one), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and 0 <= value < 2**31 else None


def _transaction_id(value: Any) -> str | None:
    """A transaction id in decimal (an integer, a float holding one, or decimal digits)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return str(value) if abs(value) < _MAX_TX else None
    if isinstance(value, str):
        digits = value.strip()
        body = digits[1:] if digits[:1] == "-" else digits
        if 0 < len(body) <= _MAX_TX_DIGITS and body.isascii() and body.isdigit():
            return str(int(digits))
    return None


def _number(value: Any) -> float | None:
    """A finite number from a number or a decimal string (OCPP's sampled values are strings;
    Python's ``float`` also reads ``"1_6"`` as 16: not a decimal, refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    if isinstance(value, str) and "_" in value:
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None
