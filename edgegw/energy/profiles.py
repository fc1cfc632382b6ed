"""OCPP 1.6 charging profiles: the gateway's own, and the cloud's kept below the site cap.

Pure functions, no I/O and no clock (callers pass ``now`` as POSIX seconds), so every payload
the controller sends can be checked in a unit test.

The gateway's cap lives where the charger model says it works best (``ChargerModel.cap_purpose``):

* **ChargePointMaxProfile on connector 0** when the charger takes it. One profile caps the
  whole charger, chargers keep it while offline, and the cloud's own TxProfile and
  TxDefaultProfile still apply underneath it, because a charger obeys the *minimum* of
  ChargePointMaxProfile and the Tx profile in force (spec-facts §2.1). On a charger with several
  connectors the limit is the sum of its sessions' limits; per-connector TxDefaultProfiles then
  split it as the allocator decided.
* else **TxDefaultProfile** (connector 0 for idle connectors, each connector for its session),
  switching to a **TxProfile** with the transaction id for a session whose charger does not
  apply a new TxDefaultProfile to a running transaction, or that carries a cloud TxProfile
  (a TxProfile always beats a TxDefaultProfile, whatever the stack levels).

The gateway's profiles use the highest stack level the charger allows and ids from a reserved
range (``SmartCharging.profile_id_base``), so that the cloud's profiles can neither replace
them by id nor outrank them: :func:`clamp_cloud_profile` moves a cloud profile that would
outrank the cap below it and clamps its limits to the cap. Within one purpose the highest
stack level wins outright (spec-facts §2.1), so the cloud's profile is then dormant; the
controller honours its limits itself (:func:`profile_limit_a`) when it allocates.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from edgegw.energy.chargermodels import ChargerModel, ProfileScope, Purpose, RateUnit

JsonDict = dict[str, Any]

NOMINAL_VOLTAGE: Final = 230.0
"""Line-to-neutral voltage for A <-> W: OCPP 1.6 converts with the nominal voltage."""

PROFILE_ID_SPAN: Final = 1000
"""Ids ``profile_id_base .. profile_id_base + 999`` are the gateway's."""

_SLOTS: Final = {Purpose.CHARGE_POINT_MAX: 0, Purpose.TX_DEFAULT: 1, Purpose.TX: 2}
_MAX_CONNECTOR: Final = 99
START_IN_PAST_S: Final = 60.0
"""Absolute schedules start a minute ago: a start in the future means "no limit until then"."""
_RECURRENCE_S: Final = {"Daily": 86_400.0, "Weekly": 604_800.0}


class ProfileError(ValueError):
    """A profile cannot be built (connector out of range, negative limit...)."""


# --------------------------------------------------------------------------------------------
# The gateway's own profiles


@dataclass(frozen=True, slots=True)
class ProfileKey:
    """Where a gateway profile sits: at most one per (connector, purpose)."""

    connector_id: int
    purpose: Purpose

    def __str__(self) -> str:
        return f"{self.purpose.value}@{self.connector_id}"


@dataclass(frozen=True, slots=True)
class ProfileCommand:
    """One SetChargingProfile the gateway wants in force on a charger.

    ``covers`` says what this profile leaves each session's connector (A per phase);
    ``default_a`` is what it leaves a connector not in ``covers`` (``None``: it does not apply
    to other connectors). The controller takes, per connector, the minimum over the profiles
    the charger acknowledged: that is the limit in force the allocator counts with.
    """

    key: ProfileKey
    limit_a: float
    payload: JsonDict
    covers: Mapping[int, float] = field(default_factory=dict)
    default_a: float | None = None
    transaction_id: int | None = None

    @property
    def fingerprint(self) -> tuple[Any, ...]:
        """What makes two commands the same profile on the charger (timestamps excluded)."""
        profile = self.payload["csChargingProfiles"]
        schedule = profile["chargingSchedule"]
        period = schedule["chargingSchedulePeriod"][0]
        return (
            self.key,
            schedule["chargingRateUnit"],
            period["limit"],
            period.get("numberPhases"),
            profile.get("transactionId"),
        )


@dataclass(frozen=True, slots=True)
class ConnectorLimit:
    """A session's limit as the controller decided it."""

    connector_id: int
    limit_a: float
    phases: int = 3
    """Phases the car draws on (converts A to W)."""
    transaction_id: int | None = None
    """As the charger knows it (needed for a TxProfile), when it is OCPP 1.6's integer."""
    in_transaction: bool = False
    """A transaction with an id runs here even without ``transaction_id``: an OCPP 2.0.1
    string id, which the TxProfile gets when it is rendered for the charger
    (:func:`edgegw.energy.profiles201.set_charging_profile`)."""
    cloud_tx_profile: bool = False
    """The cloud installed a TxProfile for this transaction: only a TxProfile outranks it."""


