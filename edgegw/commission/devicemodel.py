"""An OCPP 2.0.1 charger's device model, read from its NotifyReport calls, into what
``chargers probe`` shows (the 2.0.1 twin of
:func:`edgegw.commission.probe.summarize_configuration`).

A 2.0.1 station has no configuration keys: asked ``GetBaseReport`` (``FullInventory``), it
sends its components and variables in one or more ``NotifyReport`` calls (``requestId`` as
asked, ``seqNo`` from 0, ``tbc`` true until the last). :func:`read_reports` puts them back
together (in ``seqNo`` order, whatever order they came in) and :func:`summarize_device_model`
reads the variables the gateway cares about, from OCPP 2.0.1 Part 2, appendix 3 (the
standardized components and variables), into the same summary a 1.6 probe gives:

- ``SmartChargingCtrlr``: ``Available``/``Enabled`` (smart charging supported),
  ``RateUnit`` (``A``, ``W``), ``PeriodsPerSchedule``, ``Entries`` of instance
  ``ChargingProfiles`` (its ``maxLimit``: profiles it can hold), ``ProfileStackLevel``,
  ``Phases3to1`` (phase switching);
- ``LocalAuthListCtrlr``: ``Available``, ``Enabled``, ``Entries`` (``maxLimit``: list size),
  ``ItemsPerMessage`` (entries per SendLocalList);
- ``SampledDataCtrlr``: ``TxUpdatedMeasurands``, ``TxUpdatedInterval`` (what 2.0.1 sends during
  a transaction, where 1.6 had ``MeterValuesSampledData`` and ``MeterValueSampleInterval``);
- ``OCPPCommCtrlr.HeartbeatInterval``; ``ChargingStation.PhaseRotation``;
- the ``EVSE`` components (one per EVSE id) and ``Connector`` components (per EVSE and
  connector id): their count, and each EVSE's ``Power`` ``maxLimit`` and ``SupplyPhases``.

A value is the ``Actual`` attribute's (the one a variable has when no type is named); a limit
is the variable's ``variableCharacteristics.maxLimit``. Pure and total: a malformed entry is
skipped, never raised on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]

CURRENT = "Current.Import"


@dataclass(frozen=True, slots=True)
class Variable:
    """One reported variable of one component (``evse``/``connector``: where it sits)."""

    component: str
    name: str
    component_instance: str | None = None
    instance: str | None = None
    evse: int | None = None
    connector: int | None = None
    actual: str | None = None
    mutability: str | None = None
    max_limit: float | None = None
    unit: str | None = None
    values_list: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceModel:
    variables: tuple[Variable, ...] = ()
    complete: bool = False
    """The last part (``tbc`` false) and every part before it arrived."""
    parts: int = 0
    skipped: int = 0
    """Report entries that could not be read."""
    index: dict[tuple[str, str, str | None], Variable] = field(
        default_factory=dict, compare=False, repr=False
    )

    def get(self, component: str, name: str, instance: str | None = None) -> Variable | None:
        """The station-level variable (not one of an EVSE or connector)."""
        return self.index.get((component, name, instance))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _variable(entry: Any) -> Variable | None:
    if not isinstance(entry, Mapping):
        return None
    component, variable = entry.get("component"), entry.get("variable")
    if not isinstance(component, Mapping) or not isinstance(variable, Mapping):
        return None
    component_name, name = _text(component.get("name")), _text(variable.get("name"))
    if component_name is None or name is None:
        return None
    evse = component.get("evse")
    evse = evse if isinstance(evse, Mapping) else {}
    attributes = entry.get("variableAttribute")
    actual = None
    mutability = None
    for attribute in attributes if isinstance(attributes, list) else ():
        if isinstance(attribute, Mapping) and attribute.get("type", "Actual") == "Actual":
            actual = _text(attribute.get("value"))
            mutability = _text(attribute.get("mutability"))
            break
    characteristics = entry.get("variableCharacteristics")
    characteristics = characteristics if isinstance(characteristics, Mapping) else {}
    return Variable(
        component=component_name,
        name=name,
        component_instance=_text(component.get("instance")),
        instance=_text(variable.get("instance")),
        evse=_int(evse.get("id")),
        connector=_int(evse.get("connectorId")),
        actual=actual,
        mutability=mutability,
        max_limit=_number(characteristics.get("maxLimit")),
        unit=_text(characteristics.get("unit")),
        values_list=_text(characteristics.get("valuesList")),
    )


def read_reports(reports: Iterable[Mapping[str, Any]], request_id: int) -> DeviceModel:
    """The device model in the NotifyReport payloads of ``request_id`` (others are ignored)."""
    parts: dict[int, Mapping[str, Any]] = {}
    for report in reports:
        seq = _int(report.get("seqNo"))
        if report.get("requestId") == request_id and seq is not None and seq >= 0:
            parts[seq] = report
    variables: list[Variable] = []
    skipped = 0
    last = None
    for seq in sorted(parts):
        part = parts[seq]
        if part.get("tbc") is not True:
            last = seq
        data = part.get("reportData")
        for entry in data if isinstance(data, list) else ():
            read = _variable(entry)
            if read is None:
                skipped += 1
            else:
                variables.append(read)
    complete = last is not None and sorted(parts) == list(range(last + 1))
    index = {
        (v.component, v.name, v.instance): v
        for v in variables
        if v.evse is None and v.component_instance is None
    }
    return DeviceModel(tuple(variables), complete, len(parts), skipped, index)


def _words(value: str | None) -> list[str]:
    return [w.strip() for w in (value or "").split(",") if w.strip()]


def _bool(variable: Variable | None) -> bool | None:
    text = (variable.actual or "").strip().lower() if variable is not None else ""
    return True if text == "true" else False if text == "false" else None


def _int_value(variable: Variable | None) -> int | None:
    if variable is None or variable.actual is None:
        return None
    try:
        return int(variable.actual.strip())
    except ValueError:
        return None


def _limit(variable: Variable | None) -> int | None:
    if variable is None or variable.max_limit is None:
        return None
    return int(variable.max_limit)


def _available(model: DeviceModel, component: str) -> bool | None:
    """``Available`` says the feature exists; a reported ``Enabled`` implies it does."""
    available = _bool(model.get(component, "Available"))
    if available is None and model.get(component, "Enabled") is not None:
        return True
    return available


def summarize_device_model(model: DeviceModel) -> JsonDict:
    """What the gateway cares about in a 2.0.1 device model (None: not reported), in the shape
    of a 1.6 probe's summary."""
    sc = "SmartChargingCtrlr"
    units: list[str] = []
    for item in _words((model.get(sc, "RateUnit") or Variable(sc, "RateUnit")).actual):
        unit = {"a": "A", "w": "W"}.get(item.lower())
        if unit is not None and unit not in units:
            units.append(unit)
    sampled = model.get("SampledDataCtrlr", "TxUpdatedMeasurands")
    measurands = None if sampled is None or sampled.actual is None else _words(sampled.actual)
    stack = model.get(sc, "ProfileStackLevel")
    evses = sorted(
        {v.evse for v in model.variables if v.component == "EVSE" and v.evse is not None}
    )
    connectors = {
        (v.evse, v.connector)
        for v in model.variables
        if v.component == "Connector" and v.evse is not None
    }

    def evse_value(evse: int, name: str) -> Variable | None:
        return next(
            (
                v
                for v in model.variables
                if v.component == "EVSE" and v.evse == evse and v.name == name
            ),
            None,
        )

    return {
        "smart_charging": {
            "supported": _available(model, sc),
            "enabled": _bool(model.get(sc, "Enabled")),
            "max_stack_level": _int_value(stack) if stack and stack.actual else _limit(stack),
            "rate_units": units,
            "max_periods": _int_value(model.get(sc, "PeriodsPerSchedule")),
            "max_profiles": _limit(model.get(sc, "Entries", "ChargingProfiles")),
            "phase_switching": _bool(model.get(sc, "Phases3to1")),
        },
        "local_list": {
            "supported": _available(model, "LocalAuthListCtrlr"),
            "enabled": _bool(model.get("LocalAuthListCtrlr", "Enabled")),
            "max_length": _limit(model.get("LocalAuthListCtrlr", "Entries")),
            "send_max_length": _int_value(model.get("LocalAuthListCtrlr", "ItemsPerMessage")),
        },
        "meter_values": {
            "sampled_data": measurands,
            "sample_interval_s": _int_value(model.get("SampledDataCtrlr", "TxUpdatedInterval")),
            "samples_current": None if measurands is None else CURRENT in measurands,
        },
        "evses": [
            {
                "evse": evse,
                "connectors": sorted(c for e, c in connectors if e == evse and c is not None),
                "max_power_w": (evse_value(evse, "Power") or Variable("EVSE", "Power")).max_limit,
                "supply_phases": _int_value(evse_value(evse, "SupplyPhases")),
            }
            for evse in evses
        ],
        "connectors": len(connectors) or len(evses) or None,
        "phase_rotation": (
            model.get("ChargingStation", "PhaseRotation") or Variable("", "")
        ).actual,
        "heartbeat_interval_s": _int_value(model.get("OCPPCommCtrlr", "HeartbeatInterval")),
        "report": {"parts": model.parts, "complete": model.complete, "skipped": model.skipped},
    }


