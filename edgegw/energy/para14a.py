"""§14a EnWG: the power a German grid operator must leave to dimmed controllable chargers.

Pure arithmetic, no I/O. Under § 14a EnWG a distribution grid operator may *dim* controllable
consumption devices (steuerbare Verbrauchseinrichtungen, "steuVE": non-public charging points,
heat pumps, storage) while a control signal holds, but never below a guaranteed minimum. The
rules are the Federal Network Agency's determination **BNetzA BK6-22-300** of 27 November 2023
(in force 1 January 2024), Anlage 1:

* one steuVE keeps at least **4.2 kW** (``STEP_KW``) of grid draw while dimmed;
* where several steuVE behind one connection are dimmed through an energy management system
  (the gateway is one: the grid operator signals the site, the gateway shares the power), the
  minimum for all of them together is

      P_min,14a = 4.2 kW + (n - 1) x GZF(n) x 4.2 kW

  with the simultaneity factor (Gleichzeitigkeitsfaktor) GZF from the determination's table:
  n = 2: 0.80, 3: 0.75, 4: 0.70, 5: 0.65, 6: 0.60, 7: 0.55, 8: 0.50, 9 or more: 0.45.

  Worked example (two 11 kW charging points): 4.2 + 1 x 0.8 x 4.2 = 7.56 kW, as quoted from
  the determination in Tinkerforge/esp32-firmware issue #407. VERIFY: the factors for n ≥ 3
  are taken from the determination's table as summarised by grid operators' guides; check
  them against the published text of BK6-22-300 before relying on a count above two.

The gateway dims to this minimum, not below it: :func:`limit_a` turns it into amperes per
phase at the nominal voltage, rounded *down* to 0.01 A (the grid operator may require that the
chargers draw no more than the minimum; the chargers keep at least the minimum less that
rounding). Heat pumps above 11 kW have their own rule (0.4 x rated power); the gateway
dims chargers only.
"""

from __future__ import annotations

import math

STEP_KW = 4.2
"""What one dimmed steuVE keeps (kW), BK6-22-300 Anlage 1."""

_FACTORS = {2: 0.80, 3: 0.75, 4: 0.70, 5: 0.65, 6: 0.60, 7: 0.55, 8: 0.50}
"""The simultaneity factor by the number of steuVE; 9 or more: ``_MANY``."""
_MANY = 0.45

NOMINAL_VOLTAGE_V = 230.0


def simultaneity_factor(n: int) -> float:
    """GZF(n) for ``n`` steuVE dimmed together (1.0 for one)."""
    if n < 1:
        raise ValueError("§14a needs at least one controllable device")
    if n == 1:
        return 1.0
    return _FACTORS.get(n, _MANY)


def minimum_power_kw(n: int) -> float:
    """P_min,14a (kW) for ``n`` chargers dimmed together through the gateway."""
    return STEP_KW + (n - 1) * simultaneity_factor(n) * STEP_KW


def limit_a(n: int, *, phases: int = 3, voltage_v: float = NOMINAL_VOLTAGE_V) -> float:
    """P_min,14a as a limit per phase (A) for chargers wired on ``phases`` phases at
    ``voltage_v`` (phase to neutral), rounded down to 0.01 A."""
    if phases not in (1, 3):
        raise ValueError("phases must be 1 or 3")
    if not math.isfinite(voltage_v) or voltage_v <= 0:
        raise ValueError("voltage_v must be a positive number")
    amps = minimum_power_kw(n) * 1000.0 / (phases * voltage_v)
    return math.floor(amps * 100.0 + 1e-9) / 100.0


def granted_kw(
    limit_per_phase_a: float, *, phases: int = 3, voltage_v: float = NOMINAL_VOLTAGE_V
) -> float:
    """The power (kW) a limit per phase grants at the nominal voltage (for the activation log)."""
    return limit_per_phase_a * phases * voltage_v / 1000.0
