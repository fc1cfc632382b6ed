"""A charger's configuration keys read into what the gateway cares about, and which
``hardware/chargers/`` profile fits it (the ``chargers.probe`` op).

A BootNotification's vendor and model name the charger; its GetConfiguration keys say what it
can do (feature profiles, smart-charging limits, local-list sizes, measurands). The probe
puts both side by side, so an installer sees whether the shipped profile the gateway would
use agrees with what this charger, at this firmware, says about itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from edgegw.energy.chargermodels import DEFAULT_MODEL_ID, ChargerModel
from edgegw.energy.sampling import (
    MAX_LENGTH,
    SAMPLE_INTERVAL,
    SAMPLED_DATA,
    WANTED,
    ConfigEntry,
    comma_list,
    int_value,
)

JsonDict = dict[str, Any]

CURRENT: Final = WANTED[0]
"""``Current.Import``: what load capping needs most of a charger's meter values."""


def key_value(keys: Mapping[str, ConfigEntry], name: str) -> str | None:
    """The value of the key ``name`` (None: not reported, or reported without a value)."""
    entry = keys.get(name)
    return None if entry is None else entry.value


def _bool(value: str | None) -> bool | None:
    text = (value or "").strip().lower()
    return True if text == "true" else False if text == "false" else None


def summarize_configuration(keys: Mapping[str, ConfigEntry]) -> JsonDict:
    """What the gateway cares about in a charger's configuration keys (None: not reported)."""
    features = comma_list(key_value(keys, "SupportedFeatureProfiles"))
    units_raw = key_value(keys, "ChargingScheduleAllowedChargingRateUnit")
    units: list[str] = []
    for item in comma_list(units_raw):
        unit = {"current": "A", "a": "A", "power": "W", "w": "W"}.get(item.lower())
        if unit is not None and unit not in units:
            units.append(unit)
    sampled = key_value(keys, SAMPLED_DATA)
    return {
        "feature_profiles": features,
        "smart_charging": {
            "supported": "SmartCharging" in features if features else None,
            "max_stack_level": int_value(key_value(keys, "ChargeProfileMaxStackLevel")),
            "rate_units": units,
            "rate_units_raw": units_raw,
            "max_periods": int_value(key_value(keys, "ChargingScheduleMaxPeriods")),
            "max_profiles": int_value(key_value(keys, "MaxChargingProfilesInstalled")),
            "phase_switching": _bool(key_value(keys, "ConnectorSwitch3to1PhaseSupported")),
        },
        "local_list": {
            "supported": "LocalAuthListManagement" in features if features else None,
            "enabled": _bool(key_value(keys, "LocalAuthListEnabled")),
            "max_length": int_value(key_value(keys, "LocalAuthListMaxLength")),
            "send_max_length": int_value(key_value(keys, "SendLocalListMaxLength")),
        },
        "meter_values": {
            "sampled_data": None if sampled is None else comma_list(sampled),
            "sampled_data_max_length": int_value(key_value(keys, MAX_LENGTH)),
            "sample_interval_s": int_value(key_value(keys, SAMPLE_INTERVAL)),
            "samples_current": None if sampled is None else CURRENT in comma_list(sampled),
        },
        "connectors": int_value(key_value(keys, "NumberOfConnectors")),
        "phase_rotation": key_value(keys, "ConnectorPhaseRotation"),
        "heartbeat_interval_s": int_value(key_value(keys, "HeartbeatInterval")),
    }


def missing_keys(keys: Mapping[str, ConfigEntry], features: list[str]) -> list[str]:
    """Keys the charger's own feature profiles oblige it to report, but it did not."""
    required = ["NumberOfConnectors", SAMPLED_DATA, SAMPLE_INTERVAL, "HeartbeatInterval"]
    if "SmartCharging" in features:
        required += [
            "ChargeProfileMaxStackLevel",
            "ChargingScheduleAllowedChargingRateUnit",
            "ChargingScheduleMaxPeriods",
            "MaxChargingProfilesInstalled",
        ]
    if "LocalAuthListManagement" in features:
        required += ["LocalAuthListMaxLength", "SendLocalListMaxLength"]
    if not features:
        required.append("SupportedFeatureProfiles")
    return [k for k in required if k not in keys]


# --------------------------------------------------------------------------------------------
# Which hardware profile fits


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", text.casefold()) if w]


@dataclass(frozen=True, slots=True)
class ProfileMatch:
    """The ``hardware/chargers/`` model that fits a charger's vendor and model, if any.

    ``how`` is ``product`` (the vendor and a product's family words match), ``vendor`` (only
    the vendor matches: likely, check it) or None (nothing fits: the default model applies).
    """

    model_id: str | None
    how: Literal["product", "vendor"] | None
    candidates: tuple[str, ...] = ()


def match_profile(
    models: Mapping[str, ChargerModel], vendor: str | None, model: str | None
) -> ProfileMatch:
    """Match the BootNotification's vendor and model against each model's name and products.

    A product fits when its first word (the brand) is one of the vendor's or model's words;
    each further word of the product found there counts. The best-scoring model wins; a tie
    lists the candidates. The default (generic) model never "fits": it is what applies when
    nothing else does.
    """
    said = set(_words(f"{vendor or ''} {model or ''}"))
    if not said:
        return ProfileMatch(None, None)
    scores: dict[str, int] = {}
    for model_id, candidate in models.items():
        if model_id == DEFAULT_MODEL_ID:
            continue
        best = 0
        for product in (candidate.name, *candidate.products):
            words = _words(product)
            if not words or words[0] not in said:
                continue
            family = {w for w in words[1:] if not w.isdigit()}  # "2" says nothing alone
            best = max(best, 1 + sum(1 for w in family if w in said))
        if best:
            scores[model_id] = best
    if not scores:
        return ProfileMatch(None, None)
    top = max(scores.values())
    winners = tuple(sorted(m for m, s in scores.items() if s == top))
    how: Literal["product", "vendor"] = "product" if top > 1 else "vendor"
    return ProfileMatch(winners[0], how, winners)


def profile_differences(probed: ChargerModel, known: ChargerModel) -> list[str]:
    """Where the charger's keys disagree with a shipped model: worth a look before relying
    on the model (a firmware update, or a model that was guessed)."""
    out: list[str] = []
    a, b = probed.smart_charging, known.smart_charging
    checks: list[tuple[str, object, object]] = [
        ("smart_charging.supported", a.supported, b.supported),
        ("smart_charging.rate_units", sorted(a.rate_units), sorted(b.rate_units)),
        ("smart_charging.max_periods", a.max_periods, b.max_periods),
        ("smart_charging.max_profiles", a.max_profiles, b.max_profiles),
        ("local_list.supported", probed.local_list.supported, known.local_list.supported),
        ("local_list.max_length", probed.local_list.max_length, known.local_list.max_length),
    ]
    if not b.stack_level_zero:
        checks.append(("smart_charging.max_stack_level", a.max_stack_level, b.max_stack_level))
    for name, said, kept in checks:
        if said != kept and said is not None:
            out.append(f"{name}: the charger says {said!r}, {known.id} says {kept!r}")
    return out


def proposed_profile_id(vendor: str | None, model: str | None, charger_id: str) -> str:
    """A file name for a new model: ``<vendor>-<model>`` in lowercase words."""
    words = _words(f"{vendor or ''} {model or ''}") or _words(charger_id) or ["probed"]
    return "-".join(words)[:60].strip("-") or "probed"
