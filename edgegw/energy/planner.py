"""One load-capping round, without I/O: the site model and a meter sample in, limits out.

:func:`plan_round` reads the site meter (:func:`observe_meter`: fresh, held after a failed
read, or lost), follows each session's limit in force and whether its car obeys it, decides
who the allocator (:func:`edgegw.energy.allocator.allocate`) allocates and who is held at a
fixed limit outside it (:data:`Pinned`), estimates the building load
(:func:`edgegw.energy.nonev.estimate_non_ev`), allocates, and records the decisions on the
sessions, replanning each charger's profiles (:meth:`SiteModel.replan`). It returns the
:class:`RoundPlan`: the allocation, its inputs, and the profiles each charger should have.

It advances the model (the round is its state machine, as ``proxy/link.py`` is the relay's),
but it never waits, sends or reads anything: the I/O shell
(:class:`edgegw.energy.controller.LoadController`) sends what the plan wants.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from edgegw.energy.allocator import (
    Allocation,
    AllocationResult,
    AllocatorParams,
    Circuit,
    PerPhase,
    Phase,
    Priority,
    Reason,
    Session,
    Site,
    SiteState,
    allocate,
)
from edgegw.energy.boardload import (
    BoardLoad,
    Eligible,
    FailAwareSample,
    Pinned,
    chains,
    charger_draws,
    circuits,
    held_draw,
    holding_boards,
    observe_boards,
)
from edgegw.energy.chargercap import capped_for_chargers
from edgegw.energy.cloudcaps import cloud_cap
from edgegw.energy.inforce import EPS
from edgegw.energy.nonev import NO_ESTIMATE, estimate_non_ev
from edgegw.energy.profiles import ProfileCommand
from edgegw.energy.sitemodel import SiteModel
from edgegw.energy.siterecords import ChargerRecord, CircuitSamples, Flag, SampleLike, SessionRecord

__all__ = [
    "Eligible",
    "FailAwareSample",
    "Pinned",
    "RoundPlan",
    "SampleLike",
    "allocate_around_fixed",
    "charger_draws",
    "circuits",
    "collect",
    "ev_load",
    "held",
    "held_draw",
    "observe_meter",
    "pauses_kept",
    "plan_round",
]

log = logging.getLogger("edgegw.energy.controller")


@dataclass(frozen=True, slots=True)
class RoundPlan:
    """What one round decided, and from what."""

    result: AllocationResult
    grid_a: PerPhase | None
    """The site meter's fresh reading (None: lost)."""
    base_non_ev_a: PerPhase | None
    """The building load: measured (non-EV meter) or estimated (grid meter)."""
    non_ev_a: PerPhase | None
    """What the allocator counted as load it does not control (plus the held sessions)."""
    eligible: tuple[Eligible, ...]
    forced: tuple[Eligible, ...]
    """Sessions the allocator would pause on chargers that cannot pause: held at minimum."""
    pinned: tuple[Pinned, ...]
    profiles: Mapping[str, tuple[ProfileCommand, ...]]
    """The profiles each controlled, connected charger should have after the round."""
    circuits: tuple[Circuit, ...] = ()
    """The circuits as the allocator had them (with the load held under each)."""


_NOTHING_LEFT_A = 0.05
"""A limit lowered to the margin or below is taken as margin + this: the allocator needs a
limit above the margin, and this leaves less than any minimum (every session paused)."""


def _per_phase(values: Sequence[float]) -> PerPhase:
    return (values[0], values[1], values[2])


# ------------------------------------------------------------------ the meter


def _set_meter_state(model: SiteModel, state: str, why: str) -> None:
    meter = model.meter
    if state == meter.state:
        return
    if state == "lost":
        fallback = model.site.fallback()
        log.warning(
            "load capping in fallback mode: %s (EVs share %s)",
            why,
            "nothing, all paused" if fallback is None else f"{fallback} A per phase",
        )
    elif meter.state == "lost":
        log.info("site meter readings are back: load capping follows the meter again")
    meter.state = state


