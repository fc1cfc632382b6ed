"""Whether a meter's reading may be acted on: sanity limits (NaN, impossible currents, voltages
and powers), a frozen register image, and the health state a poller reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from edgegw.energy.registers import Quantity, Reading

DEFAULT_FROZEN_AFTER: Final = 5.0
"""Seconds of an unchanged register image after which a meter's values count as stale, when
the configuration has no ``[site]`` (with one, its ``meter_lost_after``: the same as the
default here)."""


class FrozenReading(ValueError):
    """The meter keeps returning the very same registers while live values must move."""


@dataclass(frozen=True, slots=True)
class SanityLimits:
    """What a building meter can physically report; anything outside is a bad reading."""

    min_current_a: float = -0.1
    """Slightly below zero tolerates noise around 0 A; real negative currents are rejected."""
    max_current_a: float = 10_000.0
    min_voltage_v: float = 0.0
    """0 V is a lost phase, a real condition the controller must see."""
    max_voltage_v: float = 500.0
    max_frequency_hz: float = 100.0

    @property
    def max_power_w(self) -> float:
        """The most three phases at the highest voltage and current can carry."""
        return 3 * self.max_voltage_v * self.max_current_a


_CURRENTS: Final = (Quantity.CURRENT_L1, Quantity.CURRENT_L2, Quantity.CURRENT_L3)


_VOLTAGES: Final = (Quantity.VOLTAGE_L1, Quantity.VOLTAGE_L2, Quantity.VOLTAGE_L3)


_POWERS: Final = (Quantity.POWER_L1, Quantity.POWER_L2, Quantity.POWER_L3, Quantity.POWER)


_ENERGIES: Final = (Quantity.ENERGY_IMPORT, Quantity.ENERGY_EXPORT)


def implausible(reading: Reading, limits: SanityLimits | None = None) -> dict[Quantity, str]:
    """Values of ``reading`` no meter can report, each with the reason (empty: all fine)."""
    limits = limits or SanityLimits()
    problems: dict[Quantity, str] = {}
    for quantity, value in reading.values().items():
        if not math.isfinite(value):
            problems[quantity] = f"not a finite number ({value})"
        elif quantity in _CURRENTS and not (limits.min_current_a <= value <= limits.max_current_a):
            problems[quantity] = (
                f"{value:g} A is outside {limits.min_current_a:g}..{limits.max_current_a:g} A"
            )
        elif quantity in _VOLTAGES and not (limits.min_voltage_v <= value <= limits.max_voltage_v):
            problems[quantity] = (
                f"{value:g} V is outside {limits.min_voltage_v:g}..{limits.max_voltage_v:g} V"
            )
        elif quantity in _POWERS and abs(value) > limits.max_power_w:
            problems[quantity] = f"{value:g} W exceeds {limits.max_power_w:g} W"
        elif quantity in _ENERGIES and value < 0:
            problems[quantity] = f"{value:g} Wh: an energy counter cannot be negative"
        elif quantity is Quantity.FREQUENCY and not 0 <= value <= limits.max_frequency_hz:
            problems[quantity] = f"{value:g} Hz is outside 0..{limits.max_frequency_hz:g} Hz"
    return problems


def _should_move(reading: Reading) -> bool:
    """Whether a live meter's registers change between reads.

    Voltage and frequency jitter on any live grid, and a current or power above zero makes
    the energy counter advance. A meter offering none of them, with everything at zero, may
    legitimately repeat itself.
    """
    values = reading.values()
    if any(q in values for q in (*_VOLTAGES, Quantity.FREQUENCY)):
        return True
    return any(values.get(q, 0.0) != 0.0 for q in (*_CURRENTS, *_POWERS))


@dataclass(frozen=True, slots=True)
class MeterSample:
    """A valid reading of one meter and how old it is (the poller's monotonic clock)."""

    meter: str
    reading: Reading
    at: float
    """When the meter's registers last changed to these values: a meter that keeps sending
    the same registers (while they should move) does not make its reading any newer."""
    failed_at: float | None = None
    """When a later read of this meter failed or was rejected (None: none since). The
    reading is then only the last valid one: good for a cut, not for a raise."""


class HealthState(StrEnum):
    UNKNOWN = "unknown"
    """Not read yet."""
    OK = "ok"
    """The last read gave a valid reading."""
    STALE = "stale"
    """The meter answers, but its registers stopped moving: the values are old."""
    ERROR = "error"
    """The last read failed or its values were rejected."""


@dataclass(frozen=True, slots=True)
class MeterHealth:
    """How a meter is doing, for the controller, the TUI and the logs."""

    state: HealthState = HealthState.UNKNOWN
    last_error: str | None = None
    """Why the last read failed (None once a read succeeds again; the log keeps the story)."""
    error_kind: str | None = None
    """``timeout``, ``exception``, ``frame``, ``connection``, ``config``, ``bad_reading``,
    ``frozen`` or ``internal`` (a bug, logged with its traceback)."""
    consecutive_failures: int = 0
    last_good_at: float | None = None


SampleListener = Callable[[MeterSample], None]


HealthListener = Callable[[MeterHealth], None]
