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
phase at the nominal voltage, rounded *up* to 0.1 A, an OCPP limit's step (the operator may
reduce to no less than the minimum; giving more is always allowed). :func:`phase_limits_a`
sizes it from the phases the chargers are wired to: each charger on k phases must be able to
take the whole minimum alone, so each of its phases gets at least P_min / (k x V).
Three-phase chargers alone get P_min / 3V per phase; single-phase chargers get P_min / V on
their phase (spread over several phases they may together draw more than the minimum:
allowed); as each car's share is rounded down to 0.1 A, a phase gets 0.1 A more per further
charger on it. Heat pumps above 11 kW have their own rule (0.4 x rated power); the gateway
dims chargers only.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

STEP_KW = 4.2
"""What one dimmed steuVE keeps (kW), BK6-22-300 Anlage 1."""

_FACTORS = {2: 0.80, 3: 0.75, 4: 0.70, 5: 0.65, 6: 0.60, 7: 0.55, 8: 0.50}
"""The simultaneity factor by the number of steuVE; 9 or more: ``_MANY``."""
_MANY = 0.45

NOMINAL_VOLTAGE_V = 230.0

STEP_A = 0.1
"""An OCPP limit's step (1 / 10 A): what the gateway gives a charger is rounded down to it."""


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
    ``voltage_v`` (phase to neutral), rounded up to 0.1 A (an OCPP limit's step)."""
    if phases not in (1, 3):
        raise ValueError("phases must be 1 or 3")
    if not math.isfinite(voltage_v) or voltage_v <= 0:
        raise ValueError("voltage_v must be a positive number")
    return _up(minimum_power_kw(n) * 1000.0 / (phases * voltage_v))


def _up(amps: float) -> float:
    return math.ceil(amps / STEP_A - 1e-6) / 10.0


def phase_limits_a(
    n: int, wiring: Sequence[Collection[int]], *, voltage_v: float = NOMINAL_VOLTAGE_V
) -> tuple[float, float, float]:
    """P_min,14a as a limit per site phase (A) for chargers wired to ``wiring`` (each one's
    site phases, 0 = L1; see the module's text), rounded up to 0.1 A; 0 on a phase no charger
    uses."""
    if not math.isfinite(voltage_v) or voltage_v <= 0:
        raise ValueError("voltage_v must be a positive number")
    power_w = minimum_power_kw(n) * 1000.0
    out = [0.0, 0.0, 0.0]
    sharing = [0, 0, 0]
    for phases in wiring:
        if not phases or any(p not in (0, 1, 2) for p in phases):
            raise ValueError("a charger's phases must be some of 0, 1, 2 (L1, L2, L3)")
        for p in phases:
            out[p] = max(out[p], _up(power_w / (len(phases) * voltage_v)))
            sharing[p] += 1
    # each car's share is rounded down to 0.1 A: 0.1 A more per further charger on a phase
    return (
        round(out[0] + STEP_A * max(0, sharing[0] - 1), 1),
        round(out[1] + STEP_A * max(0, sharing[1] - 1), 1),
        round(out[2] + STEP_A * max(0, sharing[2] - 1), 1),
    )


def granted_kw(
    limit_per_phase_a: float, *, phases: int = 3, voltage_v: float = NOMINAL_VOLTAGE_V
) -> float:
    """The power (kW) a limit per phase grants at the nominal voltage (for the activation log)."""
    return limit_per_phase_a * phases * voltage_v / 1000.0
