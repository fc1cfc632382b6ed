"""The charger models added for issue 20 say what their sources say, and a probe of the
charger agrees with the file where the charger's own configuration can tell.

Every file also goes through ``test_chargermodels.py`` (loads, round-trips, IEC minimum).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import pytest

from edgegw.energy.chargermodels import (
    Purpose,
    RateUnit,
    load_models,
    model_from_configuration,
)
from edgegw.energy.sampling import sample_interval_for

CHARGERS_DIR: Final = Path(__file__).resolve().parents[2] / "hardware" / "chargers"
MODELS: Final = load_models(CHARGERS_DIR)

ADDED: Final = (
    "go-e-charger",
    "easee",
    "mennekes-amtron-4you",
    "abl-emh",
    "autel-maxicharger",
    "amperfied-connect-business",
)


@pytest.mark.parametrize("model_id", ADDED)
def test_every_added_model_cites_its_sources(model_id: str) -> None:
    text = (CHARGERS_DIR / f"{model_id}.toml").read_text(encoding="utf-8")
    header = text.split("format = 1", 1)[0]
    assert "Evidence" in header, "the header names the sources the values come from"
    assert model_id in MODELS


def _config(**keys: str) -> dict[str, Any]:
    return {"configurationKey": [{"key": k, "readonly": True, "value": v} for k, v in keys.items()]}


def test_amperfied_without_smart_charging_cannot_be_capped_and_the_probe_agrees() -> None:
    shipped = MODELS["amperfied-connect-business"]
    assert not shipped.smart_charging.supported
    assert shipped.cap_purpose is None  # the controller counts it at max_current_a
    assert shipped.local_list.supported
    # The feature profiles the charger reported in evcc #17836.
    answer = _config(
        SupportedFeatureProfiles="Core, FirmwareManagement, LocalAuthListManagement, "
        "Reservation, RemoteTrigger"
    )
    probed = model_from_configuration(answer, base=MODELS["generic-ocpp16"])
    assert probed.cap_purpose is None
    assert probed.smart_charging.supported == shipped.smart_charging.supported
    assert probed.local_list.supported == shipped.local_list.supported


def test_go_e_avoids_stack_level_zero_and_has_no_local_list() -> None:
    goe = MODELS["go-e-charger"]
    # go-eCharger-API-v2 #187: a stack level 0 profile cannot be cleared.
    assert goe.smart_charging.gateway_stack_level > 0
    assert not goe.smart_charging.stack_level_zero
    # go-e ocpp-en.md: no LocalAuthListManagement; evcc ocpp-goe: 1p3p.
    assert not goe.local_list.supported
    assert goe.phase_switching
    assert any("Wattpilot" in p for p in goe.products)
    # Its own feature-profile list (go-e ocpp-en.md), probed: the same two answers.
    answer = _config(SupportedFeatureProfiles="Core,FirmwareManagement,SmartCharging,RemoteTrigger")
    probed = model_from_configuration(answer, base=goe)
    assert probed.smart_charging.supported and not probed.local_list.supported


def test_easee_is_never_capped_by_profiles_that_wear_its_flash() -> None:
    easee = MODELS["easee"]
    # Easee: schedules go to flash, 25 a day recommended; the gateway's cuts would exceed that.
    assert easee.cap_purpose is None
    assert any("flash" in note for note in easee.notes)
    # evcc ocpp-easee: minimum meter interval 30 s.
    assert sample_interval_for(None, easee) == 30


def test_autel_and_the_others_get_absolute_profiles_in_amps() -> None:
    # lbbrhzn/ocpp #1019: the MaxiCharger refuses a Relative max profile.
    assert MODELS["autel-maxicharger"].smart_charging.profile_kind == "Absolute"
    for model_id in ("autel-maxicharger", "abl-emh", "mennekes-amtron-4you", "go-e-charger"):
        sc = MODELS[model_id].smart_charging
        assert sc.supported and sc.rate_unit is RateUnit.A
        assert MODELS[model_id].cap_purpose is Purpose.CHARGE_POINT_MAX


def test_mennekes_4you_is_sampled_not_triggered() -> None:
    # evcc #32236: frequent TriggerMessage(MeterValues) made it drop OCPP; it samples every 10 s.
    model = MODELS["mennekes-amtron-4you"]
    assert sample_interval_for(None, model) == 10
    assert any("TriggerMessage" in note for note in model.notes)
