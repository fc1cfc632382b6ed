"""Limits from outside the configuration: ``[[limits]]`` (a signal that lowers the site or a
circuit while it holds, §14a EnWG among them) and ``[peak]`` (capacity-peak shaving)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from edgegw.config.base import _Model
from edgegw.config.charger import ChargerConfig
from edgegw.config.energy import CircuitConfig, SiteConfig


class LimitConfig(_Model):
    """A signal from outside (a grid operator's control box, a building system) that lowers the
    site or a circuit while it is active. The last state read holds while a source cannot be
    read, and an activation survives a restart until the source is read again."""

    name: str = Field(min_length=1, description="Its name in logs, the activation log, views.")
    source: Literal["modbus", "gpio", "mqtt"] = Field(
        description="'modbus': a register read like a meter, or a relay's coil or discrete "
        "input; 'gpio': a GPIO input's value "
        "file (sysfs); 'mqtt': a topic on the [mqtt] broker."
    )
    circuit: str | None = Field(
        default=None, description="The [[circuits]] entry it lowers; unset: the site."
    )
    limit_a: float | tuple[float, float, float] | None = Field(
        default=None, ge=0, description="The limit per phase while active (A)."
    )
    para14a: bool = Field(
        default=False,
        description="§14a EnWG: while active the circuit's chargers share the minimum the "
        "regulation guarantees (4.2 kW + (n - 1) x simultaneity factor x 4.2 kW); every "
        "activation is logged and kept two years.",
    )
    controllable: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="§14a: the number of controllable chargers n; unset: those under the circuit.",
    )
    voltage_v: float = Field(
        default=230.0, ge=100, le=300, description="§14a: nominal voltage for kW to A (V)."
    )
    poll_interval: float = Field(
        default=1.0, gt=0, le=60, description="modbus and gpio: seconds between reads."
    )
    bus: str | None = Field(default=None, description="modbus: the [buses.<name>] it is on.")
    unit_id: int = Field(default=1, ge=0, le=247, description="modbus: unit (slave) id.")
    address: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="modbus: the register's, coil's or input's address.",
    )
    function_code: Literal[1, 2, 3, 4] = Field(
        default=3,
        description="modbus: 1 (coil), 2 (discrete input), 3 (holding register) or 4 (input "
        "register).",
    )
    active_value: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="modbus: the value meaning active; unset: any but 0 (a coil or input: 1 "
        "or 0, 0 for a normally-closed contact).",
    )
    path: Path | None = Field(
        default=None, description="gpio: the input's value file, e.g. /sys/class/gpio/gpio17/value."
    )
    active_low: bool = Field(default=False, description="gpio: active when the value is 0.")
    topic: str | None = Field(
        default=None,
        description="mqtt: the topic; payload 1/0, true/false, on/off, or a JSON object with "
        "'active'. Retained messages count (a state, not a command).",
    )

    @field_validator("topic")
    @classmethod
    def _plain_topic(cls, topic: str | None) -> str | None:
        if topic is not None and (not topic or "+" in topic or "#" in topic):
            raise ValueError("give one topic, without the wildcards + and #")
        return topic

    @model_validator(mode="after")
    def _consistent(self) -> LimitConfig:
        if self.para14a == (self.limit_a is not None):
            raise ValueError("give either limit_a or para14a = true")
        if self.controllable is not None and not self.para14a:
            raise ValueError("controllable: only with para14a = true")
        if self.para14a and self.circuit is None:
            raise ValueError(
                "para14a: name the circuit of the controllable chargers (circuit = '...'): §14a "
                "dims only them, and a circuit without a meter counts only its chargers; at the "
                "site the building's own load would eat into the chargers' minimum"
            )
        needs = {"modbus": ("bus", "address"), "gpio": ("path",), "mqtt": ("topic",)}
        missing = [key for key in needs[self.source] if getattr(self, key) is None]
        if missing:
            raise ValueError(f"a {self.source!r} limit needs {' and '.join(missing)}")
        return self

    def limits(self) -> tuple[float, float, float] | None:
        value = self.limit_a
        if value is None:
            return None
        if isinstance(value, int | float):
            return (float(value), float(value), float(value))
        return value


class PeakConfig(_Model):
    """``[peak]``: keep the 15-minute average of grid import under a monthly target."""

    target_kw: float = Field(gt=0, le=100_000, description="Monthly peak target (kW).")
    margin_kw: float = Field(
        default=0.5, ge=0, le=1000, description="Aimed below the target, for the meter's lag (kW)."
    )
    voltage_v: float = Field(default=230.0, ge=100, le=300, description="Nominal voltage (V).")
    timezone: str = Field(
        default="UTC", description="Time zone of the tariff's calendar month (IANA name)."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {name!r} (an IANA name, e.g. Europe/Brussels)"
            ) from None
        return name


def limit_problems(
    limits: Sequence[LimitConfig],
    peak: PeakConfig | None,
    *,
    site: SiteConfig | None,
    circuits: Sequence[CircuitConfig] | None,
    chargers: Sequence[ChargerConfig] | None,
    bus_names: Collection[str] | None,
    mqtt: bool,
) -> list[str]:
    """``[[limits]]`` and ``[peak]`` against the rest of the file."""
    problems: list[str] = []
    if (limits or peak is not None) and site is None:
        problems.append("limits: external limits and [peak] need a [site] section (load capping)")
    if peak is not None and site is not None and site.meter_role != "grid":
        problems.append(
            "peak: peak shaving follows the grid import: it needs the site meter at the grid "
            "connection (site.meter_role = 'grid')"
        )
    names: set[str] = set()
    known = None if circuits is None else {c.name for c in circuits}
    for i, limit in enumerate(limits):
        where = f"limits[{i}]"
        if limit.name in names:
            problems.append(f"{where}.name: {limit.name!r} is listed twice")
        names.add(limit.name)
        if limit.circuit is not None and known is not None and limit.circuit not in known:
            defined = ", ".join(sorted(known)) or "none"
            problems.append(
                f"{where}.circuit: no circuit named {limit.circuit!r} (defined: {defined})"
            )
        if limit.bus is not None and bus_names is not None and limit.bus not in bus_names:
            defined = ", ".join(sorted(bus_names)) or "none"
            problems.append(f"{where}.bus: no [buses.{limit.bus}] section (defined: {defined})")
        if limit.source == "mqtt" and not mqtt:
            problems.append(f"{where}.source: an 'mqtt' limit needs the [mqtt] section's broker")
        if (
            limit.para14a
            and limit.controllable is None
            and circuits is not None
            and chargers is not None
            and limit.circuit is not None
            and not chargers_under(limit.circuit, circuits, chargers)
        ):
            problems.append(f"{where}.circuit: no charger is under {limit.circuit!r} to dim")
    return problems


def chargers_under(
    circuit: str, circuits: Sequence[CircuitConfig], chargers: Sequence[ChargerConfig]
) -> list[str]:
    """The ids of the chargers on ``circuit`` or on a circuit below it."""
    parents = {c.name: c.parent for c in circuits}
    found = []
    for charger in chargers:
        node = charger.circuit
        seen: set[str] = set()
        while node is not None and node not in seen:
            if node == circuit:
                found.append(charger.id)
                break
            seen.add(node)
            node = parents.get(node)
    return found
