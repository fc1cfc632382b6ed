"""Charging profiles: the gateway's own payloads, plans per charger model, cloud clamping."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from ocpp.exceptions import FormatViolationError, ValidationError
from ocpp.messages import Call, validate_payload

from edgegw.energy.chargermodels import ChargerModel, Purpose, load_models
from edgegw.energy.profiles import (
    PROFILE_ID_SPAN,
    ConnectorLimit,
    GatewayCap,
    ProfileError,
    ProfileKey,
    build_set_charging_profile,
    clamp_cloud_profile,
    clear_hits_gateway,
    cleared_gateway_keys,
    gateway_profile_id,
    iec_limit,
    is_gateway_profile_id,
    plan_profiles,
    profile_limit_a,
    remap_cloud_clear,
    replaced_gateway_keys,
)

MODELS = load_models(Path(__file__).resolve().parents[2] / "hardware" / "chargers")
GENERIC = MODELS["generic-ocpp16"]
NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
CP_MAX0 = ProfileKey(0, Purpose.CHARGE_POINT_MAX)
BASE = GENERIC.smart_charging.profile_id_base


def variant(model: ChargerModel, **smart_charging: Any) -> ChargerModel:
    return model.model_copy(
        update={"smart_charging": model.smart_charging.model_copy(update=smart_charging)}
    )


W_ONLY = variant(GENERIC, rate_units=["W"])
TX_DEFAULT = variant(GENERIC, purposes=[Purpose.TX_DEFAULT, Purpose.TX], max_stack_level=6)


async def assert_valid(payload: dict[str, Any]) -> None:
    """The payload passes the OCPP 1.6 JSON schema of SetChargingProfile.req."""
    await validate_payload(Call("1", "SetChargingProfile", payload), "1.6")


def limit_of(payload: dict[str, Any]) -> float:
    return float(
        payload["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
    )


# ------------------------------------------------------------------ building


async def test_generic_profile_is_an_absolute_ampere_schedule_from_a_minute_ago() -> None:
    payload = build_set_charging_profile(GENERIC, CP_MAX0, 13.37, phases=3, now=NOW)
    await assert_valid(payload)
    assert payload == {
        "connectorId": 0,
        "csChargingProfiles": {
            "chargingProfileId": BASE,
            "stackLevel": 1,
            "chargingProfilePurpose": "ChargePointMaxProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 13.3}],  # rounded down
                "startSchedule": "2023-11-14T22:12:20Z",
            },
        },
    }


async def test_watt_only_charger_gets_total_power_with_explicit_phases() -> None:
    payload = build_set_charging_profile(W_ONLY, CP_MAX0, 16, phases=1, now=NOW)
    await assert_valid(payload)
    period = payload["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]
    assert period == {"startPeriod": 0, "limit": 3680.0, "numberPhases": 1}


async def test_model_quirks_change_kind_stack_level_and_valid_from() -> None:
    wallbox = build_set_charging_profile(
        MODELS["wallbox-pulsar"], ProfileKey(1, Purpose.TX_DEFAULT), 10, phases=3, now=NOW
    )
    await assert_valid(wallbox)
    assert wallbox["csChargingProfiles"]["chargingProfileKind"] == "Relative"
    assert "startSchedule" not in wallbox["csChargingProfiles"]["chargingSchedule"]
    abb = build_set_charging_profile(MODELS["abb-terra-ac"], CP_MAX0, 10, phases=3, now=NOW)
    assert abb["csChargingProfiles"]["stackLevel"] == 0
    with_from = build_set_charging_profile(
        variant(GENERIC, valid_from=True), CP_MAX0, 10, phases=3, now=NOW
    )
    assert with_from["csChargingProfiles"]["validFrom"] == "2023-11-14T22:12:20Z"


async def test_tx_profile_carries_the_transaction_id() -> None:
    payload = build_set_charging_profile(
        GENERIC, ProfileKey(2, Purpose.TX), 8, phases=3, now=NOW, transaction_id=-17
    )
    await assert_valid(payload)
    profile = payload["csChargingProfiles"]
    assert profile["transactionId"] == -17  # Etrel's own negative ids pass through
    assert profile["chargingProfileId"] == BASE + 200 + 2


def test_misplaced_profiles_are_refused() -> None:
    with pytest.raises(ProfileError, match="connector 0 only"):
        build_set_charging_profile(
            GENERIC, ProfileKey(1, Purpose.CHARGE_POINT_MAX), 6, phases=3, now=NOW
        )
    with pytest.raises(ProfileError, match="not 0"):
        build_set_charging_profile(GENERIC, ProfileKey(0, Purpose.TX), 6, phases=3, now=NOW)
    with pytest.raises(ProfileError, match=">= 0 A"):
        build_set_charging_profile(GENERIC, CP_MAX0, -1, phases=3, now=NOW)
    with pytest.raises(ProfileError, match="outside"):
        gateway_profile_id(GENERIC, ProfileKey(100, Purpose.TX))


async def test_schema_rejects_what_we_never_send() -> None:
    """The schema check in these tests is not a no-op."""
    bad = build_set_charging_profile(GENERIC, CP_MAX0, 6, phases=3, now=NOW)
    bad["csChargingProfiles"]["chargingProfilePurpose"] = "Bogus"
    with pytest.raises((FormatViolationError, ValidationError)):
        await assert_valid(bad)


def test_gateway_ids_are_reserved_and_distinct() -> None:
    keys = [ProfileKey(c, p) for p in Purpose for c in range(5)]
    ids = {gateway_profile_id(GENERIC, k) for k in keys}
    assert len(ids) == len(keys)
    assert all(is_gateway_profile_id(GENERIC, i) for i in ids)
    assert not is_gateway_profile_id(GENERIC, 1)
    assert not is_gateway_profile_id(GENERIC, BASE + PROFILE_ID_SPAN)


def test_iec_limit_pauses_or_holds_the_minimum() -> None:
    assert iec_limit(GENERIC, 7.5, 6) == 7.5
    assert iec_limit(GENERIC, 4, 6) == 0
    assert iec_limit(variant(GENERIC, zero_current="ignored"), 4, 6) == 6
    assert iec_limit(variant(GENERIC, zero_current="no_resume"), 0, 6) == 0


# ------------------------------------------------------------------ plans


def plan(
    model: ChargerModel, sessions: list[ConnectorLimit], connectors: set[int], safe: float = 0.0
) -> dict[str, Any]:
    commands = plan_profiles(
        model,
        sessions,
        connectors=connectors,
        safe_limit_a=safe,
        charger_phases=3,
        min_a=6,
        now=NOW,
    )
    return {str(c.key): c for c in commands}


def test_idle_charger_gets_its_safe_limit() -> None:
    commands = plan(GENERIC, [], {1}, safe=8)
    assert list(commands) == ["ChargePointMaxProfile@0"]
    cmd = commands["ChargePointMaxProfile@0"]
    assert (cmd.limit_a, cmd.default_a, dict(cmd.covers)) == (8, 8, {})


def test_one_session_is_capped_by_charge_point_max() -> None:
    commands = plan(GENERIC, [ConnectorLimit(1, 11.0, phases=1)], {1})
    cmd = commands["ChargePointMaxProfile@0"]
    assert (cmd.limit_a, dict(cmd.covers), cmd.default_a) == (11.0, {1: 11.0}, 0.0)


def test_two_connectors_share_the_max_profile_split_by_tx_default() -> None:
    commands = plan(GENERIC, [ConnectorLimit(1, 10.0), ConnectorLimit(2, 6.0)], {1, 2, 3}, safe=0)
    assert commands["ChargePointMaxProfile@0"].limit_a == 16.0
    assert commands["TxDefaultProfile@1"].limit_a == 10.0
    assert commands["TxDefaultProfile@2"].limit_a == 6.0
    assert commands["TxDefaultProfile@3"].limit_a == 0.0  # an idle connector starts safe


def test_without_charge_point_max_the_cap_lives_in_tx_default() -> None:
    commands = plan(TX_DEFAULT, [ConnectorLimit(1, 12.0, transaction_id=5)], {1, 2}, safe=12)
    assert commands["TxDefaultProfile@0"].limit_a == 6.0  # 12 A shared by two connectors
    assert commands["TxDefaultProfile@1"].limit_a == 12.0
    assert commands["TxDefaultProfile@2"].limit_a == 6.0
    assert commands["TxDefaultProfile@1"].payload["csChargingProfiles"]["stackLevel"] == 6


def test_a_cloud_tx_profile_makes_the_gateway_use_a_tx_profile_too() -> None:
    session = ConnectorLimit(1, 9.0, transaction_id=42, cloud_tx_profile=True)
    commands = plan(TX_DEFAULT, [session], {1})
    tx = commands["TxProfile@1"]
    assert tx.payload["csChargingProfiles"]["transactionId"] == 42
    assert tx.transaction_id == 42


def test_charger_applying_tx_default_to_next_session_only_gets_tx_profiles() -> None:
    model = variant(TX_DEFAULT, tx_default_applies_to_running=False)
    commands = plan(model, [ConnectorLimit(1, 9.0, transaction_id=7)], {1})
    assert "TxProfile@1" in commands
    # Without the transaction id a TxProfile would be rejected: TxDefaultProfile it is.
    commands = plan(model, [ConnectorLimit(1, 9.0)], {1})
    assert commands["TxDefaultProfile@1"].limit_a == 9.0


def test_charger_scope_tx_default_uses_the_lowest_limit() -> None:
    commands = plan(MODELS["evbox-elvi"], [ConnectorLimit(1, 9.0), ConnectorLimit(2, 7.0)], {1, 2})
    assert list(commands) == ["TxDefaultProfile@0"]
    cmd = commands["TxDefaultProfile@0"]
    assert (cmd.limit_a, cmd.default_a) == (7.0, 7.0)


def test_tx_profile_only_and_uncontrollable_chargers() -> None:
    tx_only = variant(GENERIC, purposes=[Purpose.TX])
    assert plan(tx_only, [], {1}) == {}
    assert list(plan(tx_only, [ConnectorLimit(1, 8, transaction_id=1)], {1})) == ["TxProfile@1"]
    assert plan(MODELS["zaptec-go"], [ConnectorLimit(1, 8)], {1}) == {}


def test_fingerprint_ignores_the_time_of_building() -> None:
    first = plan_profiles(
        GENERIC, [], connectors={1}, safe_limit_a=6, charger_phases=3, min_a=6, now=NOW
    )
    later = plan_profiles(
        GENERIC, [], connectors={1}, safe_limit_a=6, charger_phases=3, min_a=6, now=NOW + 500
    )
    assert first[0].payload != later[0].payload
    assert first[0].fingerprint == later[0].fingerprint


# ------------------------------------------------------------------ cloud profiles


def cloud(
    purpose: str, limit: float, *, stack: int = 5, unit: str = "A", pid: int = 3, **extra: Any
) -> dict[str, Any]:
    period: dict[str, Any] = {"startPeriod": 0, "limit": limit}
    return {
        "connectorId": 0 if purpose == "ChargePointMaxProfile" else 1,
        "csChargingProfiles": {
            "chargingProfileId": pid,
            "stackLevel": stack,
            "chargingProfilePurpose": purpose,
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "chargingRateUnit": unit,
                "startSchedule": "2023-11-14T22:00:00Z",
                "chargingSchedulePeriod": [period, {"startPeriod": 3600, "limit": limit / 2}],
            },
            **extra,
        },
    }


def test_cloud_max_profile_goes_below_the_gateway_and_never_above_the_cap() -> None:
    cap = GatewayCap.for_model(variant(GENERIC, max_stack_level=8), 10.0)
    original = cloud("ChargePointMaxProfile", 32, stack=8)
    kept = copy.deepcopy(original)
    out = clamp_cloud_profile(original, cap)
    assert original == kept  # not modified in place
    profile = out["csChargingProfiles"]
    assert profile["stackLevel"] == 7
    assert [p["limit"] for p in profile["chargingSchedule"]["chargingSchedulePeriod"]] == [
        10.0,
        10.0,
    ]


def test_cloud_watt_limits_are_clamped_at_nominal_voltage() -> None:
    cap = GatewayCap.for_model(GENERIC, 10.0)
    out = clamp_cloud_profile(cloud("ChargePointMaxProfile", 22_000, stack=0, unit="W"), cap)
    periods = out["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"]
    assert [p["limit"] for p in periods] == [6900.0, 6900.0]  # 10 A x 230 V x 3


def test_cloud_tx_profiles_pass_unchanged_under_a_charge_point_max_cap() -> None:
    cap = GatewayCap.for_model(GENERIC, 10.0)
    payload = cloud("TxProfile", 32, stack=9, transactionId=4)
    assert clamp_cloud_profile(payload, cap) == payload


def test_under_a_tx_default_cap_the_cloud_tx_profile_is_clamped_and_moved() -> None:
    cap = GatewayCap.for_model(TX_DEFAULT, 9.0)
    out = clamp_cloud_profile(cloud("TxProfile", 32, stack=6, transactionId=4), cap)
    profile = out["csChargingProfiles"]
    assert profile["stackLevel"] == 5
    assert profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 9.0
    assert profile["chargingSchedule"]["chargingSchedulePeriod"][1]["limit"] == 9.0
    below = clamp_cloud_profile(cloud("TxDefaultProfile", 4, stack=2), cap)["csChargingProfiles"]
    assert below["stackLevel"] == 2  # already below: untouched
    assert below["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 4


def test_a_cloud_id_in_the_gateway_range_is_moved_out() -> None:
    cap = GatewayCap.for_model(GENERIC, None)
    out = clamp_cloud_profile(cloud("TxProfile", 32, pid=BASE + 5), cap)
    assert out["csChargingProfiles"]["chargingProfileId"] == BASE + 5 - PROFILE_ID_SPAN
    assert remap_cloud_clear({"id": BASE + 5}, GENERIC) == {"id": BASE + 5 - PROFILE_ID_SPAN}
    assert remap_cloud_clear({"id": 3, "connectorId": 1}, GENERIC) == {"id": 3, "connectorId": 1}


def test_at_stack_level_zero_the_cloud_replaces_the_gateway_profile() -> None:
    abb = MODELS["abb-terra-ac"]
    relayed = clamp_cloud_profile(
        cloud("ChargePointMaxProfile", 32, stack=0), GatewayCap.for_model(abb, 10)
    )
    assert relayed["csChargingProfiles"]["stackLevel"] == 0
    assert limit_of(relayed) == 10
    assert replaced_gateway_keys(relayed, abb, [CP_MAX0]) == {CP_MAX0}
    assert replaced_gateway_keys(cloud("TxProfile", 8, stack=0), abb, [CP_MAX0]) == set()


def test_malformed_cloud_payloads_are_left_to_the_charger() -> None:
    cap = GatewayCap.for_model(GENERIC, 10)
    assert clamp_cloud_profile({"connectorId": 0}, cap) == {"connectorId": 0}
    weird = {
        "connectorId": 0,
        "csChargingProfiles": {"chargingProfilePurpose": "ChargePointMaxProfile"},
    }
    assert clamp_cloud_profile(weird, cap) == weird


@pytest.mark.parametrize(
    ("clear", "hit"),
    [
        ({}, {"ChargePointMaxProfile@0", "TxDefaultProfile@1"}),
        ({"connectorId": 0}, {"ChargePointMaxProfile@0"}),
        ({"connectorId": 1}, {"TxDefaultProfile@1"}),
        ({"chargingProfilePurpose": "TxProfile"}, set()),
        ({"chargingProfilePurpose": "TxDefaultProfile"}, {"TxDefaultProfile@1"}),
        ({"stackLevel": 1}, {"ChargePointMaxProfile@0", "TxDefaultProfile@1"}),
        ({"stackLevel": 0}, set()),
        ({"id": BASE}, {"ChargePointMaxProfile@0"}),
        ({"id": 3}, set()),
        ({"id": 3, "connectorId": 0}, set()),  # with an id the other fields do not widen it
    ],
)
def test_which_cloud_clear_hits_the_gateway(clear: dict[str, Any], hit: set[str]) -> None:
    installed = [CP_MAX0, ProfileKey(1, Purpose.TX_DEFAULT)]
    assert {str(k) for k in cleared_gateway_keys(clear, GENERIC, installed)} == hit
    assert clear_hits_gateway(clear, GENERIC, installed) is bool(hit)


# ------------------------------------------------------------------ reading profiles


def test_profile_limit_follows_its_periods_and_validity() -> None:
    profile = cloud("TxProfile", 16)["csChargingProfiles"]
    start = NOW - 13 * 60 - 20  # 22:00:00Z
    assert profile_limit_a(profile, start - 1, anchor=0, phases=3) is None
    assert profile_limit_a(profile, start, anchor=0, phases=3) == 16
    assert profile_limit_a(profile, start + 3600, anchor=0, phases=3) == 8
    profile["chargingSchedule"]["duration"] = 60
    assert profile_limit_a(profile, start + 61, anchor=0, phases=3) is None
    profile["validTo"] = "2023-11-14T22:00:30Z"
    assert profile_limit_a(profile, start + 30, anchor=0, phases=3) is None


def test_relative_recurring_and_watt_profiles() -> None:
    relative: dict[str, Any] = {
        "chargingProfileKind": "Relative",
        "chargingSchedule": {
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6900}],
        },
    }
    assert profile_limit_a(relative, 500, anchor=100, phases=3) == 10
    assert profile_limit_a(relative, 50, anchor=100, phases=3) is None
    relative["chargingSchedule"]["chargingSchedulePeriod"][0]["numberPhases"] = 1
    assert profile_limit_a(relative, 500, anchor=100, phases=3) == 30
    recurring = cloud("TxDefaultProfile", 12)["csChargingProfiles"]
    recurring["chargingProfileKind"] = "Recurring"
    recurring["recurrencyKind"] = "Daily"
    start = NOW - 13 * 60 - 20
    assert profile_limit_a(recurring, start + 86_400 + 3600, anchor=0, phases=3) == 6
    assert profile_limit_a({"chargingSchedule": "nonsense"}, NOW, anchor=0, phases=3) is None
