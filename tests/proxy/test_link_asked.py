"""A cloud call the filters rewrote: the charger gets the rewrite, the filters hear back what
the cloud asked (its limits, not the clamped ones). Relay core only, no sockets."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest

from edgegw.proxy.link import CloudExchanged, Link, ToCharger, ToCloud

PROFILE16 = {
    "connectorId": 0,
    "csChargingProfiles": {
        "chargingProfileId": 5,
        "stackLevel": 3,
        "chargingProfilePurpose": "ChargePointMaxProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "startSchedule": "2026-01-01T00:00:00Z",
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 32.0}],
        },
    },
}


def clamp_to_zero(action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A filter that clamps every 1.6 profile to 0 A (as the site's safe limit would)."""
    if action != "SetChargingProfile":
        return payload
    out = copy.deepcopy(payload)
    for period in out["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"]:
        period["limit"] = 0.0
    return out


def online(version: str) -> Link:
    counter = itertools.count(1)
    link = Link(
        "CP1",
        cloud_configured=True,
        validate=True,
        call_timeout=30,
        clock=lambda: 1000.0,
        new_id=lambda: str(next(counter)),
        cloud_filter=clamp_to_zero,
    )
    link.use_version(version)
    assert link.outbox_loaded([], more=False) == []
    assert link.cloud_connected() == []
    return link


def test_the_filters_hear_the_cloud_s_own_profile_the_charger_the_clamped_one() -> None:
    link = online("ocpp1.6")
    asked = json.dumps([2, "k1", "SetChargingProfile", PROFILE16])
    out = link.on_cloud_message(asked)
    relayed = [json.loads(c.frame) for c in out if isinstance(c, ToCharger)]
    assert len(relayed) == 1
    schedule = relayed[0][3]["csChargingProfiles"]["chargingSchedule"]
    assert schedule["chargingSchedulePeriod"][0]["limit"] == 0.0
    answer = json.dumps([3, "k1", {"status": "Accepted"}])
    done = link.on_charger_message(answer)
    assert ToCloud(answer) in done
    exchanged = [c for c in done if isinstance(c, CloudExchanged)]
    assert len(exchanged) == 1
    assert exchanged[0].call.payload == PROFILE16  # 32 A, as the cloud asked
    assert exchanged[0].call.action == "SetChargingProfile"


@pytest.mark.parametrize("version", ["ocpp1.6", "ocpp2.0.1"])
def test_a_call_no_filter_rewrites_is_relayed_and_heard_as_it_came(version: str) -> None:
    link = online(version)
    asked = json.dumps([2, "k2", "ClearChargingProfile", {}])
    assert link.on_cloud_message(asked) == [ToCharger(asked)]  # byte for byte
    done = link.on_charger_message(json.dumps([3, "k2", {"status": "Accepted"}]))
    exchanged = [c for c in done if isinstance(c, CloudExchanged)]
    assert [c.call.raw for c in exchanged] == [asked]