def observe_meter(model: SiteModel, sample: SampleLike | None, now: float) -> PerPhase | None:
    """The site meter's reading for a round at ``now``, or None when it is lost (no sample,
    no valid phase currents, or older than ``meter_lost_after``). Notes whether its last read
    failed (``model.meter.hold``: its last valid sample may cut, never raise)."""
    meter, site = model.meter, model.site
    if sample is None:
        meter.age_s = None
        if meter.state == "ok":
            _set_meter_state(model, "lost", "no site-meter sample any more")
        return None
    age = now - sample.at
    meter.age_s = age
    currents = sample.reading.site_currents_a(site.phases)
    if currents is None:
        _set_meter_state(model, "lost", "the site meter gives no valid phase currents")
        return None
    if age > site.meter_lost_after:
        _set_meter_state(model, "lost", f"the last site-meter sample is {age:.1f} s old")
        return None
    _set_meter_state(model, "ok", "")
    failed = isinstance(sample, FailAwareSample) and sample.failed_at is not None
    if failed != meter.hold:
        meter.hold = failed
        if failed:
            log.info(
                "site meter read failed: limits held (cuts only) on its last valid reading "
                "until it reads again, fallback after %g s",
                site.meter_lost_after,
            )
        else:
            log.info("site meter reads again: limits may rise again")
    return currents


# ------------------------------------------------------------------ the round


def plan_round(
    model: SiteModel,
    sample: SampleLike | None,
    limits: PerPhase,
    now: float,
    *,
    wall: float,
    params: AllocatorParams,
    circuit_samples: CircuitSamples | None = None,
) -> RoundPlan:
    """Decide every session's limit at ``now`` (monotonic; ``wall`` POSIX) under ``limits``.

    ``circuit_samples``: the boards' meter samples by circuit name (default: what
    ``model.circuit_samples`` gives). A limit at or below the margin (a lowered limit of 0 A)
    leaves nothing to share: every session is paused."""
    dt = 0.0 if model.last_round is None else max(0.0, now - model.last_round)
    model.last_round = now
    floor = model.site.margin_a + _NOTHING_LEFT_A
    limits = _per_phase([max(limits[p], floor) for p in Phase])
    grid_role = model.site.meter_role == "grid"
    grid = observe_meter(model, sample, now)
    if grid is not None:
        model.meter.last_grid = grid
        if grid_role and not model.meter.hold:
            model.release_retired()
    else:
        model.meter.held_non_ev = NO_ESTIMATE
        model.meter.hold = False
    eligible, pinned = collect(model, now, wall)
    base_non_ev: PerPhase | None = None
    if grid is not None and sample is not None:
        if grid_role:
            base_non_ev, model.meter.held_non_ev = estimate_non_ev(
                grid,
                charger_draws(eligible, sample.at),
                model.meter.held_non_ev,
                model.tuning.follow_tolerance_a,
            )
        else:
            base_non_ev = grid
    if circuit_samples is None:
        circuit_samples = model.circuit_samples()
    boards = observe_boards(model, circuit_samples, eligible, now, pinned)
    hold = grid is not None and model.meter.hold
    result, eligible, forced, non_ev = allocate_around_fixed(
        model,
        base_non_ev,
        eligible,
        pinned,
        limits=limits,
        now=now,
        dt=dt,
        params=params,
        hold=hold,
        boards=boards,
    )
    result = pauses_kept(result, eligible, now, params.min_pause_s)
    apply(model, result, eligible, forced, pinned, now=now)
    model.last_result = result
    model.last_non_ev = non_ev
    profiles = {
        ch.id: tuple(ch.desired.values())
        for ch in model.chargers.values()
        if ch.connected and ch.model.cap_purpose is not None
    }
    return RoundPlan(
        result,
        grid,
        base_non_ev,
        non_ev,
        tuple(eligible),
        tuple(forced),
        tuple(pinned),
        profiles,
        capped_for_chargers(model, circuits(model, pinned, forced, boards), boards),
    )


