"""The cloud's profiles as load capping reads them (``edgegw.energy.cloudcaps``), directly.

A cloud profile can never lift the site cap: whatever the cloud sends, what is relayed to the
charger stays below the gateway's cap (property-tested), and the allocator honours the cloud's
own, lower limits (:func:`cloud_cap`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from edgegw.energy.chargermodels import ChargerModel, Purpose, load_models
from edgegw.energy.cloudcaps import (
    CloudProfile,
    cap_limit,
    clear,
    cloud_cap,
    drop_tx_profiles,
    filter_cloud_call,
    has_tx_profile,
    install,
    remote_start,
)
from edgegw.energy.profiles import NOMINAL_VOLTAGE, PROFILE_ID_SPAN

MODELS = load_models(Path(__file__).resolve().parents[2] / "hardware" / "chargers")
GENERIC = MODELS["generic-ocpp16"]
BASE = GENERIC.smart_charging.profile_id_base
LEVEL = GENERIC.smart_charging.gateway_stack_level
NOW = 1_700_000_000.0


def with_cap(purpose: Purpose) -> ChargerModel:
    """The generic model, keeping its cap in ``purpose``."""
    purposes = {
        Purpose.CHARGE_POINT_MAX: [Purpose.CHARGE_POINT_MAX, Purpose.TX_DEFAULT, Purpose.TX],
        Purpose.TX_DEFAULT: [Purpose.TX_DEFAULT, Purpose.TX],
        Purpose.TX: [Purpose.TX],
    }[purpose]
    sc = GENERIC.smart_charging.model_copy(update={"purposes": purposes})
    model = GENERIC.model_copy(update={"smart_charging": sc})
    assert model.cap_purpose is purpose
    return model


def profile(
    pid: int,
    purpose: str,
    limit: float,
    *,
    stack: int = 0,
    unit: str = "A",
    tx: int | None = None,
    phases: int | None = None,
) -> dict[str, Any]:
    period: dict[str, Any] = {"startPeriod": 0, "limit": limit}
    if phases is not None:
        period["numberPhases"] = phases
    out: dict[str, Any] = {
        "chargingProfileId": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Relative",
        "chargingSchedule": {"chargingRateUnit": unit, "chargingSchedulePeriod": [period]},
    }
    if tx is not None:
        out["transactionId"] = tx
    return out


def set_call(connector: int, prof: dict[str, Any]) -> dict[str, Any]:
    return {"connectorId": connector, "csChargingProfiles": prof}


# ------------------------------------------------------------------ the relayed call


purposes = st.sampled_from(["ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"])
caps = st.sampled_from(
    [Purpose.CHARGE_POINT_MAX, Purpose.TX_DEFAULT, Purpose.TX]  # where the model keeps its cap
)


def outranks(purpose: str, cap: Purpose) -> bool:
    """Would a cloud profile of ``purpose`` take the cap's place (profiles.py's rule)?"""
    if purpose == cap.value:
        return True
    if cap is Purpose.TX_DEFAULT:
        return purpose == "TxProfile"
    if cap is Purpose.TX:
        return purpose == "TxDefaultProfile"
    return False


@given(
    cap_purpose=caps,
    cap_a=st.floats(min_value=0.0, max_value=80.0, allow_nan=False),
    purpose=purposes,
    unit=st.sampled_from(["A", "W"]),
    limits=st.lists(
        st.floats(min_value=0.0, max_value=100_000.0, allow_nan=False), min_size=1, max_size=4
    ),
    phases=st.none() | st.integers(min_value=1, max_value=3),
    pid=st.integers(min_value=1, max_value=BASE + 2 * PROFILE_ID_SPAN),
    stack=st.integers(min_value=0, max_value=LEVEL + 3),
)
def test_a_relayed_cloud_profile_never_lifts_the_cap(  # noqa: PLR0917 (hypothesis)
    cap_purpose: Purpose,
    cap_a: float,
    purpose: str,
    unit: str,
    limits: list[float],
    phases: int | None,
    pid: int,
    stack: int,
) -> None:
    model = with_cap(cap_purpose)
    prof = profile(pid, purpose, 0, stack=stack, unit=unit)
    prof["chargingSchedule"]["chargingSchedulePeriod"] = [
        {"startPeriod": 60 * i, "limit": v, **({} if phases is None else {"numberPhases": phases})}
        for i, v in enumerate(limits)
    ]
    payload = set_call(1, prof)
    before = copy.deepcopy(payload)
    relayed = filter_cloud_call("SetChargingProfile", payload, model, lambda _c: cap_a)
    assert payload == before  # the cloud's payload is not modified
    out = relayed["csChargingProfiles"]
    assert not BASE <= out["chargingProfileId"] < BASE + PROFILE_ID_SPAN  # never our ids
    if not outranks(purpose, cap_purpose):
        assert out["chargingSchedule"] == prof["chargingSchedule"]  # the charger takes the min
        return
    if LEVEL > 0:
        assert out["stackLevel"] < LEVEL  # below the gateway's profile
    for period in out["chargingSchedule"]["chargingSchedulePeriod"]:
        amps = period["limit"]
        if unit == "W":
            amps /= NOMINAL_VOLTAGE * (phases or 3)
        assert amps <= cap_a + 1e-9


def test_a_remote_start_profile_is_clamped_on_its_connector() -> None:
    model = with_cap(Purpose.TX_DEFAULT)
    asked: list[object] = []

    def cap_for(connector: object) -> float:
        asked.append(connector)
        return 10.0

    payload = {"idTag": "X", "chargingProfile": profile(5, "TxProfile", 32)}
    relayed = filter_cloud_call("RemoteStartTransaction", payload, model, cap_for)
    assert asked == [1]  # connector 1 when the call does not say
    assert relayed["idTag"] == "X"
    assert (
        relayed["chargingProfile"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 10
    )


def test_other_calls_pass_as_they_are() -> None:
    payload = {"type": "Soft"}
    assert filter_cloud_call("Reset", payload, GENERIC, lambda _c: 0.0) is payload
    cleared = filter_cloud_call("ClearChargingProfile", {"id": BASE + 1}, GENERIC, lambda _c: 0.0)
    assert cleared == {"id": BASE + 1 - PROFILE_ID_SPAN}  # cannot reach ours by id


# ------------------------------------------------------------------ the cap clamped to


def test_cap_limit() -> None:
    decided = {1: 10.0, 2: None}
    assert cap_limit(None, 1, decided=decided, safe_a=6) is None  # nothing to keep
    assert cap_limit(Purpose.TX_DEFAULT, 1, decided=decided, safe_a=6) == 10  # its own
    assert cap_limit(Purpose.TX_DEFAULT, 2, decided=decided, safe_a=6) == 6  # not decided yet
    assert cap_limit(Purpose.TX_DEFAULT, 3, decided=decided, safe_a=6) == 6  # no session
    assert cap_limit(Purpose.TX_DEFAULT, "1", decided=decided, safe_a=6) == 6  # not a connector
    # The whole charger: the sum under a ChargePointMaxProfile, else the largest.
    two = {1: 10.0, 2: 8.0}
    assert cap_limit(Purpose.CHARGE_POINT_MAX, 0, decided=two, safe_a=6) == 18
    assert cap_limit(Purpose.TX_DEFAULT, 0, decided=two, safe_a=6) == 10
    assert cap_limit(Purpose.CHARGE_POINT_MAX, 0, decided={}, safe_a=6) == 6
    assert cap_limit(Purpose.TX_DEFAULT, 0, decided={1: 4.0}, safe_a=6) == 6


# ------------------------------------------------------------------ the profiles held


def test_install_replaces_by_id_or_slot_and_says_which_session_has_a_tx_profile() -> None:
    cloud: dict[int, CloudProfile] = {}
    assert install(cloud, set_call(0, profile(1, "ChargePointMaxProfile", 20)), NOW) is None
    assert install(cloud, set_call(1, profile(2, "TxProfile", 16, tx=7)), NOW) == 1
    assert sorted(cloud) == [1, 2]
    # Same id: replaced.
    install(cloud, set_call(0, profile(1, "ChargePointMaxProfile", 18)), NOW + 1)
    assert cloud[1].profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 18
    assert cloud[1].received_wall == NOW + 1
    # Same connector, purpose and stack level, another id: replaced too.
    install(cloud, set_call(0, profile(9, "ChargePointMaxProfile", 12)), NOW)
    assert sorted(cloud) == [2, 9]
    assert has_tx_profile(cloud.values(), 1) and not has_tx_profile(cloud.values(), 2)
    # Malformed: nothing changes.
    assert install(cloud, {"connectorId": "1", "csChargingProfiles": {}}, NOW) is None
    assert install(cloud, {"connectorId": 1}, NOW) is None
    assert sorted(cloud) == [2, 9]
    drop_tx_profiles(cloud, 1)
    assert sorted(cloud) == [9]


def test_clear_by_id_or_by_every_criterion_given() -> None:
    cloud: dict[int, CloudProfile] = {}
    install(cloud, set_call(0, profile(1, "ChargePointMaxProfile", 20)), NOW)
    install(cloud, set_call(1, profile(2, "TxDefaultProfile", 16, stack=1)), NOW)
    install(cloud, set_call(2, profile(3, "TxDefaultProfile", 16, stack=2)), NOW)
    clear(cloud, {"id": 1})
    assert sorted(cloud) == [2, 3]
    clear(cloud, {"chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 2})
    assert sorted(cloud) == [2]
    clear(cloud, {})
    assert cloud == {}


def test_remote_start_keeps_its_profile() -> None:
    cloud: dict[int, CloudProfile] = {}
    remote_start(cloud, {"connectorId": 2, "chargingProfile": profile(4, "TxProfile", 10)}, NOW)
    remote_start(cloud, {"chargingProfile": profile(5, "TxProfile", 10)}, NOW)
    remote_start(cloud, {"chargingProfile": "no"}, NOW)
    assert {pid: c.connector for pid, c in cloud.items()} == {4: 2, 5: 1}


# ------------------------------------------------------------------ the cloud's own limit


def held(*entries: tuple[int, dict[str, Any]]) -> list[CloudProfile]:
    return [CloudProfile(connector, prof, NOW - 10) for connector, prof in entries]


def cap_of(
    cloud: list[CloudProfile], *, connector: int = 1, tx: int | None = 7, sessions: int = 1
) -> float | None:
    return cloud_cap(
        cloud,
        connector=connector,
        transaction_id=tx,
        started_wall=NOW - 10,
        sessions=sessions,
        phases=3,
        wall=NOW,
    )


def test_no_cloud_profile_no_cloud_limit() -> None:
    assert cap_of([]) is None


def test_the_charge_point_max_is_shared_by_the_sessions() -> None:
    cloud = held((0, profile(1, "ChargePointMaxProfile", 20)))
    assert cap_of(cloud) == 20
    assert cap_of(cloud, sessions=2) == 10


def test_the_tx_part_tx_profile_then_own_tx_default_then_the_charger_wide_one() -> None:
    wide = (0, profile(1, "TxDefaultProfile", 6))
    own = (1, profile(2, "TxDefaultProfile", 8))
    tx = (1, profile(3, "TxProfile", 16, tx=7))
    assert cap_of(held(wide, own, tx)) == 16
    assert cap_of(held(wide, own)) == 8
    assert cap_of(held(wide)) == 6
    assert cap_of(held(wide, own, tx), tx=8) == 8  # another transaction's TxProfile
    assert cap_of(held(own), connector=2) is None  # another connector's


def test_the_highest_stack_level_wins_within_a_slot_and_watts_convert() -> None:
    cloud = held(
        (1, profile(1, "TxDefaultProfile", 16, stack=1)),
        (1, profile(2, "TxDefaultProfile", 10, stack=3)),
    )
    assert cap_of(cloud) == 10
    watts = held((0, profile(1, "ChargePointMaxProfile", 3 * 230 * 10, unit="W")))
    assert cap_of(watts) == 10


def test_a_profile_not_in_force_does_not_limit() -> None:
    later = profile(1, "TxDefaultProfile", 6)
    later["validFrom"] = "2100-01-01T00:00:00Z"
    assert cap_of(held((1, later))) is None
