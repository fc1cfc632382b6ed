"""The OCPP 1.6 schema check: decimal limits, and nothing but SchemaViolation out of it."""

from __future__ import annotations

import math
from typing import Any

import pytest

from edgegw.proxy import schemas


def schedule(limit: Any) -> dict[str, Any]:
    return {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}


def set_profile(limit: Any) -> dict[str, Any]:
    profile = {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": schedule(limit),
    }
    return {"connectorId": 1, "csChargingProfiles": profile}


@pytest.mark.parametrize(
    "limit", [16, 16.0, 16.1, 0.1, 1e308, 3.4028235e38, 2**70, 1.7976931348623157e308]
)
def test_decimal_limits_and_huge_ones_are_valid(limit: Any) -> None:
    schemas.check_call("SetChargingProfile", set_profile(limit))
    schemas.check_result(
        "GetCompositeSchedule", {"status": "Accepted", "chargingSchedule": schedule(limit)}
    )


@pytest.mark.parametrize("limit", [16.05, 1e-300, 0.30000000000000004, -0.01])
def test_more_than_one_decimal_is_a_property_violation(limit: float) -> None:
    with pytest.raises(schemas.SchemaViolation) as caught:
        schemas.check_call("SetChargingProfile", set_profile(limit))
    assert caught.value.code == "PropertyConstraintViolation"
    assert "multiple of 0.1" in caught.value.description


@pytest.mark.parametrize("limit", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("check", ["call", "result"])
def test_non_finite_numbers_are_violations_not_crashes(limit: float, check: str) -> None:
    with pytest.raises(schemas.SchemaViolation):
        if check == "call":
            schemas.check_call("SetChargingProfile", set_profile(limit))
        else:
            schemas.check_result(
                "GetCompositeSchedule", {"status": "Accepted", "chargingSchedule": schedule(limit)}
            )


def test_a_payload_the_checker_cannot_walk_is_a_violation() -> None:
    looped: dict[str, Any] = set_profile(16)
    looped["csChargingProfiles"]["chargingSchedule"]["self"] = looped
    with pytest.raises(schemas.SchemaViolation) as caught:
        schemas.check_call("SetChargingProfile", looped)
    assert caught.value.code == "FormationViolation"
