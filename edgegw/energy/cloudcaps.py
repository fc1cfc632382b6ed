"""The cloud's charging profiles as the load controller sees them: the one place that reads them.

Pure functions over OCPP 1.6 payloads (the cloud's SetChargingProfile, ClearChargingProfile and
RemoteStartTransaction), no clock and no I/O; a 2.0.1 charger's are clamped in their own form
(:func:`filter_cloud_call201`) and read through their 1.6 form
(:func:`edgegw.energy.profiles201.as_v16`):

* :func:`filter_cloud_call`: the call as it may be relayed, its profile clamped under the cap;
* :func:`placed`: the cloud's call as the charger holds it, with the cloud's own limits (what
  the site model records);
* :func:`install`, :func:`clear`, :func:`remote_start`: the cloud profiles a charger holds once
  it accepted such a call;
* :func:`cloud_cap`: the cloud's own limit for a session now (its profiles, composited), which
  the allocator honours since a clamped cloud profile sits dormant below the gateway's;
* :func:`cap_limit`: the cap a cloud profile on a connector is clamped to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from edgegw.energy import profiles201
from edgegw.energy.chargermodels import ChargerModel, Purpose
from edgegw.energy.profiles import (
    GatewayCap,
    clamp_cloud_profile,
    profile_limit_a,
    remap_cloud_clear,
)

JsonDict = dict[str, Any]


@dataclass(slots=True)
class CloudProfile:
    """A cloud profile the charger accepted."""

    connector: int
    profile: JsonDict
    """Its ``csChargingProfiles``."""
    received_wall: float
    """When the charger accepted it (POSIX s): a ChargePointMaxProfile's anchor."""

    @property
    def purpose(self) -> object:
        return self.profile.get("chargingProfilePurpose")

    @property
    def stack_level(self) -> object:
        return self.profile.get("stackLevel")


CloudProfiles = MutableMapping[int, CloudProfile]
"""A charger's cloud profiles, by chargingProfileId."""


def filter_cloud_call(
    action: str,
    payload: JsonDict,
    model: ChargerModel,
    cap_for: Callable[[object], float | None],
) -> JsonDict:
    """The cloud's call as it may be relayed to a charger of ``model``: a profile it carries
    clamped to ``cap_for(connector)`` (connector 0: the whole charger), a clear that cannot
    reach the gateway's profiles by id; other calls as they are."""
    if action == "SetChargingProfile":
        connector = payload.get("connectorId")
        return clamp_cloud_profile(payload, GatewayCap.for_model(model, cap_for(connector)))
    if action == "ClearChargingProfile":
        return remap_cloud_clear(payload, model)
    if action == "RemoteStartTransaction" and isinstance(payload.get("chargingProfile"), dict):
        connector = payload.get("connectorId")
        cap = GatewayCap.for_model(model, cap_for(connector or 1))
        wrapped = clamp_cloud_profile(
            {"connectorId": connector or 1, "csChargingProfiles": payload["chargingProfile"]},
            cap,
        )
        return {**payload, "chargingProfile": wrapped["csChargingProfiles"]}
    return payload


def filter_cloud_call201(
    action: str,
    payload: JsonDict,
    model: ChargerModel,
    cap_for: Callable[[object], float | None],
) -> JsonDict:
    """:func:`filter_cloud_call` for a charger speaking OCPP 2.0.1 (its ``evseId`` is the
    connector ``cap_for`` takes; a RequestStartTransaction without one gets the cap of an EVSE
    without a session). Returns ``payload`` itself when nothing changes, so that the frame is
    relayed byte for byte unless the cap needs it."""
    evse = payload.get("evseId")
    out = payload
    if action in ("SetChargingProfile", "RequestStartTransaction"):
        profile = payload.get("chargingProfile")
        if isinstance(profile, dict):
            cap = GatewayCap.for_model(model, cap_for(evse))
            out = {**payload, "chargingProfile": profiles201.clamp_cloud_profile(profile, cap)}
    elif action == "ClearChargingProfile":
        out = profiles201.remap_cloud_clear(payload, model.smart_charging.profile_id_base)
    return payload if out == payload else out


def placed(action: str, payload: JsonDict, model: ChargerModel, *, v2: bool) -> JsonDict:
    """The cloud's call (``v2``: in 2.0.1 form) as a charger of ``model`` holds it once
    relayed, but with the cloud's own limits: its profile ids and stack levels moved as the
    filter moves them (that does not depend on the cap), no limit clamped. What the site model
    records of an accepted cloud call: the cloud's limit is honoured through
    :func:`cloud_cap`, never the clamped copy, which would hold the charger at whatever the
    cap was when the cloud's call came (the safe limit while idle)."""
    if v2:
        return filter_cloud_call201(action, payload, model, _no_cap)
    return filter_cloud_call(action, payload, model, _no_cap)


def _no_cap(_connector: object) -> float | None:
    return None


def accepted(response: Mapping[str, Any] | None) -> bool:
    """Did the charger accept the cloud's call?"""
    return response is not None and response.get("status") == "Accepted"