def check_ignoring(
    model: SiteModel, ch: ChargerRecord, session: SessionRecord, offered: float, now: float
) -> None:
    """Flag a session measuring clearly above its limit in force for long enough (after the
    grace a car has to follow a cut); unflag it once it follows again."""
    tuning = model.tuning
    measured = session.measured_a
    fresh = (
        measured is not None
        and session.measured_at is not None
        and session.measured_at >= session.cut_at + tuning.ignore_grace_s
    )
    over = fresh and measured is not None and max(measured) > offered + tuning.ignore_tolerance_a
    if not over:
        session.over_since = None
        if session.ignoring and fresh:
            session.ignoring = False
            log.info("%s/%d follows its limit again", ch.id, session.connector)
            if not any(s.ignoring for s in ch.sessions.values()):
                ch.flags.discard(Flag.IGNORES_LIMIT)
        return
    if session.over_since is None:
        session.over_since = now
    if not session.ignoring and now - session.over_since >= tuning.ignore_after_s:
        session.ignoring = True
        ch.flags.add(Flag.IGNORES_LIMIT)
        assert measured is not None
        log.warning(
            "%s/%d draws %.1f A against its limit of %.1f A for %.0f s: the charger "
            "ignores its charging profile; its excess is counted as uncontrolled load",
            ch.id,
            session.connector,
            max(measured),
            offered,
            now - session.over_since,
        )


def collect(model: SiteModel, now: float, wall: float) -> tuple[list[Eligible], list[Pinned]]:
    """Sessions for the allocator, and those decided outside it (held at a fixed limit)."""
    eligible: list[Eligible] = []
    pinned: list[Pinned] = []
    for ch in model.chargers.values():
        for session in ch.sessions.values():
            offered = ch.offered(session.connector)
            model.track_offered(session, offered, now)
            check_ignoring(model, ch, session, offered, now)
            phases = session.car_phases or ch.site_phases
            if ch.model.cap_purpose is None:
                pinned.append((ch, session, ch.config.max_current_a, "not_controllable"))
                continue
            if ch.retired:
                pinned.append((ch, session, offered, "removed"))
                continue
            if session.ignoring and session.measured_a is not None:
                # It draws what it likes: count that as load we do not control, so the
                # others get what is really left. Its limit stays where it was.
                pinned.append((ch, session, max(offered, *session.measured_a), "ignores_limit"))
                continue
            if not ch.connected:
                pinned.append((ch, session, offered, "charger_offline"))
                continue
            min_a = ch.min_a
            if ch.max_override is not None and ch.max_override < min_a - EPS:
                held = 0.0 if ch.model.can_pause else min_a
                pinned.append((ch, session, held, "caretaker_pause"))
                continue
            max_a = ch.max_a
            cloud = cloud_cap(
                ch.cloud.values(),
                connector=session.connector,
                transaction_id=session.tx_number,
                started_wall=session.started_wall,
                sessions=len(ch.sessions),
                phases=len(phases),
                wall=wall,
            )
            if cloud is not None and cloud < min_a - EPS:
                held = 0.0 if ch.model.can_pause else min_a
                pinned.append((ch, session, held, "cloud_limit"))
                continue
            if cloud is not None:
                max_a = max(min_a, min(max_a, cloud))
            measured = session.measured_a
            if measured is not None:  # the excess over the limit is load we do not control
                measured = _per_phase([min(measured[p], offered) for p in Phase])
            allocator_session = Session(
                charger_id=ch.id,
                connector=session.connector,
                priority=Priority(ch.config.priority),
                min_a=min_a,
                max_a=max_a,
                fallback_a=ch.config.fallback_current_a / max(1, len(ch.sessions)),
                charger_phases=ch.site_phases,
                car_phases=session.car_phases,
                measured_a=measured,
                offered_a=offered,
                arrived_at=session.arrived_at,
                started_at=session.started_at,
                paused_at=session.paused_at,
                circuit=ch.config.circuit,
            )
            eligible.append((ch, session, allocator_session))
    return eligible, pinned