def missing_variables(model: DeviceModel) -> list[str]:
    """Variables the gateway relies on that the station did not report (``Component.Name``)."""
    wanted = [
        ("SampledDataCtrlr", "TxUpdatedMeasurands"),
        ("SampledDataCtrlr", "TxUpdatedInterval"),
        ("OCPPCommCtrlr", "HeartbeatInterval"),
    ]
    if _available(model, "SmartChargingCtrlr"):
        wanted += [
            ("SmartChargingCtrlr", "RateUnit"),
            ("SmartChargingCtrlr", "PeriodsPerSchedule"),
            ("SmartChargingCtrlr", "ProfileStackLevel"),
        ]
    if _available(model, "LocalAuthListCtrlr"):
        wanted += [("LocalAuthListCtrlr", "Entries"), ("LocalAuthListCtrlr", "ItemsPerMessage")]
    return [f"{c}.{n}" for c, n in wanted if model.get(c, n) is None]


def rows(model: DeviceModel) -> list[JsonDict]:
    """Every variable as a row for the probe's record (``keys`` of a 1.6 probe)."""
    out = []
    for v in model.variables:
        where = v.component + (f"[{v.component_instance}]" if v.component_instance else "")
        if v.evse is not None:
            where += f"@evse{v.evse}" + (f".{v.connector}" if v.connector is not None else "")
        name = v.name + (f"[{v.instance}]" if v.instance else "")
        secret = "password" in v.name.lower() and v.actual
        out.append(
            {
                "variable": f"{where}.{name}",
                "value": "(hidden)" if secret else v.actual,
                "readonly": v.mutability == "ReadOnly",
                "max_limit": v.max_limit,
            }
        )
    return out
