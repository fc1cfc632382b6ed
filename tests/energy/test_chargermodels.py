"""Charger models as data: every shipped file loads, and probing builds a usable model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgegw.auth.idtags import IdTagFormat
from edgegw.config import ChargerConfig
from edgegw.energy.chargermodels import (
    DEFAULT_MODEL_ID,
    ChargerModelError,
    Purpose,
    RateUnit,
    ZeroCurrent,
    configuration_keys,
    load_model,
    load_models,
    model_for,
    model_from_configuration,
    model_to_toml,
    parse_model,
)
from edgegw.energy.profiles import iec_limit
from edgegw.energy.sampling import sample_interval_for

CHARGERS_DIR = Path(__file__).resolve().parents[2] / "hardware" / "chargers"
MODEL_FILES = sorted(CHARGERS_DIR.glob("*.toml"))
MODELS = load_models(CHARGERS_DIR)

REQUIRED = {
    "generic-ocpp16",
    "abb-terra-ac",
    "alfen-eve",
    "wallbox-pulsar",
    "keba-p30",
    "schneider-evlink",
    "etrel-inch",
    "evbox-elvi",
}


def minimal(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "format": 1,
        "id": "acme",
        "name": "ACME",
        "products": ["ACME 1"],
        "smart_charging": {"supported": True, "purposes": ["TxDefaultProfile"]},
        "local_list": {"supported": False},
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_every_shipped_model_loads_and_round_trips(path: Path, tmp_path: Path) -> None:
    model = load_model(path)
    assert model.id == path.stem
    assert model.products
    assert model.min_current_a >= 6  # IEC 61851
    if model.smart_charging.supported:
        assert model.cap_purpose is not None
        assert model.smart_charging.gateway_stack_level <= model.smart_charging.max_stack_level
    copy = tmp_path / path.name
    copy.write_text(model_to_toml(model), encoding="utf-8")
    assert load_model(copy) == model


def test_the_shipped_families_are_there_with_their_field_quirks() -> None:
    assert set(MODELS) >= REQUIRED
    assert DEFAULT_MODEL_ID in MODELS
    assert MODELS["abb-terra-ac"].smart_charging.gateway_stack_level == 0
    assert MODELS["evbox-elvi"].cap_purpose is Purpose.TX_DEFAULT
    assert MODELS["wallbox-pulsar"].smart_charging.profile_kind == "Relative"
    assert MODELS["bender-cc613"].smart_charging.rate_units == [RateUnit.A]
    assert MODELS["alfen-eve"].idtag_format is IdTagFormat.HEX
    assert MODELS["keba-p30"].idtag_format is IdTagFormat.HEX_REVERSED
    assert MODELS["zaptec-go"].cap_purpose is None
    assert MODELS[DEFAULT_MODEL_ID].smart_charging.zero_current is ZeroCurrent.PAUSE


def test_field_quirks_from_evidence_reach_what_reads_them() -> None:
    abb = MODELS["abb-terra-ac"]
    # ABB rejects 0 A (evcc #15493): a session that does not fit is held at the minimum.
    assert abb.smart_charging.zero_current is ZeroCurrent.REJECTED
    assert not abb.can_pause
    assert iec_limit(abb, 2.0, 6.0) == 6.0
    assert iec_limit(MODELS[DEFAULT_MODEL_ID], 2.0, 6.0) == 0.0
    # Firmware <= 1.8.21 bootloops on a full measurand probe (lbbrhzn/ocpp #1275).
    assert abb.meter_values.measurands == [
        "Current.Import",
        "Energy.Active.Import.Register",
        "Power.Active.Import",
        "Voltage",
    ]
    # Bender: MeterValueSampleInterval >= 10 s, whatever the control interval.
    assert sample_interval_for(None, MODELS["bender-cc613"]) == 10
    # Wallbox firmware 5.x: stack level 0, Absolute (evcc ocpp-wallbox-fw5).
    fw5 = MODELS["wallbox-pulsar-fw5"].smart_charging
    assert (fw5.gateway_stack_level, fw5.profile_kind) == (0, "Absolute")
    assert MODELS["wallbox-pulsar"].smart_charging.profile_kind == "Relative"
    # Schneider EVlink takes stack levels up to 999 (lbbrhzn/ocpp #877).
    assert MODELS["schneider-evlink"].smart_charging.gateway_stack_level == 999
    # EVBox Elvi: only a short measurand list (lbbrhzn/ocpp #221).
    assert MODELS["evbox-elvi"].meter_values.measurands == [
        "Energy.Active.Import.Register",
        "Current.Import",
    ]
    # Alfen's out-of-range transactionId is documented for the installer.
    assert any("9223372036854775807" in note for note in MODELS["alfen-eve"].notes)


def test_unverified_values_are_marked_in_the_files() -> None:
    """Model values not confirmed by a source carry a VERIFY comment (none are certain)."""
    for path in MODEL_FILES:
        if path.stem != DEFAULT_MODEL_ID:
            assert "VERIFY" in path.read_text(encoding="utf-8"), path.name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "colour: unknown key"),
        ({"idtag_format": "hex_upside_down"}, "idtag_format"),
        ({"phases": 2}, "phases"),
        (
            {"smart_charging": {"supported": True, "purposes": ["TxProfile", "TxProfile"]}},
            "lists a value twice",
        ),
        ({"smart_charging": {"supported": True}}, "list at least one purpose"),
        (
            {"smart_charging": {"supported": False, "purposes": ["TxProfile"]}},
            "must be empty when supported = false",
        ),
        ({"smart_charging": {"supported": True, "purposes": ["Max"]}}, "purposes.0"),
        ({"local_list": {}}, "local_list.supported: required key is missing"),
        ({"id": "Has Spaces"}, "id"),
    ],
)
def test_bad_models_are_refused_with_the_key_path(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ChargerModelError, match="acme-file") as info:
        parse_model(minimal(**change), source="acme-file")
    assert message in str(info.value)


def test_directory_problems_are_reported_together(tmp_path: Path) -> None:
    (tmp_path / "one.toml").write_text("format = 1\nid = 'two'\n", encoding="utf-8")
    (tmp_path / "three.toml").write_text("not toml [", encoding="utf-8")
    with pytest.raises(ChargerModelError) as info:
        load_models(tmp_path)
    problems = info.value.problems
    assert any("three.toml: not valid TOML" in p for p in problems)
    assert any("one.toml" in p for p in problems)
    with pytest.raises(ChargerModelError, match="not a directory"):
        load_models(tmp_path / "nowhere")


def test_the_default_model_must_be_there(tmp_path: Path) -> None:
    (tmp_path / "acme.toml").write_text(model_to_toml(parse_model(minimal())), encoding="utf-8")
    with pytest.raises(ChargerModelError, match=r"default model generic-ocpp16\.toml is missing"):
        load_models(tmp_path)


def test_file_name_must_match_the_id(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text(model_to_toml(parse_model(minimal())), encoding="utf-8")
    with pytest.raises(ChargerModelError, match=r"name the file acme\.toml"):
        load_model(path)


def test_model_for_a_configured_charger() -> None:
    assert model_for(MODELS, ChargerConfig(id="CP1")).id == DEFAULT_MODEL_ID
    assert model_for(MODELS, None).id == DEFAULT_MODEL_ID
    assert model_for(MODELS, ChargerConfig(id="CP1", model="alfen-eve")).id == "alfen-eve"
    with pytest.raises(ChargerModelError, match="charger 'CP1': model 'nope'"):
        model_for(MODELS, ChargerConfig(id="CP1", model="nope"))


def answer(**keys: str) -> dict[str, Any]:
    return {
        "configurationKey": [{"key": k, "readonly": True, "value": v} for k, v in keys.items()],
        "unknownKey": ["VendorSpecificThing"],
    }


def test_probe_reads_the_smart_charging_and_local_list_keys() -> None:
    probed = model_from_configuration(
        answer(
            SupportedFeatureProfiles="Core,SmartCharging,LocalAuthListManagement",
            ChargeProfileMaxStackLevel="8",
            ChargingScheduleAllowedChargingRateUnit="Current",
            ChargingScheduleMaxPeriods="24",
            MaxChargingProfilesInstalled="16",
            LocalAuthListMaxLength="100",
            SendLocalListMaxLength="50",
            ConnectorSwitch3to1PhaseSupported="true",
        ),
        base=MODELS[DEFAULT_MODEL_ID],
        model_id="acme-probed",
        products=["ACME 1"],
    )
    sc = probed.smart_charging
    assert (probed.id, probed.products) == ("acme-probed", ["ACME 1"])
    assert (sc.supported, sc.max_stack_level, sc.max_periods, sc.max_profiles) == (True, 8, 24, 16)
    assert sc.rate_units == [RateUnit.A]
    assert sc.purposes == MODELS[DEFAULT_MODEL_ID].smart_charging.purposes  # not probeable
    assert (probed.local_list.max_length, probed.local_list.send_max_length) == (100, 50)
    assert probed.phase_switching is True
    assert any("unprobed traits taken from 'generic-ocpp16'" in n for n in probed.notes)


def test_probe_understands_non_standard_unit_values_and_missing_smart_charging() -> None:
    w_only = model_from_configuration(
        answer(ChargingScheduleAllowedChargingRateUnit="W"), base=MODELS[DEFAULT_MODEL_ID]
    )
    assert w_only.smart_charging.rate_units == [RateUnit.W]
    bare = model_from_configuration(
        answer(SupportedFeatureProfiles="Core,RemoteTrigger"), base=MODELS["alfen-eve"]
    )
    assert bare.smart_charging.supported is False
    assert bare.cap_purpose is None
    assert bare.local_list.supported is False
    assert bare.idtag_format is IdTagFormat.HEX  # kept from the base model


def test_configuration_keys_skip_entries_without_values() -> None:
    assert configuration_keys(
        {"configurationKey": [{"key": "A", "readonly": True}, {"key": "B", "value": "1"}, "junk"]}
    ) == {"B": "1"}
    assert configuration_keys({}) == {}