def allocate_around_fixed(
    model: SiteModel,
    base_non_ev: PerPhase | None,
    eligible: list[Eligible],
    pinned: list[Pinned],
    *,
    limits: PerPhase,
    now: float,
    dt: float,
    params: AllocatorParams,
    hold: bool = False,
    boards: Mapping[str, BoardLoad] | None = None,
) -> tuple[AllocationResult, list[Eligible], list[Eligible], PerPhase | None]:
    """Run the allocator; a session it pauses on a charger that cannot pause is held at
    its minimum as fixed load and the others are allocated again around it. Held and forced
    sessions count at the higher of their new limit and the one in force. With
    ``hold`` (the meter's last read failed) no session gets more than its limit in
    force (:func:`held`); one that this leaves at 0 on a charger that cannot pause is
    held at its minimum the same way (its profile cannot say 0 A). ``boards``: the metered
    boards' loads (:func:`~edgegw.energy.boardload.observe_boards`); no session under a board
    whose meter's last read failed gets more than its limit in force either."""
    site_config = model.site
    grid_role = site_config.meter_role == "grid"
    fixed = [0.0, 0.0, 0.0]  # what held sessions may add to the non-EV load
    fallback_draw = [0.0, 0.0, 0.0]  # what they take from the fallback budget
    for ch, session, amps, _ in pinned:
        most = held_draw(ch, session, amps)
        for p in session.car_phases or ch.site_phases:
            drawn = session.measured_a[p] if session.measured_a is not None else 0.0
            # With a grid meter what it draws is in the reading: count what it may add.
            fixed[p] += max(0.0, most - drawn) if grid_role else most
            fallback_draw[p] += most
    fallback = site_config.fallback()
    forced: list[Eligible] = []
    while True:
        extra = list(fixed)
        budget_used = list(fallback_draw)
        for _, _, s in forced:
            for p in s.phases:
                extra[p] += max(s.min_a, s.offered_a)
                budget_used[p] += max(s.min_a, s.offered_a)
        non_ev = (
            None if base_non_ev is None else _per_phase([base_non_ev[p] + extra[p] for p in Phase])
        )
        fallback_budget = (
            None
            if fallback is None
            else _per_phase([max(0.0, fallback[p] - budget_used[p]) for p in Phase])
        )
        site = Site(limit_a=limits, margin_a=site_config.margin_a, fallback_ev_a=fallback_budget)
        state = SiteState(
            site=site,
            non_ev_a=non_ev,
            sessions=tuple(s for _, _, s in eligible),
            now=now,
            dt_s=dt,
            circuits=capped_for_chargers(
                model, circuits(model, pinned, forced, boards), boards or {}
            ),
        )
        result = allocate(state, params)
        holding = holding_boards(boards or {})
        if hold:
            result = held(result, [s for _, _, s in eligible])
        elif holding:
            above = chains(model.config.circuits)
            result = held(
                result,
                [s for _, _, s in eligible],
                only={
                    s.key for _, _, s in eligible if holding.intersection(above.get(s.circuit, ()))
                },
            )
        newly = [
            entry
            for entry, allocation in zip(eligible, result.allocations, strict=True)
            if allocation.limit_a < entry[2].min_a - EPS and not entry[0].model.can_pause
        ]
        if not newly:
            return result, eligible, forced, non_ev
        forced.extend(newly)
        eligible = [e for e in eligible if all(e is not n for n in newly)]


def _with_allocations(
    result: AllocationResult,
    allocations: Sequence[Allocation],
    used: Sequence[float],
    sessions: Sequence[Session],
) -> AllocationResult:
    """``result`` with some limits lowered: the site's and every circuit's sums follow."""
    budget = result.budget_a
    parents = {c.name: c.parent for c in result.circuits}
    lowered = {c.name: [0.0, 0.0, 0.0] for c in result.circuits}
    for s, before, after in zip(sessions, result.allocations, allocations, strict=True):
        name = s.circuit
        while name is not None and name in lowered:
            for p in after.phases:
                lowered[name][p] += before.limit_a - after.limit_a
            name = parents[name]
    return replace(
        result,
        allocations=tuple(allocations),
        used_a=_per_phase(used),
        headroom_a=_per_phase([budget[p] - used[p] for p in Phase]),
        circuits=tuple(
            replace(c, used_a=_per_phase([c.used_a[p] - lowered[c.name][p] for p in Phase]))
            for c in result.circuits
        ),
    )


