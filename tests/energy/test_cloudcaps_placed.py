"""What the site model records of an accepted cloud profile: the cloud's own limits, placed
where the charger holds the relayed copy (``edgegw.energy.cloudcaps.placed``)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from edgegw.energy.chargermodels import Purpose
from edgegw.energy.cloudcaps import CloudProfile, cloud_cap, filter_cloud_call, install, placed
from edgegw.energy.profiles import PROFILE_ID_SPAN
from tests.energy.test_cloudcaps import BASE, LEVEL, NOW, profile, with_cap


def limit_of(payload: dict[str, Any]) -> float:
    schedule = payload["csChargingProfiles"]["chargingSchedule"]
    return float(schedule["chargingSchedulePeriod"][0]["limit"])


@pytest.mark.parametrize("clamped_to", [0.0, 10.0])
def test_the_cloud_s_limit_is_recorded_where_the_charger_holds_its_profile(
    clamped_to: float,
) -> None:
    model = with_cap(Purpose.CHARGE_POINT_MAX)
    asked = {
        "connectorId": 0,
        "csChargingProfiles": profile(BASE + 3, "ChargePointMaxProfile", 32, stack=LEVEL + 2),
    }
    kept = copy.deepcopy(asked)
    relayed = filter_cloud_call("SetChargingProfile", asked, model, lambda _c: clamped_to)
    recorded = placed("SetChargingProfile", asked, model, v2=False)
    assert asked == kept  # not modified
    assert limit_of(relayed) == clamped_to
    assert limit_of(recorded) == 32.0  # the cloud's own limit
    for key in ("chargingProfileId", "stackLevel"):  # where the charger holds it
        assert recorded["csChargingProfiles"][key] == relayed["csChargingProfiles"][key]
    assert recorded["csChargingProfiles"]["chargingProfileId"] == BASE + 3 - PROFILE_ID_SPAN
    held: dict[int, CloudProfile] = {}
    install(held, recorded, NOW)
    cap = cloud_cap(
        held.values(),
        connector=1,
        transaction_id=None,
        started_wall=NOW,
        sessions=1,
        phases=3,
        wall=NOW + 60,
    )
    assert cap == 32.0


def test_placing_a_relayed_call_again_changes_nothing() -> None:
    model = with_cap(Purpose.TX_DEFAULT)
    asked = {"connectorId": 1, "csChargingProfiles": profile(BASE + 1, "TxProfile", 32, stack=9)}
    relayed = filter_cloud_call("SetChargingProfile", asked, model, lambda _c: 8.0)
    assert placed("SetChargingProfile", relayed, model, v2=False) == relayed
    clear = {"id": BASE + 1}
    once = placed("ClearChargingProfile", clear, model, v2=False)
    assert placed("ClearChargingProfile", once, model, v2=False) == once
