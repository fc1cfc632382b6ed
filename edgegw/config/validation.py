"""Checks across sections, and validation errors turned into one line per problem with its
key path.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from edgegw.config.base import _M
from edgegw.config.charger import ChargerConfig
from edgegw.config.energy import MeterConfig, SiteConfig


def _energy_problems(
    bus_names: Collection[str] | None,
    meters: Sequence[MeterConfig] | None,
    site: SiteConfig | None,
    chargers: Sequence[ChargerConfig] | None,
) -> list[str]:
    """Meters, buses, site and chargers checked together; ``None`` = not known to be valid
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
