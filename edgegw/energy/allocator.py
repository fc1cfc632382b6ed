"""Load-capping allocator: site state in, one current limit per charging session out.

This is a pure, deterministic function (:func:`allocate`). It does no I/O, reads no clock and
keeps no memory between calls: everything it needs, including what it decided last time, comes
in as frozen dataclasses, so every decision can be logged with its inputs, replayed and tested.
The controller (``edgegw.energy.controller``) runs it about once a second and turns the limits
into OCPP charging profiles.

Rules, in the order they win:

1. **Safety.** For every phase ``p``: non-EV load + the sum of the limits of the sessions drawing
   on ``p`` stays within ``limit[p] - margin``. If the non-EV load alone exceeds a phase limit,
   every session is paused. Without a trustworthy meter reading the EVs share a fixed,
   installer-set fallback budget instead (see :class:`Site`). The same holds at every
   circuit (:class:`Circuit`, a distribution board below the site or below another circuit):
   the limits of the sessions under it, plus the load there the allocator does not decide
   (held sessions, and a metered board's other loads), stay within its ``limit[p] - margin``.
   A board whose meter is lost caps each session under it at its fallback current, as the
   site does in fallback mode.
2. **No current is re-offered before it is free.** A cut is applied at once. A raise (or a start)
   only uses current that is free even while the chargers still run at their limits in force
   (``Session.offered_a``), so a raise sent before a pending cut cannot overload a phase.
   Raises are ramped: at most ``ramp_a_per_s * dt_s`` above the limit in force.
3. **Minimum or nothing.** IEC 61851 cannot signal less than 6 A (10 % PWM): a session gets at
   least its ``min_a`` or 0 A (paused), never something in between.
4. **VIP first,** then the rest. Within a priority, sessions that still have their minimum run
   time keep running; then sessions that waited longest start; sessions that ran longest are
   the first to yield. So when not everyone fits, the paused ones rotate (every ``min_run_s``),
   and a paused car stays paused at least ``min_pause_s``: cars dislike 0 A pauses and some
   never resume, so switching is kept rare.
5. **Fair share** (max-min fair, per phase and per circuit) of what is left, VIPs filled before
   normal sessions. A single-phase car counts only on the site phase it draws on; a car on a
   full circuit stops rising there and the others share what it cannot use.
6. **Reclaim.** A car that has charged for a while but draws clearly less than offered (full
   battery, delayed charging, a 1-phase car's own limit) is offered its draw plus some headroom;
   the freed current goes to others. As soon as it draws near its offer again it may ramp up.

Its inputs and outputs are in :mod:`edgegw.energy.allocation_model` (importable from here too).
Currents are handled as exact fractions internally and every limit is rounded *down* to the
0.1 A step OCPP can carry (minimums are rounded up), so rounding never breaks rule 1 or 3.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise

from edgegw.energy.allocation_model import (
    ALL_PHASES,
    SELF_CAPPED,
    Allocation,
    AllocationResult,
    AllocatorInputError,
    AllocatorParams,
    Circuit,
    CircuitUse,
    Mode,
    PerPhase,
    Phase,
    Priority,
    Reason,
    Session,
    Site,
    SiteState,
    circuit_chains,
    map_phases,
    non_ev_from_grid,
)

# --------------------------------------------------------------------------------------------
# The algorithm. Exact fractions inside; nothing below is visible to callers.

_STEP = 10  # OCPP limits carry one decimal: 0.1 A steps

_Budgets = list[list[Fraction]]
"""Per node (0: the site, then the circuits in input order), per phase: what the sessions
under it may use together."""


def _exact(value: float) -> Fraction:
    # repr() gives the shortest decimal that round-trips, so 6.1 becomes exactly 61/10
    return Fraction(repr(value))


def _floor_step(value: Fraction) -> Fraction:
    return Fraction(math.floor(value * _STEP), _STEP)


def _ceil_step(value: Fraction) -> Fraction:
    return Fraction(math.ceil(value * _STEP), _STEP)


@dataclass
class _Work:
    """Per-session scratch state for one round."""

    session: Session
    phases: frozenset[Phase]
    lo: Fraction  # minimum, rounded up to the step
    cap: Fraction  # own cap: max, fallback current or reclaim cap
    cap_reason: Reason  # AT_MAX, AT_FALLBACK or RECLAIMED
    upper: Fraction  # min(cap, ramp ceiling)
    ramp_limited: bool
    offered: Fraction
    running: bool
    held_running: bool = False
    reason: Reason | None = None  # set when the session is not admitted
    admitted: bool = False
    value: Fraction = Fraction(0)
    final: Fraction = Fraction(0)
    deferred: bool = False
    nodes: tuple[int, ...] = (0,)  # the site and every circuit above it


def _held_under(
    circuits: Sequence[Circuit], chains: dict[str, tuple[str, ...]]
) -> list[list[Fraction]]:
    """Per circuit, the fixed load under it (its sub-circuits' included), per phase."""
    fixed = {c.name: [Fraction(0)] * len(Phase) for c in circuits}
    for c in circuits:
        for name in chains[c.name]:
            for p in Phase:
                fixed[name][p] += _exact(c.fixed_a[p])
    return [fixed[c.name] for c in circuits]


def _circuit_budgets(
    circuits: Sequence[Circuit], held: Sequence[Sequence[Fraction]], notes: list[str]
) -> _Budgets:
    """limit - margin - the fixed load under each circuit."""
    budgets: _Budgets = []
    for c, fixed in zip(circuits, held, strict=True):
        margin = _exact(c.margin_a)
        budget = [max(Fraction(0), _exact(c.limit_a[p]) - margin - fixed[p]) for p in Phase]
        budgets.append(budget)
        notes.append(f"circuit {c.name} budget (limit - margin - held load) " + _fmt_phases(budget))
    return budgets


def _budget(state: SiteState, notes: list[str]) -> tuple[Mode, list[Fraction]]:
    site = state.site
    limit = [_exact(site.limit_a[p]) for p in Phase]
    margin = _exact(site.margin_a)
    zero = Fraction(0)
    if state.non_ev_a is None:
        if site.fallback_ev_a is None:
            notes.append(
                "non-EV load unknown (meter lost or not read yet) and no fallback budget "
                "configured: all sessions paused"
            )
            return Mode.FALLBACK, [zero, zero, zero]
        budget = [max(zero, min(_exact(site.fallback_ev_a[p]), limit[p] - margin)) for p in Phase]
        notes.append(
            "non-EV load unknown (meter lost or not read yet): fallback EV budget "
            + _fmt_phases(budget)
        )
        return Mode.FALLBACK, budget
    non_ev = [max(zero, _exact(state.non_ev_a[p])) for p in Phase]
    budget = [max(zero, limit[p] - margin - non_ev[p]) for p in Phase]
    overloaded = [p for p in Phase if non_ev[p] > limit[p]]
    if overloaded:
        notes.append(
            "non-EV load alone exceeds the site limit on "
            + ", ".join(
                f"{p} ({float(non_ev[p]):.1f} A > {float(limit[p]):.1f} A)" for p in overloaded
            )
            + ": all sessions paused"
        )
        return Mode.OVERLOAD, budget
    notes.append("EV budget (limit - margin - non-EV load) " + _fmt_phases(budget))
    return Mode.NORMAL, budget


def _fmt_phases(values: Sequence[Fraction | float]) -> str:
    return ", ".join(f"{p} {float(values[p]):.1f} A" for p in Phase)


def _prepare(
    session: Session,
    mode: Mode,
    state: SiteState,
    params: AllocatorParams,
    board_fallback: bool = False,
) -> _Work:
    now = state.now
    lo = _ceil_step(_exact(session.min_a))
    cap = _floor_step(_exact(session.max_a))
    cap_reason = Reason.AT_MAX
    if mode is Mode.FALLBACK or board_fallback:
        fallback = lo if session.fallback_a is None else _floor_step(_exact(session.fallback_a))
        if fallback < cap:
            cap, cap_reason = fallback, Reason.AT_FALLBACK
    offered = _exact(session.offered_a)
    running = offered > 0
    since_start = now - (
        session.started_at if session.started_at is not None else session.arrived_at
    )
    phases = session.phases
    if running and session.measured_a is not None and since_start >= params.reclaim_after_s:
        draw = max(_exact(session.measured_a[p]) for p in phases)
        if draw < offered - _exact(params.reclaim_threshold_a):
            reclaim_cap = max(lo, _ceil_step(draw + _exact(params.reclaim_headroom_a)))
            if reclaim_cap < cap:
                cap, cap_reason = reclaim_cap, Reason.RECLAIMED
    ceiling = max(lo, offered + _exact(params.ramp_a_per_s) * _exact(state.dt_s))
    work = _Work(
        session=session,
        phases=phases,
        lo=lo,
        cap=cap,
        cap_reason=cap_reason,
        upper=min(cap, ceiling),
        ramp_limited=ceiling < cap,
        offered=offered,
        running=running,
        held_running=running and since_start < params.min_run_s,
    )
    if mode is Mode.OVERLOAD:
        work.reason = Reason.PAUSED_SITE_OVERLOAD
    elif cap < lo:
        work.reason = Reason.PAUSED_BELOW_MINIMUM
    elif (
        not running
        and session.paused_at is not None
        and now - session.paused_at < params.min_pause_s
    ):
        work.reason = Reason.PAUSED_HOLD
    return work


def _rank_key(work: _Work) -> tuple[int, int, int, float, str, int]:
    """Queue order: VIP first; then running sessions still in their minimum run time; then
    waiting sessions, longest wait first; then running ones, shortest run first (the session
    that ran longest yields first). Ties go by charger id and connector, never by input order.
    """
    s = work.session
    priority = 0 if s.priority is Priority.VIP else 1
    if work.running:
        started = s.started_at if s.started_at is not None else s.arrived_at
        return (priority, 0 if work.held_running else 1, 1, -started, s.charger_id, s.connector)
    waiting_since = s.paused_at if s.paused_at is not None else s.arrived_at
    return (priority, 1, 0, waiting_since, s.charger_id, s.connector)


def _admit(ranked: Sequence[_Work], budget: _Budgets) -> None:
    """Give minimums in queue order; who does not fit is paused.

    A session fits when its minimum fits on each of its phases at the site and at every
    circuit above it. A waiting session that does not fit reserves its phases at the nodes it
    does not fit at: nobody behind it sharing one of them may *start*, or sessions behind it
    could keep starting (and holding their minimum run time) so that it waits forever. Running
    sessions behind it keep running: they yield to it anyway once it fits. Only reserve if the
    session would fit next to higher priorities alone; otherwise waiting for its equals cannot
    help it. It reserves all its phases at each node (site or circuit) it does not fit at: a
    session short only on a full board does not hold back starts on another board.
    """
    used = [[Fraction(0)] * len(Phase) for _ in budget]
    used_above = [list(row) for row in used]  # used by strictly higher priorities
    reserved: set[tuple[int, Phase]] = set()
    current_priority: Priority | None = None
    for work in ranked:
        if work.reason is not None:
            continue
        if work.session.priority is not current_priority:
            current_priority = work.session.priority
            used_above = [list(row) for row in used]
        pairs = [(n, p) for n in work.nodes for p in work.phases]
        short = [(n, p) for n, p in pairs if used[n][p] + work.lo > budget[n][p]]
        if not short:
            if not work.running and reserved.intersection(pairs):
                work.reason = Reason.PAUSED_QUEUED
                continue
            work.admitted = True
            for n, p in pairs:
                used[n][p] += work.lo
            continue
        work.reason = Reason.PAUSED_NO_CAPACITY
        if not work.running and all(used_above[n][p] + work.lo <= budget[n][p] for n, p in pairs):
            reserved.update((n, p) for n in {n for n, _ in short} for p in work.phases)


def _max_level(entries: Sequence[tuple[Fraction, Fraction]], avail: Fraction) -> Fraction | None:
    """Highest water level L with sum(max(0, min(L, upper) - value)) <= avail.

    ``entries`` are (value, upper) pairs with value < upper. ``None`` when every entry can reach
    its upper bound.
    """
    if sum(upper - value for value, upper in entries) <= avail:
        return None
    points = sorted({x for entry in entries for x in entry})
    filled = Fraction(0)
    for low, high in pairwise(points):
        slope = sum(1 for value, upper in entries if value <= low and upper >= high)
        segment = slope * (high - low)
        if filled + segment > avail:
            return low + (avail - filled) / slope
        filled += segment
    raise AssertionError("water level not found although the total exceeds the budget")


def _fill(group: Sequence[_Work], budget: _Budgets, totals: list[list[Fraction]]) -> None:
    """Max-min fair progressive filling across phases and circuits: raise everyone's level
    together; a session stops at its upper bound or when a phase it draws on is full at the
    site or at a circuit above it (the others keep rising: no one takes headroom it cannot
    use)."""
    active = [w for w in group if w.value < w.upper]
    while active:
        levels: dict[tuple[int, Phase], Fraction] = {}
        for n in range(len(budget)):
            for p in Phase:
                on_node = [(w.value, w.upper) for w in active if n in w.nodes and p in w.phases]
                if on_node:
                    avail = budget[n][p] - totals[n][p]
                    assert avail >= 0, "admission left a phase over budget"
                    level = _max_level(on_node, avail)
                    if level is not None:
                        levels[(n, p)] = level
        water = min(levels.values()) if levels else None
        for w in active:
            new = w.upper if water is None else max(w.value, min(water, w.upper))
            if new != w.value:
                for n in w.nodes:
                    for p in w.phases:
                        totals[n][p] += new - w.value
                w.value = new
        if water is None:
            return
        full = {key for key, level in levels.items() if level == water}
        active = [
            w
            for w in active
            if w.value < w.upper and not any((n, p) in full for n in w.nodes for p in w.phases)
        ]


def _make_before_break(ranked: Sequence[_Work], works: Sequence[_Work], budget: _Budgets) -> None:
    """Let raises and starts use only current that is free at the limits in force now.

    Cuts are decided this round but take effect only when the charger (and car) follow; until
    then the old limit counts, at the site and at every circuit. Raises are granted in queue
    order.
    """
    free = [list(row) for row in budget]
    for w in works:
        for n in w.nodes:
            for p in w.phases:
                free[n][p] -= w.offered
    for w in ranked:
        if not w.admitted:
            continue
        if w.value <= w.offered:
            w.final = w.value
            continue
        room = min(free[n][p] for n in w.nodes for p in w.phases)
        grant = w.value - w.offered
        if room < grant:
            grant = max(Fraction(0), room)
            w.deferred = True
        new = w.offered + grant
        if new < w.lo:
            w.final = Fraction(0)  # cannot reach its minimum yet: start later
            continue
        w.final = new
        for n in w.nodes:
            for p in w.phases:
                free[n][p] -= grant


def _running_reason(w: _Work) -> Reason:
    if w.deferred:
        return Reason.WAITING_FOR_CUTS
    if w.value == w.upper:
        return Reason.RAMPING if w.ramp_limited else w.cap_reason
    return Reason.FAIR_SHARE


def allocate(state: SiteState, params: AllocatorParams) -> AllocationResult:
    """Decide every session's current limit for this round (see the module docstring)."""
    notes: list[str] = []
    mode, site_budget = _budget(state, notes)
    chains = circuit_chains(state.circuits)
    index = {c.name: i for i, c in enumerate(state.circuits, 1)}
    held = _held_under(state.circuits, chains)
    budget = [site_budget, *_circuit_budgets(state.circuits, held, notes)]
    fallen = {c.name for c in state.circuits if c.fallback}
    works = []
    for s in state.sessions:
        chain = chains[s.circuit] if s.circuit is not None else ()
        w = _prepare(s, mode, state, params, board_fallback=bool(fallen.intersection(chain)))
        w.nodes = (0, *(index[name] for name in chain))
        works.append(w)
    ranked = sorted(works, key=_rank_key)

    _admit(ranked, budget)
    totals = [[Fraction(0)] * len(Phase) for _ in budget]
    for w in ranked:
        if w.admitted:
            w.value = w.lo
            for n in w.nodes:
                for p in w.phases:
                    totals[n][p] += w.lo
    for priority in (Priority.VIP, Priority.NORMAL):
        _fill([w for w in ranked if w.admitted and w.session.priority is priority], budget, totals)
    _make_before_break(ranked, works, budget)

    allocations: list[Allocation] = []
    used = [[Fraction(0)] * len(Phase) for _ in budget]
    queued: set[tuple[str, int]] = set()
    for w in works:
        s = w.session
        limit = _floor_step(w.final) if w.admitted else Fraction(0)
        if limit > 0:
            reason = _running_reason(w)
        elif w.admitted:
            reason = Reason.WAITING_FOR_CUTS
        else:
            assert w.reason is not None
            reason = w.reason
        started_at, paused_at = s.started_at, s.paused_at
        if limit > 0 and not w.running:
            started_at = state.now
        elif limit == 0 and w.running:
            paused_at = state.now
        for n in w.nodes:
            for p in w.phases:
                used[n][p] += limit
        allocations.append(
            Allocation(
                charger_id=s.charger_id,
                connector=s.connector,
                limit_a=float(limit),
                reason=reason,
                phases=w.phases,
                started_at=started_at,
                paused_at=paused_at,
            )
        )
        if limit != w.offered or reason is Reason.WAITING_FOR_CUTS:
            notes.append(
                f"{s.label} ({s.priority}, {_fmt_set(w.phases)}"
                f"{'' if s.car_phases is not None else ', phases not yet measured'}): "
                f"{float(w.offered):.1f} A -> {float(limit):.1f} A ({reason})"
            )
        if limit == 0 and reason in (Reason.PAUSED_NO_CAPACITY, Reason.PAUSED_QUEUED):
            queued.add(s.key)
    if queued:
        queue = [w.session.label for w in ranked if w.session.key in queued]
        notes.append("queue (next to start first): " + ", ".join(queue))
    return AllocationResult(
        mode=mode,
        allocations=tuple(allocations),
        budget_a=_per_phase_floats(site_budget),
        used_a=_per_phase_floats(used[0]),
        headroom_a=_per_phase_floats([site_budget[p] - used[0][p] for p in Phase]),
        notes=tuple(notes),
        circuits=tuple(
            CircuitUse(
                name=c.name,
                parent=c.parent,
                limit_a=c.limit_a,
                margin_a=c.margin_a,
                used_a=_per_phase_floats([used[n][p] + held[n - 1][p] for p in Phase]),
            )
            for n, c in enumerate(state.circuits, 1)
        ),
    )


def _fmt_set(phases: Iterable[Phase]) -> str:
    return "+".join(str(p) for p in sorted(phases))


def _per_phase_floats(values: Sequence[Fraction]) -> PerPhase:
    return (float(values[0]), float(values[1]), float(values[2]))


__all__ = [
    "ALL_PHASES",
    "SELF_CAPPED",
    "Allocation",
    "AllocationResult",
    "AllocatorInputError",
    "AllocatorParams",
    "Circuit",
    "CircuitUse",
    "Mode",
    "PerPhase",
    "Phase",
    "Priority",
    "Reason",
    "Session",
    "Site",
    "SiteState",
    "allocate",
    "circuit_chains",
    "map_phases",
    "non_ev_from_grid",
]
