"""The gateway's charging profiles in OCPP 2.0.1 form, and the cloud's 2.0.1 profiles read and
clamped (``edgegw.energy.profiles201``, ``cloudcaps.filter_cloud_call201``). Every payload the
gateway builds is checked against the ``ocpp`` library's v201 (and v21) JSON schemas."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ocpp.messages import get_validator

from edgegw.energy.chargermodels import ChargerModel, Purpose
from edgegw.energy.cloudcaps import filter_cloud_call201, install
from edgegw.energy.profiles import (
    NOMINAL_VOLTAGE,
    PROFILE_ID_SPAN,
    ConnectorLimit,
    ProfileCommand,
    ProfileError,
    ProfileKey,
    plan_profiles,
)
from edgegw.energy.profiles201 import as_v16, clears_station_tx_default, set_charging_profile
from tests.energy.test_cloudcaps import with_cap
from tests.energy.test_profiles import GENERIC, NOW, TX_DEFAULT, W_ONLY, variant

BASE = GENERIC.smart_charging.profile_id_base
LEVEL = GENERIC.smart_charging.gateway_stack_level
TX_ID = "6f1a2b3c-0000-4000-8000-1234567890ab"
TX_ONLY = variant(GENERIC, purposes=[Purpose.TX])
RELATIVE = variant(GENERIC, profile_kind="Relative", valid_from=True)
SCHEMA_VERSIONS = ("2.0.1", "2.1")


def assert_valid(
    action: str, payload: dict[str, Any], versions: tuple[str, ...] = ("2.0.1",)
) -> None:
    """The payload passes the ``ocpp`` library's JSON schema of the request."""
    for version in versions:
        get_validator(2, action, version).validate(payload)


def plans() -> list[tuple[str, ChargerModel, list[ProfileCommand]]]:
    """The commands of every kind of plan the site model makes."""
    one = [ConnectorLimit(1, 16.0, phases=3, transaction_id=None)]
    two = [ConnectorLimit(1, 10.0, phases=1), ConnectorLimit(2, 6.5, phases=3)]
    cloud_tx = [ConnectorLimit(1, 12.0, cloud_tx_profile=True)]
    out = []
    for name, model, sessions in [
        ("idle", GENERIC, []),
        ("station max", GENERIC, one),
        ("two evses", GENERIC, two),
        ("watts", W_ONLY, two),
        ("tx default", TX_DEFAULT, two),
        ("cloud tx", TX_DEFAULT, cloud_tx),
        ("tx only", variant(TX_ONLY, tx_profile_needs_transaction_id=False), one),
        ("relative, valid from", RELATIVE, one),
        ("paused", GENERIC, [ConnectorLimit(1, 0.0)]),
    ]:
        commands = plan_profiles(
            model,
            sessions,
            connectors=[1, 2] if len(sessions) != 1 else [1],
            safe_limit_a=12.0,
            charger_phases=3,
            min_a=6.0,
            now=NOW,
        )
        assert commands, name
        out.append((name, model, commands))
    return out


@pytest.mark.parametrize(("name", "model", "commands"), plans(), ids=[p[0] for p in plans()])
def test_every_gateway_profile_is_a_valid_2_0_1_request_with_the_same_meaning(
    name: str, model: ChargerModel, commands: list[ProfileCommand]
) -> None:
    for cmd in commands:
        v16 = cmd.payload["csChargingProfiles"]
        payload = set_charging_profile(cmd, transaction_id=TX_ID, now=NOW)
        assert_valid("SetChargingProfile", payload, SCHEMA_VERSIONS)
        profile = payload["chargingProfile"]
        assert payload["evseId"] == cmd.payload["connectorId"]  # the connector key is the EVSE
        assert profile["id"] == v16["chargingProfileId"]
        level = v16["stackLevel"]
        if cmd.key == ProfileKey(0, Purpose.TX_DEFAULT) and level > 0:
            level -= 1  # never at the level of an EVSE's own (K01.FR.52/53)
        assert profile["stackLevel"] == level
        assert (
            profile["chargingProfilePurpose"]
            == {
                "ChargePointMaxProfile": "ChargingStationMaxProfile",
                "TxDefaultProfile": "TxDefaultProfile",
                "TxProfile": "TxProfile",
            }[v16["chargingProfilePurpose"]]
        )
        if profile["chargingProfilePurpose"] == "ChargingStationMaxProfile":
            assert payload["evseId"] == 0
        assert ("transactionId" in profile) == (profile["chargingProfilePurpose"] == "TxProfile")
        [schedule] = profile["chargingSchedule"]
        assert schedule["id"] == profile["id"]
        assert (
            schedule["chargingSchedulePeriod"] == v16["chargingSchedule"]["chargingSchedulePeriod"]
        )
        for period in schedule["chargingSchedulePeriod"]:
            assert "phaseToUse" not in period
        # Read back as the site model keeps a profile: the 1.6 one, without the transaction.
        _, read = as_v16("SetChargingProfile", payload) or ("", {})
        expected = {k: v for k, v in v16.items() if k != "transactionId"}
        expected["stackLevel"] = level
        if v16["chargingProfileKind"] == "Relative" and (
            v16["chargingProfilePurpose"] == "ChargePointMaxProfile"
        ):  # 2.0.1 takes no Relative ChargingStationMaxProfile (K01.FR.38)
            expected["chargingProfileKind"] = "Absolute"
            expected["chargingSchedule"] = {
                **v16["chargingSchedule"],
                "startSchedule": "2023-11-14T22:12:20Z",  # a minute before NOW
            }
        assert read == {"connectorId": cmd.payload["connectorId"], "csChargingProfiles": expected}