def gateway_profile_id(model: ChargerModel, key: ProfileKey) -> int:
    """The reserved ``chargingProfileId`` for a gateway profile."""
    if not 0 <= key.connector_id <= _MAX_CONNECTOR:
        raise ProfileError(f"connector {key.connector_id} outside 0..{_MAX_CONNECTOR}")
    return model.smart_charging.profile_id_base + 100 * _SLOTS[key.purpose] + key.connector_id


def is_gateway_profile_id(model: ChargerModel, profile_id: object) -> bool:
    base = model.smart_charging.profile_id_base
    return isinstance(profile_id, int) and base <= profile_id < base + PROFILE_ID_SPAN


def remap_cloud_profile_id(model: ChargerModel, profile_id: int) -> int:
    """A cloud id that falls in the gateway's range, moved just below it (deterministically,
    so the cloud's later ClearChargingProfile by id finds the same profile)."""
    if not is_gateway_profile_id(model, profile_id):
        return profile_id
    return profile_id - PROFILE_ID_SPAN


def timestamp(posix: float) -> str:
    """An OCPP dateTime, whole seconds, UTC."""
    return datetime.fromtimestamp(math.floor(posix), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _floor_tenth(value: float) -> float:
    return math.floor(value * 10 + 1e-9) / 10


def limit_in_unit(
    limit_a: float, unit: RateUnit, phases: int, voltage: float = NOMINAL_VOLTAGE
) -> float:
    """A per phase as the schedule carries it: A rounded down to 0.1, or whole W in total."""
    if limit_a < 0 or not math.isfinite(limit_a):
        raise ProfileError(f"limit must be a finite number >= 0 A, got {limit_a!r}")
    if unit is RateUnit.A:
        return _floor_tenth(limit_a)
    return float(math.floor(limit_a * voltage * phases + 1e-9))


def build_set_charging_profile(
    model: ChargerModel,
    key: ProfileKey,
    limit_a: float,
    *,
    phases: int,
    now: float,
    transaction_id: int | None = None,
) -> JsonDict:
    """A ``SetChargingProfile.req`` payload for one limit, in the form ``model`` accepts.

    One period from the start, no duration (a top-level profile without duration never falls
    back), A when the charger takes A, else W at the nominal voltage with an explicit
    ``numberPhases``; Absolute from a minute ago, or Relative for chargers that need it.
    """
    sc = model.smart_charging
    if key.purpose is Purpose.CHARGE_POINT_MAX and key.connector_id != 0:
        raise ProfileError("a ChargePointMaxProfile goes on connector 0 only")
    if key.purpose is Purpose.TX and key.connector_id == 0:
        raise ProfileError("a TxProfile goes on the connector of its transaction, not 0")
    unit = sc.rate_unit
    period: JsonDict = {"startPeriod": 0, "limit": limit_in_unit(limit_a, unit, phases)}
    if unit is RateUnit.W:
        period["numberPhases"] = phases
    schedule: JsonDict = {"chargingRateUnit": unit.value, "chargingSchedulePeriod": [period]}
    if sc.profile_kind == "Absolute":
        schedule["startSchedule"] = timestamp(now - START_IN_PAST_S)
    profile: JsonDict = {
        "chargingProfileId": gateway_profile_id(model, key),
        "stackLevel": sc.gateway_stack_level,
        "chargingProfilePurpose": key.purpose.value,
        "chargingProfileKind": sc.profile_kind,
    }
    if key.purpose is Purpose.TX and transaction_id is not None:
        profile["transactionId"] = transaction_id
    if sc.valid_from:
        profile["validFrom"] = timestamp(now - START_IN_PAST_S)
    profile["chargingSchedule"] = schedule
    return {"connectorId": key.connector_id, "csChargingProfiles": profile}


def iec_limit(model: ChargerModel, limit_a: float, min_a: float) -> float:
    """``limit_a`` made signalable: below the minimum it becomes 0 (pause), or the minimum on a
    charger that cannot pause."""
    if limit_a >= min_a:
        return limit_a
    return 0.0 if model.can_pause else min_a


def plan_profiles(
    model: ChargerModel,
    sessions: Sequence[ConnectorLimit],
    *,
    connectors: Iterable[int],
    safe_limit_a: float,
    charger_phases: int,
    min_a: float,
    now: float,
) -> list[ProfileCommand]:
    """Every gateway profile one charger should have, for its sessions' limits.

    ``connectors`` are the charger's connectors known so far (from its StatusNotifications),
    ``safe_limit_a`` what the whole charger may draw per phase while nothing else is known
    (a new session starts at it). Without sessions the plan is the charger's safe state.
    """
    purpose = model.cap_purpose
    if purpose is None:
        return []
    sc = model.smart_charging
    known = sorted({c for c in connectors if c > 0} | {s.connector_id for s in sessions})
    by_connector = {s.connector_id: s for s in sessions}
    commands: list[ProfileCommand] = []

    def command(
        key: ProfileKey,
        limit_a: float,
        phases: int,
        covers: Mapping[int, float],
        default_a: float | None,
        *,
        transaction_id: int | None = None,
    ) -> ProfileCommand:
        payload = build_set_charging_profile(
            model, key, limit_a, phases=phases, now=now, transaction_id=transaction_id
        )
        return ProfileCommand(key, limit_a, payload, dict(covers), default_a, transaction_id)

    def per_session(session: ConnectorLimit) -> ProfileCommand | None:
        """TxProfile or TxDefaultProfile on the session's own connector."""
        wants_tx = session.cloud_tx_profile or not sc.tx_default_applies_to_running
        tx_ok = Purpose.TX in sc.purposes and (
            session.transaction_id is not None
            or session.in_transaction
            or not sc.tx_profile_needs_transaction_id
        )
        covers = {session.connector_id: session.limit_a}
        if (wants_tx or Purpose.TX_DEFAULT not in sc.purposes) and tx_ok:
            key = ProfileKey(session.connector_id, Purpose.TX)
            return command(
                key,
                session.limit_a,
                session.phases,
                covers,
                None,
                transaction_id=session.transaction_id,
            )
        if Purpose.TX_DEFAULT in sc.purposes and sc.tx_default_scope is ProfileScope.CONNECTOR:
            key = ProfileKey(session.connector_id, Purpose.TX_DEFAULT)
            return command(key, session.limit_a, session.phases, covers, None)
        return None

    per_connector_safe = iec_limit(model, safe_limit_a / max(1, len(known)), min_a)

    if purpose is Purpose.CHARGE_POINT_MAX:
        key = ProfileKey(0, Purpose.CHARGE_POINT_MAX)
        if sessions:
            total = sum(s.limit_a for s in sessions)
            phases = sessions[0].phases if len(sessions) == 1 else charger_phases
            covers = {s.connector_id: s.limit_a for s in sessions}
            commands.append(command(key, total, phases, covers, 0.0))
        else:
            commands.append(command(key, safe_limit_a, charger_phases, {}, safe_limit_a))
        split = (
            len(known) > 1
            and Purpose.TX_DEFAULT in sc.purposes
            and sc.tx_default_scope is ProfileScope.CONNECTOR
        )
        if split:
            for connector in known:
                session = by_connector.get(connector)
                tx_key = ProfileKey(connector, Purpose.TX_DEFAULT)
                if session is None:
                    limit = iec_limit(model, safe_limit_a, min_a)
                    commands.append(command(tx_key, limit, charger_phases, {}, None))
                else:
                    covers = {connector: session.limit_a}
                    commands.append(command(tx_key, session.limit_a, session.phases, covers, None))
        return commands

    if purpose is Purpose.TX_DEFAULT:
        if sc.tx_default_scope is ProfileScope.CONNECTOR:
            key = ProfileKey(0, Purpose.TX_DEFAULT)
            commands.append(
                command(key, per_connector_safe, charger_phases, {}, per_connector_safe)
            )
            for connector in known:
                session = by_connector.get(connector)
                if session is None:
                    tx_key = ProfileKey(connector, Purpose.TX_DEFAULT)
                    commands.append(command(tx_key, per_connector_safe, charger_phases, {}, None))
                    continue
                planned = per_session(session)
                if planned is not None:
                    commands.append(planned)
            return commands
        # TxDefaultProfile on connector 0 only: one limit for every connector, the lowest.
        key = ProfileKey(0, Purpose.TX_DEFAULT)
        if sessions:
            lowest = min(s.limit_a for s in sessions)
            commands.append(command(key, lowest, charger_phases, {}, lowest))
            for session in sessions:
                if session.cloud_tx_profile or not sc.tx_default_applies_to_running:
                    planned = per_session(session)
                    if planned is not None and planned.key.purpose is Purpose.TX:
                        commands.append(planned)
        else:
            commands.append(
                command(key, per_connector_safe, charger_phases, {}, per_connector_safe)
            )
        return commands

    # TxProfile only: nothing can be installed before a transaction exists.
    for session in sessions:
        planned = per_session(session)
        if planned is not None:
            commands.append(planned)
    return commands


# --------------------------------------------------------------------------------------------
# The cloud's profiles


@dataclass(frozen=True, slots=True)
class GatewayCap:
    """What a cloud profile for one charger (connector) must stay under.

    ``purpose`` and ``stack_level`` are where the gateway keeps its cap on this charger
    (``None``: it keeps none, nothing is clamped); ``limit_a`` the cap in A per phase for the
    connector the cloud targets (connector 0: the whole charger), ``None`` for no clamp.
    """

    purpose: Purpose | None
    stack_level: int
    limit_a: float | None
    id_base: int
    voltage: float = NOMINAL_VOLTAGE

    @classmethod
    def for_model(cls, model: ChargerModel, limit_a: float | None) -> GatewayCap:
        sc = model.smart_charging
        return cls(model.cap_purpose, sc.gateway_stack_level, limit_a, sc.profile_id_base)


def outranks_cap(purpose: str, cap: GatewayCap) -> bool:
    """Would a cloud profile of ``purpose`` (1.6 names) take the place of the gateway's cap?"""
    if cap.purpose is None:
        return False
    if purpose == cap.purpose.value:
        return True
    # A TxProfile replaces a TxDefaultProfile; a TxDefaultProfile reaches new transactions
    # before the gateway's TxProfile does.
    if cap.purpose is Purpose.TX_DEFAULT:
        return purpose == Purpose.TX.value
    if cap.purpose is Purpose.TX:
        return purpose == Purpose.TX_DEFAULT.value
    return False  # under a ChargePointMaxProfile cap the charger takes the minimum itself


def clamp_cloud_profile(payload: Mapping[str, Any], cap: GatewayCap) -> JsonDict:
    """The cloud's ``SetChargingProfile.req`` as it may be relayed: never above the site cap.

    * an id in the gateway's range is moved out of it (same id = replacement);
    * a profile that would take the cap's place (same purpose, or one that overrides it) goes
      one stack level below the gateway's and every limit is clamped to ``cap.limit_a``
      (W limits at the nominal voltage and the period's phases, 3 when absent). With the
      gateway at stack level 0 it cannot go lower: it then replaces the gateway's profile,
      still clamped, and the controller re-asserts its cap after the charger accepted it;
    * under a ChargePointMaxProfile cap, Tx and TxDefault profiles pass unchanged: the charger
      obeys the minimum of both.

    Returns a new dict; ``payload`` is not modified. Malformed payloads are returned as they
    are: the charger answers them.
    """
    out: JsonDict = copy.deepcopy(dict(payload))
    profile = out.get("csChargingProfiles")
    if not isinstance(profile, dict):
        return out
    pid = profile.get("chargingProfileId")
    if isinstance(pid, int) and cap.id_base <= pid < cap.id_base + PROFILE_ID_SPAN:
        profile["chargingProfileId"] = pid - PROFILE_ID_SPAN
    purpose = profile.get("chargingProfilePurpose")
    if not isinstance(purpose, str) or not outranks_cap(purpose, cap):
        return out
    stack = profile.get("stackLevel")
    if isinstance(stack, int) and stack >= cap.stack_level and cap.stack_level > 0:
        profile["stackLevel"] = cap.stack_level - 1
    schedule = profile.get("chargingSchedule")
    if isinstance(schedule, dict):
        clamp_schedule(schedule, cap)
    return out


def clamp_schedule(schedule: dict[str, Any], cap: GatewayCap) -> None:
    """Clamp every period's limit of one ``chargingSchedule`` (1.6 and 2.0.1 alike) to
    ``cap.limit_a``, in place: W limits at the nominal voltage and the period's
    ``numberPhases``, 3 when absent. Unreadable periods are left as they are."""
    if cap.limit_a is None:
        return
    unit = schedule.get("chargingRateUnit")
    for period in schedule.get("chargingSchedulePeriod") or ():
        if not isinstance(period, dict) or not isinstance(period.get("limit"), int | float):
            continue
        count = period.get("numberPhases")
        phases = count if isinstance(count, int) and count > 0 else 3
        if unit == RateUnit.W.value:
            ceiling = float(math.floor(cap.limit_a * cap.voltage * phases))
        else:
            ceiling = _floor_tenth(cap.limit_a)
        period["limit"] = min(period["limit"], ceiling)


def replaced_gateway_keys(
    payload: Mapping[str, Any], model: ChargerModel, installed: Iterable[ProfileKey]
) -> set[ProfileKey]:
    """Gateway profiles an accepted (relayed) SetChargingProfile replaced on the charger:
    same connector, purpose and stack level, or the same id."""
    profile = payload.get("csChargingProfiles")
    if not isinstance(profile, Mapping):
        return set()
    connector = payload.get("connectorId")
    stack = profile.get("stackLevel")
    purpose = profile.get("chargingProfilePurpose")
    pid = profile.get("chargingProfileId")
    level = model.smart_charging.gateway_stack_level
    hit: set[ProfileKey] = set()
    for key in installed:
        same_slot = (
            key.connector_id == connector and key.purpose.value == purpose and stack == level
        )
        if same_slot or pid == gateway_profile_id(model, key):
            hit.add(key)
    return hit


def remap_cloud_clear(payload: Mapping[str, Any], model: ChargerModel) -> JsonDict:
    """A cloud ``ClearChargingProfile.req`` with an id in the gateway's range pointed at the
    id :func:`clamp_cloud_profile` gave that cloud profile, so it cannot clear ours by id."""
    out: JsonDict = dict(payload)
    pid = out.get("id")
    if isinstance(pid, int):
        out["id"] = remap_cloud_profile_id(model, pid)
    return out


def cleared_gateway_keys(
    payload: Mapping[str, Any], model: ChargerModel, installed: Iterable[ProfileKey]
) -> set[ProfileKey]:
    """Gateway profiles a ``ClearChargingProfile.req`` removes (OCPP 1.6 §5.5 matching).

    With ``id``, only that profile; otherwise every profile matching all of ``connectorId``
    (0 = the charger-wide ones), ``chargingProfilePurpose`` and ``stackLevel`` that are given.
    """
    level = model.smart_charging.gateway_stack_level
    pid = payload.get("id")
    hit: set[ProfileKey] = set()
    for key in installed:
        if pid is not None:
            if pid == gateway_profile_id(model, key):
                hit.add(key)
            continue
        connector = payload.get("connectorId")
        purpose = payload.get("chargingProfilePurpose")
        stack = payload.get("stackLevel")
        if (
            (connector is None or connector == key.connector_id)
            and (purpose is None or purpose == key.purpose.value)
            and (stack is None or stack == level)
        ):
            hit.add(key)
    return hit


def clear_hits_gateway(
    payload: Mapping[str, Any], model: ChargerModel, installed: Iterable[ProfileKey]
) -> bool:
    """Would this cloud ClearChargingProfile remove one of the gateway's own profiles?"""
    return bool(cleared_gateway_keys(payload, model, installed))


# --------------------------------------------------------------------------------------------
# Reading a profile


def parse_time(text: object) -> float | None:
    """An OCPP dateTime as POSIX seconds; None when absent or unreadable."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def profile_limit_a(
    profile: Mapping[str, Any],
    at: float,
    *,
    anchor: float,
    phases: int,
    voltage: float = NOMINAL_VOLTAGE,
) -> float | None:
    """A per phase a ``csChargingProfiles`` allows at ``at`` (POSIX s); None when not in force.

    ``anchor`` starts Relative schedules and Absolute ones without ``startSchedule`` (the
    transaction's start, or when the profile arrived). W limits are converted at the nominal
    voltage over the period's ``numberPhases``, else ``phases``. Unreadable profiles give None.
    """
    valid_from = parse_time(profile.get("validFrom"))
    valid_to = parse_time(profile.get("validTo"))
    if (valid_from is not None and at < valid_from) or (valid_to is not None and at >= valid_to):
        return None
    schedule = profile.get("chargingSchedule")
    if not isinstance(schedule, Mapping):
        return None
    kind = profile.get("chargingProfileKind")
    start = parse_time(schedule.get("startSchedule"))
    origin = anchor if kind == "Relative" or start is None else start
    elapsed = at - origin
    if elapsed < 0:
        return None
    if kind == "Recurring":
        elapsed %= _RECURRENCE_S.get(str(profile.get("recurrencyKind")), 86_400.0)
    duration = schedule.get("duration")
    if isinstance(duration, int | float) and elapsed >= duration:
        return None
    current: Mapping[str, Any] | None = None
    periods = [p for p in schedule.get("chargingSchedulePeriod") or () if isinstance(p, Mapping)]
    for period in sorted(periods, key=lambda p: float(p.get("startPeriod", 0))):
        if float(period.get("startPeriod", 0)) > elapsed:
            break
        current = period
    if current is None or not isinstance(current.get("limit"), int | float):
        return None
    limit = float(current["limit"])
    if schedule.get("chargingRateUnit") == RateUnit.W.value:
        count = current.get("numberPhases")
        return limit / (voltage * (count if isinstance(count, int) and count > 0 else phases))
    return limit