def install(cloud: CloudProfiles, payload: Mapping[str, Any], wall: float) -> int | None:
    """An accepted SetChargingProfile: the new profile replaces one with the same id or in the
    same (connector, purpose, stack level) slot. Returns the connector when it is a
    TxProfile (its session then carries a cloud TxProfile), else None."""
    profile = payload.get("csChargingProfiles")
    connector = payload.get("connectorId")
    if not isinstance(profile, dict) or not isinstance(connector, int):
        return None
    pid = profile.get("chargingProfileId")
    for old_id, old in list(cloud.items()):
        same_slot = (
            old.connector == connector
            and old.purpose == profile.get("chargingProfilePurpose")
            and old.stack_level == profile.get("stackLevel")
        )
        if old_id == pid or same_slot:
            del cloud[old_id]
    if isinstance(pid, int):
        cloud[pid] = CloudProfile(connector, dict(profile), wall)
    if profile.get("chargingProfilePurpose") == Purpose.TX.value:
        return connector
    return None


def clear(cloud: CloudProfiles, payload: Mapping[str, Any]) -> None:
    """An accepted ClearChargingProfile (OCPP 1.6 §5.5 matching: by id, or by every one of
    connector, purpose and stack level that is given)."""
    pid = payload.get("id")
    for old_id, old in list(cloud.items()):
        if pid is not None:
            hit = old_id == pid
        else:
            hit = (
                payload.get("connectorId") in (None, old.connector)
                and payload.get("chargingProfilePurpose") in (None, old.purpose)
                and payload.get("stackLevel") in (None, old.stack_level)
            )
        if hit:
            del cloud[old_id]


def remote_start(cloud: CloudProfiles, payload: Mapping[str, Any], wall: float) -> None:
    """An accepted RemoteStartTransaction that carried a profile (connector 1 when unsaid)."""
    carried = payload.get("chargingProfile")
    if not isinstance(carried, dict):
        return
    profile = dict(carried)
    pid = profile.get("chargingProfileId")
    if isinstance(pid, int):
        cloud[pid] = CloudProfile(int(payload.get("connectorId") or 1), profile, wall)


def has_tx_profile(cloud: Iterable[CloudProfile], connector: int) -> bool:
    return any(c.connector == connector and c.purpose == Purpose.TX.value for c in cloud)


def drop_tx_profiles(cloud: CloudProfiles, connector: int) -> None:
    """The transaction on ``connector`` ended: the charger deleted its TxProfiles."""
    for pid, old in list(cloud.items()):
        if old.connector == connector and old.purpose == "TxProfile":
            del cloud[pid]


def cloud_cap(
    cloud: Iterable[CloudProfile],
    *,
    connector: int,
    transaction_id: int | None,
    started_wall: float,
    sessions: int,
    phases: int,
    wall: float,
) -> float | None:
    """The cloud's own limit (A per phase) for the session on ``connector`` at ``wall``.

    Per slot (purpose, connector) the highest stack level in force wins; the session gets the
    minimum of a ChargePointMaxProfile shared by the charger's ``sessions`` and its Tx part
    (its TxProfile, else its connector's TxDefaultProfile, else the charger-wide one).
    None: no cloud profile limits it now.
    """
    best: dict[tuple[str, int], tuple[int, float]] = {}
    for held in cloud:
        profile = held.profile
        purpose = str(profile.get("chargingProfilePurpose"))
        if purpose == Purpose.TX.value:
            if held.connector != connector:
                continue
            tx = profile.get("transactionId")
            if tx is not None and tx != transaction_id:
                continue
            anchor = started_wall
        elif purpose == Purpose.TX_DEFAULT.value:
            if held.connector not in (0, connector):
                continue
            anchor = started_wall
        elif purpose == Purpose.CHARGE_POINT_MAX.value:
            anchor = held.received_wall
        else:
            continue
        limit = profile_limit_a(profile, wall, anchor=anchor, phases=phases)
        if limit is None:
            continue
        stack = profile.get("stackLevel")
        level = stack if isinstance(stack, int) else 0
        slot = (purpose, held.connector)
        if slot not in best or level > best[slot][0]:
            best[slot] = (level, limit)
    caps: list[float] = []
    cp = best.get((Purpose.CHARGE_POINT_MAX.value, 0))
    if cp is not None:
        caps.append(cp[1] / max(1, sessions))
    for slot in (
        (Purpose.TX.value, connector),
        (Purpose.TX_DEFAULT.value, connector),
        (Purpose.TX_DEFAULT.value, 0),
    ):
        if slot in best:
            caps.append(best[slot][1])
            break
    return min(caps) if caps else None


def cap_limit(
    cap_purpose: Purpose | None,
    connector: object,
    *,
    decided: Mapping[int, float | None],
    safe_a: float,
) -> float | None:
    """The cap a cloud profile on ``connector`` is clamped to (connector 0: the whole charger).

    ``decided`` holds each session's limit by connector (None: not decided yet), ``safe_a``
    the charger's safe limit. A session's own decided limit; else (no session, nothing decided)
    the safe limit; the whole charger: the sum of the decided limits under a
    ChargePointMaxProfile cap, else the largest of them and the safe limit. None: the charger
    has no cap to keep (its model cannot be limited), nothing is clamped.
    """
    if cap_purpose is None:
        return None
    limits = [a for a in decided.values() if a is not None]
    if connector == 0:
        if cap_purpose is Purpose.CHARGE_POINT_MAX:
            return sum(limits) if limits else safe_a
        return max([*limits, safe_a])
    if isinstance(connector, int) and connector in decided:
        own = decided[connector]
        if own is not None:
            return own
    return safe_a
