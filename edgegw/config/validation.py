"""Checks across sections, and validation errors turned into one line per problem with its
key path.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from edgegw.config.base import _M
from edgegw.config.charger import ChargerConfig
from edgegw.config.circuitmeters import board_meter_problems
from edgegw.config.energy import CircuitConfig, MeterConfig, SiteConfig

_PHASE_NAMES = ("L1", "L2", "L3")


def _circuit_problems(
    circuits: Sequence[CircuitConfig],
    site: SiteConfig | None,
    chargers: Sequence[ChargerConfig] | None,
) -> list[str]:
    """The tree of circuits: names, parents, cycles, limits against the parent's, and the
    chargers' ``circuit``. A circuit's limit above its parent's (or the site's) is refused: it
    could never be reached, so it is almost always a typo (250 for 25)."""
    problems: list[str] = []
    by_name: dict[str, CircuitConfig] = {}
    for i, circuit in enumerate(circuits):
        if circuit.name in by_name:
            problems.append(f"circuits[{i}].name: circuit {circuit.name!r} is listed twice")
        by_name.setdefault(circuit.name, circuit)
    defined = ", ".join(sorted(by_name)) or "none"
    chains: dict[str, list[str]] = {}  # a circuit and the ones above it, where that is sound
    if circuits and site is None:
        problems.append("circuits: circuits need a [site] section (load capping)")
    for i, circuit in enumerate(circuits):
        if circuit.parent is not None and circuit.parent not in by_name:
            problems.append(
                f"circuits[{i}].parent: no circuit named {circuit.parent!r} (defined: {defined})"
            )
            continue
        chain = [circuit.name]
        parent = circuit.parent
        while parent is not None and parent in by_name and parent not in chain:
            chain.append(parent)
            parent = by_name[parent].parent
        if parent is not None and parent in chain:
            problems.append(
                f"circuits[{i}].parent: the circuits form a cycle: " + " -> ".join([*chain, parent])
            )
            continue
        chains[circuit.name] = chain
        if site is None:
            continue
        if site.phases == 1 and isinstance(circuit.limit_a, tuple):
            problems.append(
                f"circuits[{i}].limit_a: a single-phase site (phases = 1) has one phase: give "
                "one number, not [L1, L2, L3]"
            )
        above = by_name[circuit.parent] if circuit.parent is not None else None
        above_limits = site.limits() if above is None else above.limits()
        above_name = "the site's limit_a" if above is None else f"circuit {above.name!r}"
        for phase, (own, theirs) in enumerate(zip(circuit.limits(), above_limits, strict=True)):
            if own > theirs:
                problems.append(
                    f"circuits[{i}].limit_a: {own:g} A on {_PHASE_NAMES[phase]} is above "
                    f"{above_name} ({theirs:g} A), which it hangs on: it could never be "
                    "reached (a typo?); give the board's own fuse"
                )
                break
        if circuit.margin_a is None and site.margin_a >= min(circuit.limits()):
            problems.append(
                f"circuits[{i}].margin_a: the site's margin_a ({site.margin_a:g} A) it "
                "inherits is not below its limit_a: set its own"
            )
    fallback = {name: [0.0, 0.0, 0.0] for name in chains}
    for i, charger in enumerate(chargers or ()):
        if charger.circuit is not None and charger.circuit not in by_name:
            problems.append(
                f"chargers[{i}].circuit: no circuit named {charger.circuit!r} (defined: {defined})"
            )
        for name in chains.get(charger.circuit or "", ()):
            for phase in charger.site_phases():
                fallback[name][phase] += charger.fallback_current_a
    for i, circuit in enumerate(circuits):
        if site is None or circuit.name not in fallback or by_name[circuit.name] is not circuit:
            continue
        room = [limit - circuit.margin(site) for limit in circuit.limits()]
        if min(room) <= 0:
            continue  # its margin is reported above
        for phase, total in enumerate(fallback[circuit.name]):
            if total > room[phase]:
                problems.append(
                    f"circuits[{i}]: the fallback_current_a of the chargers under it adds up to "
                    f"{total:g} A on {_PHASE_NAMES[phase]}, above its limit_a - margin_a "
                    f"({room[phase]:g} A): its fuse could trip while the chargers run on their "
                    "safe profile"
                )
                break
    return problems


def _energy_problems(
    bus_names: Collection[str] | None,
    meters: Sequence[MeterConfig] | None,
    site: SiteConfig | None,
    chargers: Sequence[ChargerConfig] | None,
    circuits: Sequence[CircuitConfig] | None = (),
) -> list[str]:
    """Meters, buses, site, circuits and chargers checked together; ``None`` = not known to be valid
    (the checks that need it are skipped, so a broken section causes no false alarm)."""
    problems: list[str] = []
    if meters is not None and bus_names is not None:
        for i, meter in enumerate(meters):
            if meter.bus not in bus_names:
                problems.append(
                    f"meters[{i}].bus: no [buses.{meter.bus}] section "
                    f"(defined: {', '.join(sorted(bus_names)) or 'none'})"
                )
    site_meters = [m for m in meters or () if m.role == "site"]
    if len(site_meters) > 1:
        problems.append("meters: only one meter may have role = 'site'")
    if site is not None and site.phases == 1:
        for i, charger in enumerate(chargers or ()):
            if charger.site_phases() != (0,):
                default = "" if "phases" in charger.model_fields_set else " (the default)"
                problems.append(
                    f"chargers[{i}].phases: {charger.phases!r}{default} is wired to "
                    f"{'/'.join(f'L{p + 1}' for p in charger.site_phases())}, but the site "
                    'has one phase (site.phases = 1): set phases = "L1"'
                )
    if site is not None:
        if meters is not None and not site_meters:
            problems.append("site: load capping needs a meter with role = 'site'")
        limits = site.limits()
        fallback = [0.0, 0.0, 0.0]
        for charger in chargers or ():
            for phase in charger.site_phases():
                fallback[phase] += charger.fallback_current_a
        for phase, (total, limit) in enumerate(zip(fallback, limits, strict=True), 1):
            if chargers is not None and total > limit - site.margin_a:
                problems.append(
                    f"chargers: fallback_current_a adds up to {total:g} A on L{phase}, above "
                    f"limit_a - margin_a ({limit - site.margin_a:g} A): the main fuse "
                    "could trip while the meter is lost"
                )
    if circuits is not None:
        problems += _circuit_problems(circuits, site, chargers)
        problems += board_meter_problems(circuits, meters, site)
    return problems


def _valid_items(raw: Any, model: type[_M], context: Mapping[str, Any]) -> list[_M] | None:
    """Every item of a TOML array validated alone; ``None`` unless all of them are valid."""
    if not isinstance(raw, list):
        return None
    parsed: list[_M] = []
    for item in raw:
        try:
            parsed.append(model.model_validate(item, context=context))
        except ValidationError:
            return None
    return parsed


def _cross_section_problems(data: Mapping[str, Any], context: Mapping[str, Any]) -> list[str]:
    """The whole-file checks, run on the sections that are valid on their own.

    pydantic runs a model validator only once every field is valid, so a typo in [server]
    would hide a meter that points at a missing bus until the typo is fixed: the installer
    would fix the file in several rounds instead of one.
    """
    problems: list[str] = []
    raw_chargers = data.get("chargers", [])
    seen: set[str] = set()
    for item in raw_chargers if isinstance(raw_chargers, list) else ():
        charger_id = item.get("id") if isinstance(item, Mapping) else None
        if isinstance(charger_id, str):
            if charger_id.lower() in seen:
                problems.append(f"chargers: charger id {charger_id!r} is listed twice")
            seen.add(charger_id.lower())
    buses = data.get("buses", {})
    site: SiteConfig | None = None
    if "site" in data:
        try:
            site = SiteConfig.model_validate(data["site"], context=context)
        except ValidationError:
            site = None
    problems += _energy_problems(
        list(buses) if isinstance(buses, Mapping) else None,
        _valid_items(data.get("meters", []), MeterConfig, context),
        site,
        _valid_items(raw_chargers, ChargerConfig, context),
        _valid_items(data.get("circuits", []), CircuitConfig, context),
    )
    return problems


def _format_location(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before", "function-wrap"):
            continue
        elif "[" in part or part in ("str", "SecretFile", "SecretCredential"):
            continue  # pydantic union branch names, not keys
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _problems(error: ValidationError) -> list[str]:
    problems: list[str] = []
    for item in error.errors(include_url=False):
        where = _format_location(tuple(item["loc"]))
        message = item["msg"].removeprefix("Value error, ")
        if where == "(top level)":  # whole-file checks name their own sections
            problems.extend(p for p in message.split("\n") if p not in problems)
            continue
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see the configuration reference)"
        elif item["type"] == "missing":
            message = "required key is missing"
        line = f"{where}: {message}"
        if line not in problems:
            problems.append(line)
    return problems