def test_a_2_0_1_session_with_a_string_id_gets_a_tx_profile() -> None:
    """A TxProfile-only charger (or a session carrying a cloud TxProfile) is capped with a
    TxProfile once its transaction has an id, whatever its form."""
    sessions = [ConnectorLimit(1, 16.0, in_transaction=True)]
    [cmd] = plan_profiles(
        TX_ONLY, sessions, connectors=[1], safe_limit_a=12.0, charger_phases=3, min_a=6.0, now=NOW
    )
    assert cmd.key.purpose is Purpose.TX
    payload = set_charging_profile(cmd, transaction_id=TX_ID, now=NOW)
    assert_valid("SetChargingProfile", payload, SCHEMA_VERSIONS)
    assert payload["chargingProfile"]["transactionId"] == TX_ID
    without = [ConnectorLimit(1, 16.0)]  # no transaction known: nothing a TxProfile can name
    assert (
        plan_profiles(
            TX_ONLY,
            without,
            connectors=[1],
            safe_limit_a=12.0,
            charger_phases=3,
            min_a=6.0,
            now=NOW,
        )
        == []
    )


@pytest.mark.parametrize(("name", "model", "commands"), plans(), ids=[p[0] for p in plans()])
def test_a_plan_passes_a_2_0_1_station_s_checks(
    name: str, model: ChargerModel, commands: list[ProfileCommand]
) -> None:
    """What a 2.0.1 station rejects (K01): a ChargingStationMaxProfile of kind Relative
    (FR.38), Absolute without startSchedule or Relative with one (FR.40, FR.41), two profiles
    with one (stackLevel, purpose, evseId) and different ids (FR.06), a TxDefaultProfile on EVSE
    0 and one on an EVSE at the same stack level (FR.52, FR.53)."""
    rendered = [set_charging_profile(c, transaction_id=TX_ID, now=NOW) for c in commands]
    slots: dict[tuple[int, str, int], int] = {}
    for payload in rendered:
        profile = payload["chargingProfile"]
        purpose, kind = profile["chargingProfilePurpose"], profile["chargingProfileKind"]
        [schedule] = profile["chargingSchedule"]
        if purpose == "ChargingStationMaxProfile":
            assert kind != "Relative"
        assert ("startSchedule" in schedule) == (kind != "Relative")
        slot = (payload["evseId"], purpose, profile["stackLevel"])
        assert slots.setdefault(slot, profile["id"]) == profile["id"]
    station_wide = {lvl for (evse, p, lvl) in slots if evse == 0 and p == "TxDefaultProfile"}
    per_evse = {lvl for (evse, p, lvl) in slots if evse > 0 and p == "TxDefaultProfile"}
    assert not station_wide & per_evse


def test_a_tx_profile_needs_the_charger_s_transaction_id() -> None:
    [cmd] = plan_profiles(
        variant(TX_ONLY, tx_profile_needs_transaction_id=False),
        [ConnectorLimit(1, 16.0)],
        connectors=[1],
        safe_limit_a=12.0,
        charger_phases=3,
        min_a=6.0,
        now=NOW,
    )
    with pytest.raises(ProfileError, match="needs the transaction's id"):
        set_charging_profile(cmd, transaction_id=None, now=NOW)
    with pytest.raises(ProfileError):
        set_charging_profile(cmd, transaction_id="x" * 37, now=NOW)  # 2.0.1 ids are at most 36 long
    payload = set_charging_profile(cmd, transaction_id="tx-1", now=NOW)
    assert payload["chargingProfile"]["transactionId"] == "tx-1"


