"""Checks of the boards' own meters across sections: ``[[circuits]] meter`` against
``[[meters]]``, and a board's fallback budget against its limit."""

from __future__ import annotations

from collections.abc import Sequence

from edgegw.config.energy import CircuitConfig, MeterConfig, SiteConfig

_PHASE_NAMES = ("L1", "L2", "L3")


def board_meter_problems(
    circuits: Sequence[CircuitConfig],
    meters: Sequence[MeterConfig] | None,
    site: SiteConfig | None,
) -> list[str]:
    """One line per problem, naming its key. ``meters`` None: that section is not valid on its
    own (the checks that need it are skipped)."""
    problems: list[str] = []
    by_name = {m.name: m for m in meters or ()}
    named_by: dict[str, int] = {}
    for i, circuit in enumerate(circuits):
        if circuit.meter is None:
            continue
        if circuit.meter in named_by:
            problems.append(
                f"circuits[{i}].meter: meter {circuit.meter!r} already measures "
                f"circuits[{named_by[circuit.meter]}]: each board needs a meter of its own"
            )
        named_by.setdefault(circuit.meter, i)
        if site is not None:
            problems += _fallback_problems(i, circuit, site)
        if meters is None:
            continue
        meter = by_name.get(circuit.meter)
        if meter is None:
            defined = ", ".join(sorted(by_name)) or "none"
            problems.append(
                f"circuits[{i}].meter: no [[meters]] entry named {circuit.meter!r} "
                f"(defined: {defined})"
            )
        elif meter.role != "circuit":
            problems.append(
                f"circuits[{i}].meter: meter {circuit.meter!r} has role = {meter.role!r}; a "
                "board's meter needs role = 'circuit' (the site meter measures the whole site, "
                "a monitor is only shown)"
            )
    for i, meter in enumerate(meters or ()):
        if meter.role == "circuit" and meter.name not in named_by:
            problems.append(
                f"meters[{i}].role: meter {meter.name!r} has role = 'circuit' but no "
                "[[circuits]] entry names it (meter = "
                f"{meter.name!r}): load capping would not follow it; name it or use "
                "role = 'monitor'"
            )
    return problems


def _fallback_problems(i: int, circuit: CircuitConfig, site: SiteConfig) -> list[str]:
    fallback = circuit.fallback()
    if fallback is None:
        return []
    if site.phases == 1 and isinstance(circuit.fallback_ev_a, tuple):
        return [
            f"circuits[{i}].fallback_ev_a: a single-phase site (phases = 1) has one phase: give "
            "one number, not [L1, L2, L3]"
        ]
    margin = circuit.margin(site)
    for phase, (ev, limit) in enumerate(zip(fallback, circuit.limits(), strict=True)):
        if ev > limit - margin:
            return [
                f"circuits[{i}].fallback_ev_a: {ev:g} A on {_PHASE_NAMES[phase]} is above its "
                f"limit_a - margin_a ({limit - margin:g} A): the board's fuse could trip while "
                "its meter is lost"
            ]
    return []