def held(
    result: AllocationResult,
    sessions: Sequence[Session],
    only: Collection[tuple[str, int]] | None = None,
) -> AllocationResult:
    """``result`` with no raise and no start: each session (of ``only``, by key; None: all)
    keeps at most its limit in force.

    Used while the meter's last read failed: its last valid sample may still call for a
    cut, but nothing it says justifies giving more (the site or board may have changed since).
    """
    allocations: list[Allocation] = []
    used = [0.0, 0.0, 0.0]
    for s, decided in zip(sessions, result.allocations, strict=True):
        kept = decided
        if (only is None or s.key in only) and decided.limit_a > s.offered_a + EPS:
            kept = replace(decided, limit_a=max(0.0, s.offered_a), reason=Reason.METER_HOLD)
        allocations.append(kept)
        for p in kept.phases:
            used[p] += kept.limit_a
    out = _with_allocations(result, allocations, used, sessions)
    whose = "meter" if only is None else "board meter"
    return replace(out, notes=(*result.notes, f"{whose} read failed: raises held"))


def pauses_kept(
    result: AllocationResult, eligible: Sequence[Eligible], now: float, min_pause_s: float
) -> AllocationResult:
    """``result`` with every session a round paused kept paused for ``min_pause_s``.

    The allocator's pause hold counts from the acknowledged pause (``offered_a`` 0). A
    round that runs while the 0 A profile is still on its way sees the session running at
    its old limit and may give it current again; the next round, with the pause
    acknowledged, pauses it again: each round undoes the profile in flight and the charger
    gets the same two profiles again and again. A pause holds from the decision instead.
    """
    allocations: list[Allocation] = []
    changed = False
    used = list(result.used_a)
    for (ch, session, _), decided in zip(eligible, result.allocations, strict=True):
        since = session.pause_decided_at
        kept = decided
        if (
            ch.model.can_pause
            and decided.limit_a > 0
            and session.limit_a == 0
            and since is not None
            and now - since < min_pause_s
        ):
            for p in decided.phases:
                used[p] -= decided.limit_a
            kept = replace(decided, limit_a=0.0, reason=Reason.PAUSED_HOLD)
            changed = True
        allocations.append(kept)
    if not changed:
        return result
    return _with_allocations(result, allocations, used, [s for _, _, s in eligible])


def apply(
    model: SiteModel,
    result: AllocationResult,
    eligible: Sequence[Eligible],
    forced: Sequence[Eligible],
    pinned: Sequence[Pinned],
    *,
    now: float,
) -> None:
    """Record the round's decisions on the sessions and replan every charger."""
    for (_, session, _), allocation in zip(eligible, result.allocations, strict=True):
        if allocation.limit_a > 0:
            session.pause_decided_at = None
        elif session.limit_a is not None and session.limit_a > 0:
            session.pause_decided_at = now
        session.limit_a = allocation.limit_a
        session.reason = allocation.reason.value
        session.forced = False
    for _, session, s in forced:
        session.limit_a = s.min_a
        session.reason = "cannot_pause"
        session.forced = True
    for _, session, amps, why in pinned:
        if why == "removed" and session.limit_a is not None:
            session.limit_a = min(amps, session.limit_a)  # a pause sent to it stays
        elif why != "ignores_limit" or session.limit_a is None:
            session.limit_a = amps
        session.reason = why
        session.forced = False
    for ch in model.chargers.values():
        if any(s.forced for s in ch.sessions.values()):
            if Flag.CANNOT_PAUSE not in ch.flags:
                log.warning(
                    "%s cannot be paused (model %s): held at its minimum %.1f A",
                    ch.id,
                    ch.model.id,
                    ch.min_a,
                )
            ch.flags.add(Flag.CANNOT_PAUSE)
        else:
            ch.flags.discard(Flag.CANNOT_PAUSE)
        if ch.connected and not ch.retired:
            model.replan(ch)


def ev_load(model: SiteModel) -> PerPhase:
    """What the connected chargers' sessions last measured, per site phase."""
    total = [0.0, 0.0, 0.0]
    for ch in model.chargers.values():
        if not ch.connected:
            continue
        for session in ch.sessions.values():
            if session.measured_a is not None:
                for p in Phase:
                    total[p] += session.measured_a[p]
    return _per_phase(total)