# ------------------------------------------------------------------ the cloud's profiles


def cloud_profile(
    pid: int,
    purpose: str,
    limits: list[float],
    *,
    stack: int = 0,
    unit: str = "A",
    phases: int | None = None,
    schedules: int = 1,
) -> dict[str, Any]:
    def schedule(index: int) -> dict[str, Any]:
        return {
            "id": index + 1,
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": [
                {
                    "startPeriod": 60 * i,
                    "limit": v,
                    **({} if phases is None else {"numberPhases": phases}),
                }
                for i, v in enumerate(limits)
            ],
        }

    return {
        "id": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Relative",
        "chargingSchedule": [schedule(i) for i in range(schedules)],
    }


PURPOSES_201 = ["ChargingStationMaxProfile", "TxDefaultProfile", "TxProfile"]
TO_16 = {
    "ChargingStationMaxProfile": "ChargePointMaxProfile",
    "TxDefaultProfile": "TxDefaultProfile",
    "TxProfile": "TxProfile",
}


def outranks(purpose: str, cap: Purpose) -> bool:
    """Would a cloud profile of ``purpose`` (2.0.1 names) take the cap's place?"""
    name = TO_16[purpose]
    if name == cap.value:
        return True
    if cap is Purpose.TX_DEFAULT:
        return name == "TxProfile"
    if cap is Purpose.TX:
        return name == "TxDefaultProfile"
    return False


@given(
    cap_purpose=st.sampled_from([Purpose.CHARGE_POINT_MAX, Purpose.TX_DEFAULT, Purpose.TX]),
    cap_a=st.floats(min_value=0.0, max_value=80.0, allow_nan=False),
    purpose=st.sampled_from(PURPOSES_201),
    unit=st.sampled_from(["A", "W"]),
    limits=st.lists(
        st.floats(min_value=0.0, max_value=100_000.0, allow_nan=False), min_size=1, max_size=4
    ),
    phases=st.none() | st.integers(min_value=1, max_value=3),
    pid=st.integers(min_value=1, max_value=BASE + 2 * PROFILE_ID_SPAN),
    stack=st.integers(min_value=0, max_value=LEVEL + 3),
    schedules=st.integers(min_value=1, max_value=3),
    action=st.sampled_from(["SetChargingProfile", "RequestStartTransaction"]),
)
def test_a_relayed_2_0_1_cloud_profile_never_lifts_the_cap(  # noqa: PLR0917 (hypothesis)
    cap_purpose: Purpose,
    cap_a: float,
    purpose: str,
    unit: str,
    limits: list[float],
    phases: int | None,
    pid: int,
    stack: int,
    schedules: int,
    action: str,
) -> None:
    model = with_cap(cap_purpose)
    prof = cloud_profile(
        pid, purpose, limits, stack=stack, unit=unit, phases=phases, schedules=schedules
    )
    if action == "SetChargingProfile":
        payload: dict[str, Any] = {"evseId": 1, "chargingProfile": prof}
    else:
        payload = {
            "idToken": {"idToken": "A", "type": "Central"},
            "remoteStartId": 1,
            "evseId": 1,
            "chargingProfile": prof,
        }
    before = copy.deepcopy(payload)
    relayed = filter_cloud_call201(action, payload, model, lambda _evse: cap_a)
    assert payload == before  # the cloud's payload is not modified
    out = relayed["chargingProfile"]
    assert not BASE <= out["id"] < BASE + PROFILE_ID_SPAN  # never the gateway's ids
    if not outranks(purpose, cap_purpose):
        assert out["chargingSchedule"] == prof["chargingSchedule"]  # the station takes the min
        return
    if LEVEL > 0:
        assert out["stackLevel"] < LEVEL  # below the gateway's profile
    for schedule in out["chargingSchedule"]:
        for period in schedule["chargingSchedulePeriod"]:
            amps = period["limit"]
            if unit == "W":
                amps /= NOMINAL_VOLTAGE * (phases or 3)
            assert amps <= cap_a + 1e-9


def test_an_unchanged_call_is_relayed_as_it_came() -> None:
    prof = cloud_profile(7, "TxProfile", [16.0])
    payload = {"evseId": 1, "chargingProfile": prof}
    # Under a station-wide cap a TxProfile passes: the very same object (relayed byte for byte).
    assert filter_cloud_call201("SetChargingProfile", payload, GENERIC, lambda _e: 10.0) is payload
    reset = {"type": "Immediate"}
    assert filter_cloud_call201("Reset", reset, GENERIC, lambda _e: 10.0) is reset
    clear = {"chargingProfileId": 7}
    assert filter_cloud_call201("ClearChargingProfile", clear, GENERIC, lambda _e: 0.0) is clear


