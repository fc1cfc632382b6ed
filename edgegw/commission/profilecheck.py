"""The checklist's charging-profile steps: can the gateway cap this charger's current?

Without load capping the run puts a test profile of its own on the charger (the lowest
current its model allows), reads the composite schedule to see that it is in force, and clears
it again. With load capping it checks the cap the site's controller already keeps there
instead: a test profile could only replace that cap or lie dormant under it (see
:mod:`edgegw.control.commission_ops`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from edgegw.commission.observer import ChargerGone
from edgegw.commission.probe import key_value
from edgegw.commission.run import JsonDict, NoAnswer, RunState, Step, status_of
from edgegw.energy.chargermodels import Purpose, RateUnit
from edgegw.energy.profiles import (
    NOMINAL_VOLTAGE,
    ProfileKey,
    build_set_charging_profile,
    iec_limit,
)
from edgegw.energy.sampling import comma_list

if TYPE_CHECKING:
    from edgegw.energy.controller import SessionState

COMMISSION_PROFILE_SLOT: Final = 999
"""The test profile's id is ``profile_id_base + 999``: in the gateway's range (cloud profiles
are moved out of it), and a slot the load controller never uses."""
_TOLERANCE_A: Final = 0.1
_COMPOSITE_DURATION_S: Final = 300


class ProfileSteps(RunState):
    """The steps ``profile_accepted``, ``profile_honoured`` and ``profile_removed``, on the
    run's shared state (:class:`~edgegw.commission.checklist.Checklist` has them all)."""

    async def check_profile(self, step: Step) -> None:
        """``profile_accepted``, and with it ``profile_honoured`` and ``profile_removed``."""
        honoured = self.steps["profile_honoured"]
        removed = self.steps["profile_removed"]
        sc = self.model.smart_charging
        features = comma_list(key_value(self.keys, "SupportedFeatureProfiles"))
        if not sc.supported or (features and "SmartCharging" not in features):
            why = (
                f"its model {self.model.id} has no smart charging"
                if not sc.supported
                else f"it does not list SmartCharging in SupportedFeatureProfiles "
                f"({', '.join(features)})"
            )
            for s in (step, honoured, removed):
                s.set("skip", f"not checked: {why}; the gateway cannot cap this charger")
            return
        if self.gw.controller is not None:
            await self._controller_cap(step, honoured)
            removed.set("skip", "no test profile was installed: the load controller's cap stays")
            return
        await self._test_profile(step, honoured, removed)

    def _min_current_a(self) -> float:
        """The lowest current the charger may be given: its model's, or its configured one."""
        return max(self.model.min_current_a, self.config.min_current_a if self.config else 6.0)

    async def _test_profile(self, step: Step, honoured: Step, removed: Step) -> None:
        sc = self.model.smart_charging
        purpose = next(
            (p for p in (Purpose.CHARGE_POINT_MAX, Purpose.TX_DEFAULT) if p in sc.purposes), None
        )
        if purpose is None:
            why = (
                f"its model {self.model.id} takes TxProfiles only, which need a running "
                "transaction; start a session and watch its current"
            )
            for s in (step, honoured, removed):
                s.set("skip", f"not checked: {why}")
            return
        limit = self._min_current_a()
        phases = self.phases()
        payload = build_set_charging_profile(
            self.model, ProfileKey(0, purpose), limit, phases=phases, now=self.clock()
        )
        profile_id = sc.profile_id_base + COMMISSION_PROFILE_SLOT
        payload["csChargingProfiles"]["chargingProfileId"] = profile_id
        stack = payload["csChargingProfiles"]["stackLevel"]
        what = f"{purpose.value} of {limit:.1f} A at stack level {stack} (id {profile_id})"
        began = time.monotonic()
        try:
            status = status_of(await self.call("SetChargingProfile", payload))
        except NoAnswer as exc:
            step.set("fail", f"SetChargingProfile {what}: no answer ({exc})")
            await self._clear(removed, profile_id)  # it may have been installed all the same
            return
        finally:
            step.duration_s = time.monotonic() - began
        if status != "Accepted":
            notes = "; ".join(self.model.notes)
            step.set(
                "fail",
                f"SetChargingProfile {what}: {status}",
                "check the charger's smart-charging settings"
                + (f" ({notes})" if notes else "")
                + f"; run `edgegw chargers probe {self.charger_id}` to see if another hardware "
                "profile fits",
                purpose=purpose.value,
                limit_a=limit,
                stack_level=stack,
                answer=status,
            )
            honoured.set("skip", "not checked: the test profile was not accepted")
            removed.set("skip", "nothing to remove")
            return
        step.set(
            "pass",
            f"SetChargingProfile {what}: Accepted",
            purpose=purpose.value,
            limit_a=limit,
            stack_level=stack,
        )
        began = time.monotonic()
        try:
            await self._composite(honoured, dict.fromkeys(self.connectors[:1], limit), "test limit")
        except (NoAnswer, ChargerGone) as exc:
            honoured.set("fail", f"the charger stopped answering: {exc}")
        finally:
            honoured.duration_s = time.monotonic() - began
            began = time.monotonic()
            await self._clear(removed, profile_id)
            removed.duration_s = time.monotonic() - began

    async def _clear(self, step: Step, profile_id: int) -> None:
        try:
            status = status_of(await self.call("ClearChargingProfile", {"id": profile_id}))
        except NoAnswer as exc:
            status = f"no answer ({exc})"
        if status == "Accepted":
            step.set("pass", f"ClearChargingProfile id {profile_id}: Accepted")
            return
        step.set(
            "fail",
            f"ClearChargingProfile id {profile_id}: {status}; the charger may keep the low test "
            "limit",
            f"check the charger's current limit; restart the charger or clear profile "
            f"{profile_id} from the cloud",
        )

    async def _composite(self, step: Step, limits: Mapping[int, float], label: str) -> None:
        """Does the composite schedule of each connector in ``limits`` stay at or under it?"""
        unit = self.model.smart_charging.rate_unit
        phases = self.phases()
        over: list[str] = []
        fine: list[str] = []
        seen: JsonDict = {}
        for connector, limit in sorted(limits.items()):
            answer = await self.call(
                "GetCompositeSchedule",
                {
                    "connectorId": connector,
                    "duration": _COMPOSITE_DURATION_S,
                    "chargingRateUnit": unit.value,
                },
            )
            if status_of(answer) != "Accepted":
                step.set(
                    "skip",
                    f"the charger answered GetCompositeSchedule {status_of(answer)}, so what is "
                    "in force cannot be read",
                    f"check with a car: its current must stay at or below {limit:.1f} A",
                )
                return
            now_a = composite_now_a(answer, phases)
            seen[str(connector)] = now_a
            if now_a is None:
                over.append(f"connector {connector}: the composite schedule has no limit now")
            elif now_a > limit + _TOLERANCE_A:
                over.append(
                    f"connector {connector}: {now_a:.1f} A now, above the {label} of {limit:.1f} A"
                )
            else:
                fine.append(f"connector {connector}: {now_a:.1f} A now ({label} {limit:.1f} A)")
        if over:
            step.set(
                "fail",
                "; ".join(over + fine) + ": the charger accepted the profile but does not apply it",
                "this charger cannot be load-capped as it is: check its firmware and its "
                "smart-charging settings (some need load management switched on)",
                composite_a=seen,
            )
            return
        step.set("pass", "GetCompositeSchedule: " + "; ".join(fine), composite_a=seen)

    async def _controller_cap(self, step: Step, honoured: Step) -> None:
        controller = self.gw.controller
        assert controller is not None
        cid = self.charger_id

        def mine() -> Any:
            return next((c for c in controller.state().chargers if c.id == cid), None)

        def settled() -> bool:
            state = mine()
            return state is not None and state.connected and state.pending_profiles == 0

        with contextlib.suppress(TimeoutError):  # what is still pending is reported below
            await controller.wait_until(settled, self.opt.step_timeout)
        state = mine()
        note = "the site's load controller keeps its own cap on this charger; checked that cap"
        if state is None or state.cap_purpose is None:
            for s in (step, honoured):
                s.set("skip", f"not checked: the load controller does not cap {cid}")
            return
        refused = [f for f in state.flags if f in ("profile_rejected", "profile_failed")]
        if refused or state.pending_profiles:
            why = state.last_error or ", ".join(refused) or "not acknowledged yet"
            step.set(
                "fail",
                f"{note}: its {state.cap_purpose} is not in force ({why}; "
                f"{state.pending_profiles} profile(s) pending)",
                f"check the charger's smart-charging settings; `edgegw chargers probe {cid}` "
                "shows whether its hardware profile fits",
                purpose=state.cap_purpose,
                flags=list(state.flags),
            )
            honoured.set("skip", "not checked: the controller's profile is not acknowledged")
            return
        step.set(
            "pass",
            f"{note}: its {state.cap_purpose} was acknowledged",
            purpose=state.cap_purpose,
        )
        fallback = self.config.fallback_current_a if self.config else 0.0
        safe = iec_limit(self.model, fallback, self._min_current_a())
        limits = dict.fromkeys(self.connectors, safe)
        for session in state.sessions:
            limits[session.connector] = session.offered_a
        await self._composite(honoured, limits, "controller's limit")
        idle = all(limit <= 0 for limit in limits.values()) and not _drawing(state.sessions)
        if honoured.status == "pass" and idle:
            # "0.0 A now (limit 0.0 A)" proves nothing: an idle charger draws nothing anyway.
            honoured.set(
                "skip",
                "not tested: no car drawing (the controller's limit is 0 A while nothing "
                "charges, and the charger reports 0 A in force)",
                "start a session with a car and run the commissioning again to see the cap "
                "honoured",
            )


def _drawing(sessions: Iterable[SessionState]) -> bool:
    """Does any session measure current (above half an ampere on a phase)?"""
    return any(any(a is not None and a > 0.5 for a in s.measured_a or ()) for s in sessions)


def composite_now_a(answer: Mapping[str, Any], phases: int) -> float | None:
    """The limit (A per phase) the composite schedule puts in force at its start."""
    schedule = answer.get("chargingSchedule")
    if not isinstance(schedule, Mapping):
        return None
    periods = [p for p in schedule.get("chargingSchedulePeriod") or () if isinstance(p, Mapping)]
    current: Mapping[str, Any] | None = None
    for period in sorted(periods, key=lambda p: float(p.get("startPeriod", 0))):
        if float(period.get("startPeriod", 0)) > 0:
            break
        current = period
    if current is None or not isinstance(current.get("limit"), int | float):
        return None
    limit = float(current["limit"])
    if schedule.get("chargingRateUnit") == RateUnit.W.value:
        count = current.get("numberPhases")
        return limit / (NOMINAL_VOLTAGE * (count if isinstance(count, int) and count else phases))
    return limit
