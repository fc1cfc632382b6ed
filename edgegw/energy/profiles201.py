"""OCPP 2.0.1 charging profiles: the gateway's own rendered in 2.0.1 form, the cloud's read.

The site model plans every charger's profiles once, in OCPP 1.6 terms
(:func:`edgegw.energy.profiles.plan_profiles`: a ``SetChargingProfile.req`` per
:class:`~edgegw.energy.profiles.ProfileCommand`); what is in force, what is a cut and what the
allocator counts do not depend on the version. A charger speaking OCPP 2.0.1 gets the same
profile *rendered* in its form (:func:`set_charging_profile`), and the cloud's 2.0.1 calls are
*read* into the 1.6 form the site model keeps (:func:`as_v16`) and clamped in place
(:func:`clamp_cloud_profile`). Pure functions, no I/O.

The mapping (OCPP 2.0.1 Part 2, K01 and §2.10 of the data types):

* ``connectorId`` → ``evseId``. The site model's connector key **is the EVSE id** for a 2.0.1
  charger (``edgegw.ocpp.interpret201``: an EVSE is what charges one car and is metered, as a
  1.6 connector; its plug's own ``connectorId`` plays no part in capping). 0 is the station.
* ``ChargePointMaxProfile`` → ``ChargingStationMaxProfile`` (on EVSE 0 only, as 1.6's
  connector 0); ``TxDefaultProfile`` and ``TxProfile`` keep their names.
* ``csChargingProfiles`` → ``chargingProfile``, ``chargingProfileId`` → ``id``; the one
  ``chargingSchedule`` becomes a list of one, with an ``id`` of its own (the profile's id: the
  gateway keeps one schedule per profile, so it is unique per profile).
* a ``TxProfile`` carries the charger's own string ``transactionId`` (2.0.1 requires it).
* ``numberPhases`` as in 1.6 (with W limits only). ``phaseToUse`` is never sent: it is allowed
  only with ``numberPhases`` = 1 on an EVSE whose ``ACPhaseSwitchingSupported`` is true
  (otherwise the station rejects the profile), the charger models do not say that, and the
  gateway does not choose a car's phase (the allocator follows the phases the car draws on).

The cloud's profiles read back: a 2.0.1 profile's first schedule is the one kept (more than one
is for ISO 15118 cars choosing among them; an AC station without it uses the first), its
``transactionId`` is dropped (the charger deletes a TxProfile when its transaction ends, and
the site model drops it then: it applies to the session on its EVSE).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from edgegw.energy.chargermodels import Purpose
from edgegw.energy.profiles import (
    PROFILE_ID_SPAN,
    START_IN_PAST_S,
    GatewayCap,
    ProfileCommand,
    ProfileError,
    ProfileKey,
    clamp_schedule,
    outranks_cap,
    timestamp,
)

JsonDict = dict[str, Any]

STATION_MAX: Final = "ChargingStationMaxProfile"
TO_V201: Final = {
    Purpose.CHARGE_POINT_MAX.value: STATION_MAX,
    Purpose.TX_DEFAULT.value: Purpose.TX_DEFAULT.value,
    Purpose.TX.value: Purpose.TX.value,
}
"""1.6 ``chargingProfilePurpose`` → 2.0.1."""
TO_V16: Final = {v201: v16 for v16, v201 in TO_V201.items()}
"""2.0.1 ``chargingProfilePurpose`` → 1.6 (``ChargingStationExternalConstraints``: none; the
station sets those itself from an energy manager, a CSMS may not)."""
_PROFILE_KEYS: Final = ("chargingProfileKind", "recurrencyKind", "validFrom", "validTo")
_SCHEDULE_KEYS: Final = ("startSchedule", "duration", "minChargingRate")
_TRANSACTION_ID_MAX: Final = 36


# --------------------------------------------------------------------------------------------
# The gateway's own profiles


def set_charging_profile(
    cmd: ProfileCommand, *, transaction_id: str | None = None, now: float
) -> JsonDict:
    """``cmd``'s ``SetChargingProfileRequest`` in OCPP 2.0.1 form.

    ``transaction_id``: the charger's id of the session on the command's EVSE, which a
    ``TxProfile`` must carry; ``now`` (POSIX s) starts a ChargingStationMaxProfile that the
    charger model wants Relative (2.0.1 rejects a Relative one, K01.FR.38: it is sent Absolute,
    from a minute ago, as every Absolute profile of the gateway). A TxDefaultProfile on EVSE 0
    goes one stack level below the gateway's (:func:`station_level`). Raises
    :class:`~edgegw.energy.profiles.ProfileError` when a TxProfile has no transaction id (or
    one longer than 2.0.1's 36 characters).
    """
    payload = cmd.payload
    profile: Mapping[str, Any] = payload["csChargingProfiles"]
    schedule: Mapping[str, Any] = profile["chargingSchedule"]
    purpose = TO_V201[profile["chargingProfilePurpose"]]
    pid = profile["chargingProfileId"]
    out_schedule: JsonDict = {"id": pid, "chargingRateUnit": schedule["chargingRateUnit"]}
    for key in _SCHEDULE_KEYS:
        if key in schedule:
            out_schedule[key] = schedule[key]
    out: JsonDict = {
        "id": pid,
        "stackLevel": station_level(cmd.key, profile["stackLevel"]),
        "chargingProfilePurpose": purpose,
    }
    for key in _PROFILE_KEYS:
        if key in profile:
            out[key] = profile[key]
    if purpose == STATION_MAX and out["chargingProfileKind"] == "Relative":
        out["chargingProfileKind"] = "Absolute"
        out_schedule["startSchedule"] = timestamp(now - START_IN_PAST_S)
    out_schedule["chargingSchedulePeriod"] = [dict(p) for p in schedule["chargingSchedulePeriod"]]
    if purpose == Purpose.TX.value:
        if not transaction_id or len(transaction_id) > _TRANSACTION_ID_MAX:
            raise ProfileError(
                f"a TxProfile on EVSE {cmd.key.connector_id} needs the transaction's id "
                f"(1 to {_TRANSACTION_ID_MAX} characters), got {transaction_id!r}"
            )
        out["transactionId"] = transaction_id
    out["chargingSchedule"] = [out_schedule]
    return {"evseId": payload["connectorId"], "chargingProfile": out}


def station_level(key: ProfileKey, level: int) -> int:
    """The stack level of the gateway's profile ``key`` on a 2.0.1 station, ``level`` being the
    gateway's: the same, except a TxDefaultProfile on EVSE 0 one below (when it can be). A
    2.0.1 station rejects a TxDefaultProfile on EVSE 0 and one on an EVSE at the same stack level
    (K01.FR.52/53); one level apart they mean what they mean in 1.6, where an EVSE's own
    TxDefaultProfile beats the station-wide one (it also has the higher level here)."""
    if key.purpose is Purpose.TX_DEFAULT and key.connector_id == 0 and level > 0:
        return level - 1
    return level


def clears_station_tx_default(payload: Mapping[str, Any], level: int) -> bool:
    """Does a 2.0.1 ``ClearChargingProfileRequest`` (by criteria) remove the gateway's
    TxDefaultProfile on EVSE 0, which sits at ``station_level``, not at the gateway's ``level``
    the 1.6 reading (:func:`as_v16`) matches with?"""
    lowered = station_level(ProfileKey(0, Purpose.TX_DEFAULT), level)
    criteria = payload.get("chargingProfileCriteria")
    if lowered == level or "chargingProfileId" in payload or not isinstance(criteria, Mapping):
        return False
    return (
        criteria.get("evseId") in (None, 0)
        and criteria.get("chargingProfilePurpose") in (None, Purpose.TX_DEFAULT.value)
        and criteria.get("stackLevel") == lowered
    )


# --------------------------------------------------------------------------------------------
# The cloud's profiles


def profile_as_v16(profile: Mapping[str, Any]) -> JsonDict:
    """A 2.0.1 ``chargingProfile`` in the 1.6 ``csChargingProfiles`` form the site model
    keeps (first schedule, no transaction id; see the module's text). Unreadable parts are
    left out: the site model skips what it cannot read."""
    out: JsonDict = {
        "chargingProfileId": profile.get("id"),
        "stackLevel": profile.get("stackLevel"),
    }
    purpose = profile.get("chargingProfilePurpose")
    out["chargingProfilePurpose"] = (
        TO_V16.get(purpose, purpose) if isinstance(purpose, str) else purpose
    )
    for key in _PROFILE_KEYS:
        if key in profile:
            out[key] = profile[key]
    schedules = profile.get("chargingSchedule")
    if isinstance(schedules, list) and schedules and isinstance(schedules[0], Mapping):
        out["chargingSchedule"] = {k: v for k, v in schedules[0].items() if k != "id"}
    return out


def as_v16(action: str, payload: Mapping[str, Any]) -> tuple[str, JsonDict] | None:
    """A 2.0.1 cloud call that changes a charger's profiles, as the 1.6 call the site model
    reads (``SetChargingProfile``, ``ClearChargingProfile``, ``RequestStartTransaction`` as
    ``RemoteStartTransaction``); None for any other call."""
    if action == "SetChargingProfile":
        profile = payload.get("chargingProfile")
        if not isinstance(profile, Mapping):
            return None
        return action, {
            "connectorId": payload.get("evseId"),
            "csChargingProfiles": profile_as_v16(profile),
        }
    if action == "ClearChargingProfile":
        cleared: JsonDict = {}
        if "chargingProfileId" in payload:
            cleared["id"] = payload["chargingProfileId"]
        criteria = payload.get("chargingProfileCriteria")
        if isinstance(criteria, Mapping):
            if "evseId" in criteria:
                cleared["connectorId"] = criteria["evseId"]
            purpose = criteria.get("chargingProfilePurpose")
            if purpose is not None:
                cleared["chargingProfilePurpose"] = (
                    TO_V16.get(purpose, purpose) if isinstance(purpose, str) else purpose
                )
            if "stackLevel" in criteria:
                cleared["stackLevel"] = criteria["stackLevel"]
        return action, cleared
    if action == "RequestStartTransaction":
        profile = payload.get("chargingProfile")
        if not isinstance(profile, Mapping):
            return None
        return "RemoteStartTransaction", {
            "connectorId": payload.get("evseId"),
            "chargingProfile": profile_as_v16(profile),
        }
    return None


def clamp_cloud_profile(profile: Mapping[str, Any], cap: GatewayCap) -> JsonDict:
    """The cloud's 2.0.1 ``chargingProfile`` as it may be relayed: never above the site cap.

    The 1.6 rule (:func:`edgegw.energy.profiles.clamp_cloud_profile`) on 2.0.1's names: an id
    in the gateway's range moved out of it; a profile that would take the cap's place moved one
    stack level below the gateway's, every period of every schedule clamped to the cap; under a
    ChargingStationMaxProfile cap, Tx and TxDefault profiles pass (the station obeys the
    minimum). Returns a new dict; malformed parts are left for the charger to answer.
    """
    out: JsonDict = copy.deepcopy(dict(profile))
    pid = out.get("id")
    if isinstance(pid, int) and cap.id_base <= pid < cap.id_base + PROFILE_ID_SPAN:
        out["id"] = pid - PROFILE_ID_SPAN
    purpose = out.get("chargingProfilePurpose")
    if not isinstance(purpose, str) or not outranks_cap(TO_V16.get(purpose, purpose), cap):
        return out
    stack = out.get("stackLevel")
    below = cap.stack_level - 1
    if cap.purpose is Purpose.TX_DEFAULT and TO_V16.get(purpose) == Purpose.TX_DEFAULT.value:
        # Below the gateway's station-wide one too, when there is room (else the station
        # refuses the cloud's: K01.FR.06/53; the cap holds either way).
        lower = station_level(ProfileKey(0, Purpose.TX_DEFAULT), cap.stack_level) - 1
        below = lower if lower >= 0 else below
    if isinstance(stack, int) and stack > below >= 0:
        out["stackLevel"] = below
    schedules = out.get("chargingSchedule")
    if isinstance(schedules, list):
        for schedule in schedules:
            if isinstance(schedule, dict):
                clamp_schedule(schedule, cap)
    return out


def remap_cloud_clear(payload: Mapping[str, Any], id_base: int) -> JsonDict:
    """A cloud 2.0.1 ``ClearChargingProfileRequest`` whose ``chargingProfileId`` is in the
    gateway's range pointed at the id :func:`clamp_cloud_profile` gave that cloud profile."""
    out: JsonDict = dict(payload)
    pid = out.get("chargingProfileId")
    if isinstance(pid, int) and id_base <= pid < id_base + PROFILE_ID_SPAN:
        out["chargingProfileId"] = pid - PROFILE_ID_SPAN
    return out