def test_a_clear_cannot_reach_the_gateway_s_profiles_by_id() -> None:
    clear = {"chargingProfileId": BASE + 1}
    relayed = filter_cloud_call201("ClearChargingProfile", clear, GENERIC, lambda _e: 0.0)
    assert relayed == {"chargingProfileId": BASE + 1 - PROFILE_ID_SPAN}
    assert_valid("ClearChargingProfile", relayed)


def test_the_evse_asked_for_is_the_one_capped() -> None:
    asked: list[object] = []

    def cap_for(evse: object) -> float:
        asked.append(evse)
        return 10.0

    model = with_cap(Purpose.TX_DEFAULT)
    prof = cloud_profile(5, "TxProfile", [32.0])
    start = {
        "idToken": {"idToken": "A", "type": "Central"},
        "remoteStartId": 3,
        "chargingProfile": prof,
    }
    relayed = filter_cloud_call201("RequestStartTransaction", start, model, cap_for)
    assert (
        relayed["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"]
        == 10
    )
    assert_valid("RequestStartTransaction", relayed)
    filter_cloud_call201(
        "SetChargingProfile", {"evseId": 2, "chargingProfile": prof}, model, cap_for
    )
    assert asked == [None, 2]  # no EVSE said: the cap of an EVSE without a session


def test_the_cloud_s_calls_read_in_1_6_form() -> None:
    prof = cloud_profile(9, "ChargingStationMaxProfile", [20.0], stack=2, schedules=2)
    prof["transactionId"] = "abc"
    action, v16 = as_v16("SetChargingProfile", {"evseId": 0, "chargingProfile": prof}) or ("", {})
    assert action == "SetChargingProfile"
    cloud: dict[int, Any] = {}
    install(cloud, v16, NOW)
    held = cloud[9]
    assert held.connector == 0
    assert held.purpose == "ChargePointMaxProfile"
    assert held.profile["chargingSchedule"] == {
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 20.0}],
    }
    assert "transactionId" not in held.profile
    assert as_v16(
        "ClearChargingProfile",
        {
            "chargingProfileCriteria": {
                "evseId": 1,
                "chargingProfilePurpose": "ChargingStationMaxProfile",
                "stackLevel": 3,
            }
        },
    ) == (
        "ClearChargingProfile",
        {"connectorId": 1, "chargingProfilePurpose": "ChargePointMaxProfile", "stackLevel": 3},
    )
    assert as_v16("ClearChargingProfile", {"chargingProfileId": 4}) == (
        "ClearChargingProfile",
        {"id": 4},
    )
    start = as_v16(
        "RequestStartTransaction",
        {"evseId": 2, "remoteStartId": 1, "idToken": {}, "chargingProfile": prof},
    )
    assert start is not None and start[0] == "RemoteStartTransaction"
    assert start[1]["connectorId"] == 2
    assert as_v16("RequestStartTransaction", {"evseId": 2}) is None
    assert as_v16("Reset", {}) is None


def test_under_a_tx_default_cap_the_cloud_s_tx_default_goes_below_both_of_the_gateway_s() -> None:
    model = variant(with_cap(Purpose.TX_DEFAULT), max_stack_level=6)
    level = model.smart_charging.gateway_stack_level
    prof = cloud_profile(5, "TxDefaultProfile", [32.0], stack=level)
    relayed = filter_cloud_call201(
        "SetChargingProfile", {"evseId": 0, "chargingProfile": prof}, model, lambda _e: 10.0
    )
    # The gateway's: level on each EVSE, level - 1 on EVSE 0; the cloud's shares neither.
    assert relayed["chargingProfile"]["stackLevel"] == level - 2


def test_a_clear_of_the_gateway_s_station_wide_tx_default_is_noticed() -> None:
    def clear(**criteria: Any) -> dict[str, Any]:
        return {"chargingProfileCriteria": criteria}

    assert clears_station_tx_default(clear(evseId=0, stackLevel=5), 6)
    assert clears_station_tx_default(
        clear(chargingProfilePurpose="TxDefaultProfile", stackLevel=5), 6
    )
    assert not clears_station_tx_default(clear(evseId=1, stackLevel=5), 6)
    assert not clears_station_tx_default(clear(evseId=0, stackLevel=6), 6)  # the 1.6 reading's
    assert not clears_station_tx_default(clear(stackLevel=5, chargingProfilePurpose="TxProfile"), 6)
    assert not clears_station_tx_default(clear(stackLevel=0), 0)  # level 0: not lowered
    assert not clears_station_tx_default({"chargingProfileId": 3}, 6)
