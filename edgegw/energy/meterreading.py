"""One decoded meter reading in SI units (power positive when the site imports), and the error
for words that do not make one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgegw.energy.meterprofile import Quantity


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """One meter reading in SI units; ``None`` means not read, not offered, or invalid.

    Power is positive when the site imports from the grid. ``invalid`` says why a value that
    was read is ``None`` (NaN, "not available" marker ...), so nothing bad is passed on
    silently.
    """

    voltage_l1_v: float | None = None
    voltage_l2_v: float | None = None
    voltage_l3_v: float | None = None
    current_l1_a: float | None = None
    current_l2_a: float | None = None
    current_l3_a: float | None = None
    power_l1_w: float | None = None
    power_l2_w: float | None = None
    power_l3_w: float | None = None
    power_w: float | None = None
    energy_import_wh: float | None = None
    energy_export_wh: float | None = None
    frequency_hz: float | None = None
    invalid: Mapping[Quantity, str] = field(default_factory=dict)

    @classmethod
    def from_values(
        cls,
        values: Mapping[Quantity, float | None],
        invalid: Mapping[Quantity, str] | None = None,
    ) -> Reading:
        """Build a reading from ``{Quantity: value}``."""
        fields: dict[str, Any] = {q.field_name: v for q, v in values.items()}
        return cls(**fields, invalid=dict(invalid or {}))

    def value(self, quantity: Quantity) -> float | None:
        """The value of ``quantity`` in its SI unit (see :attr:`Quantity.dimension`)."""
        number: float | None = getattr(self, quantity.field_name)
        return number

    def values(self) -> dict[Quantity, float]:
        """Every quantity that has a value."""
        found = ((q, self.value(q)) for q in Quantity)
        return {q: v for q, v in found if v is not None}

    @property
    def currents_a(self) -> tuple[float | None, float | None, float | None]:
        """Per-phase currents L1, L2, L3 in A."""
        return (self.current_l1_a, self.current_l2_a, self.current_l3_a)

    def site_currents_a(self, phases: int = 3) -> tuple[float, float, float] | None:
        """The phase currents load capping follows (A, never below 0), or None when one it
        needs is missing or not finite.

        On a single-phase site (``phases`` 1) only L1 is the site's: L2 and L3 count as 0 A
        whatever the meter says (a single-phase meter has none, a three-phase one may
        measure something else there). A three-phase site needs all three.
        """
        needed = self.currents_a[:1] if phases == 1 else self.currents_a
        if any(c is None or not math.isfinite(c) for c in needed):
            return None
        l1, l2, l3 = (max(0.0, float(c or 0.0)) for c in (*needed, 0.0, 0.0)[:3])
        return (l1, l2, l3)

    @property
    def voltages_v(self) -> tuple[float | None, float | None, float | None]:
        """Per-phase voltages to neutral L1, L2, L3 in V."""
        return (self.voltage_l1_v, self.voltage_l2_v, self.voltage_l3_v)

    @property
    def powers_w(self) -> tuple[float | None, float | None, float | None]:
        """Per-phase active power L1, L2, L3 in W, import positive."""
        return (self.power_l1_w, self.power_l2_w, self.power_l3_w)

    def require(self, *quantities: Quantity) -> None:
        """Raise :class:`BadReading` unless every one of ``quantities`` has a value."""
        problems = {q: self.invalid.get(q, "not read") for q in quantities if self.value(q) is None}
        if problems:
            raise BadReading(problems, partial=self)


class BadReading(ValueError):
    """The meter answered, but with values the gateway must not act on.

    ``problems`` maps each bad quantity to the reason; ``partial`` holds the values that were
    fine, for logging or for a caller that can do without the bad ones.
    """

    def __init__(
        self,
        problems: Mapping[Quantity, str],
        partial: Reading | None = None,
        meter: str = "",
    ) -> None:
        self.problems = dict(problems)
        self.partial = partial
        detail = "; ".join(f"{q.value}: {why}" for q, why in self.problems.items())
        prefix = f"meter profile {meter!r}: " if meter else ""
        super().__init__(f"{prefix}bad reading: {detail}")
