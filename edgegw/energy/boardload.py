"""The boards' meters in a round: each metered board's other load, its fallback, its hold.

A circuit with ``meter`` (a ``[[meters]]`` entry with ``role = "circuit"``) is read like the
site meter (:func:`observe_boards`, the rules of :func:`edgegw.energy.planner.observe_meter`):
a fresh sample gives the board's load; one whose later read failed *holds* the sessions under
the board (cuts only); none, or one older than ``meter_lost_after``, makes the board *lost*.
From a reading the board's non-EV load is what the site's is (:mod:`edgegw.energy.nonev`, the
same bounds, with the sessions under the board): ``meter_role = "total"`` measures the
chargers too and the estimate takes their share out; ``"non_ev"`` measures the rest alone.
A lost board falls back alone, as the site does: its sessions are capped at their fallback
current and share its ``fallback_ev_a`` (none: paused), its other load counted at the worst
case that leaves them that (``limit_a - margin_a - fallback_ev_a``).

:func:`circuits` turns all that, with the sessions held outside the allocator, into the
allocator's :class:`~edgegw.energy.allocator.Circuit` list. A board's count covers everything
under it: its other load is at least what its meter says is there besides every session under
it, and never less than what its sub-boards count of other load (so a metered board above a
metered board does not count the lower board's load twice). A session held outside the
allocator or forced to its minimum counts apart, at its held current, once, at its own
circuit, whatever meters sit above it: a reading holds only what its car draws now.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from edgegw.config import CircuitConfig
from edgegw.energy.allocator import Circuit, PerPhase, Phase, Session
from edgegw.energy.nonev import NO_ESTIMATE, ChargerDraw, estimate_non_ev
from edgegw.energy.sitemodel import SiteModel
from edgegw.energy.siterecords import (
    BoardView,
    ChargerRecord,
    CircuitSamples,
    SampleLike,
    SessionRecord,
)

log = logging.getLogger("edgegw.energy.controller")

Eligible = tuple[ChargerRecord, SessionRecord, Session]
"""A session the allocator decides, with its charger and its bookkeeping."""
Pinned = tuple[ChargerRecord, SessionRecord, float, str]
"""A session held at a fixed limit (A per phase) outside the allocator, and why."""


@runtime_checkable
class FailAwareSample(SampleLike, Protocol):
    """A sample that also says whether a later read of the meter failed
    (``edgegw.energy.meters.MeterSample``)."""

    @property
    def failed_at(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class BoardLoad:
    """What a round counts on one metered board besides the sessions it allocates."""

    other_a: PerPhase
    """Its non-EV load (measured or estimated), or the worst case while lost."""
    lost: bool
    hold: bool


def _per_phase(values: Sequence[float]) -> PerPhase:
    return (values[0], values[1], values[2])


def chains(circuits: Sequence[CircuitConfig]) -> dict[str | None, tuple[str, ...]]:
    """Each circuit's name -> itself and every circuit above it (the configuration refuses
    cycles); ``None`` (a charger on the site) -> none."""
    parents = {c.name: c.parent for c in circuits}
    out: dict[str | None, tuple[str, ...]] = {None: ()}
    for circuit in circuits:
        names: list[str] = []
        name: str | None = circuit.name
        while name is not None and name in parents and name not in names:
            names.append(name)
            name = parents[name]
        out[circuit.name] = tuple(names)
    return out


def charger_draws(eligible: Sequence[Eligible], sample_at: float) -> list[ChargerDraw]:
    """What each allocated session contributes to a reading taken at ``sample_at``."""
    return [
        ChargerDraw(
            phases=s.phases,
            offered_a=s.offered_a,
            # Limits changed (acknowledged) after the meter read: the reading may still
            # carry the car's draw at any limit in force since, the highest of them counts.
            before_a=session.highest_earlier_offer(sample_at),
            # ... and a raise acknowledged since: the reading may show the car at the lower one.
            since_a=session.lowest_earlier_offer(sample_at),
            measured_a=session.measured_a,
            settled=session.measured_a is not None
            and session.measured_at is not None
            and session.measured_at >= session.offered_since,
        )
        for _, session, s in eligible
    ]


def held_draw(ch: ChargerRecord, session: SessionRecord, amps: float) -> float:
    """What a session held at ``amps`` outside the allocator may draw this round (A per
    phase): the higher of ``amps`` and its limit in force. A charger keeps drawing at the
    limit in force until it acknowledges a cut (a caretaker pause, a cloud limit below the
    minimum), so counting only the new limit would hand the same current to others at once."""
    return max(amps, ch.offered(session.connector))


def _set_state(name: str, view: BoardView, state: str, why: str, fallback: PerPhase | None) -> None:
    if state == view.state:
        return
    if state == "lost":
        log.warning(
            "circuit %s in fallback mode: %s (its chargers share %s)",
            name,
            why,
            "nothing, all paused" if fallback is None else f"{fallback} A per phase",
        )
    elif view.state == "lost":
        log.info("circuit %s: its meter reads again, its chargers follow it again", name)
    view.state = state


def _observe(
    model: SiteModel, circuit: CircuitConfig, sample: SampleLike | None, now: float
) -> PerPhase | None:
    """One board meter's fresh reading, or None when it is lost (see the module's text)."""
    view = model.boards.setdefault(circuit.name, BoardView())
    fallback = circuit.fallback()
    if sample is None:
        view.age_s = None
        if view.state != "waiting":  # not read yet: as lost, but nothing was lost
            _set_state(circuit.name, view, "lost", "no sample from its meter", fallback)
        return None
    age = now - sample.at
    view.age_s = age
    currents = sample.reading.site_currents_a(model.site.phases)
    if currents is None:
        _set_state(circuit.name, view, "lost", "its meter gives no valid phase currents", fallback)
        return None
    if age > model.site.meter_lost_after:
        _set_state(circuit.name, view, "lost", f"its last sample is {age:.1f} s old", fallback)
        return None
    _set_state(circuit.name, view, "ok", "", fallback)
    failed = isinstance(sample, FailAwareSample) and sample.failed_at is not None
    if failed != view.hold:
        view.hold = failed
        log.info(
            "circuit %s: %s",
            circuit.name,
            "its meter read failed: no charger under it is raised until it reads again"
            if failed
            else "its meter reads again: limits may rise again",
        )
    return currents


def observe_boards(
    model: SiteModel,
    samples: CircuitSamples,
    eligible: Sequence[Eligible],
    now: float,
    pinned: Sequence[Pinned] = (),
) -> dict[str, BoardLoad]:
    """Each metered board's load for this round, by circuit name (records it on
    ``model.boards``). A ``total`` meter's other load has every session under the board taken
    out: the allocated ones by the estimate's bounds, the ``pinned`` ones (held outside the
    allocator) by what they last measured; :func:`circuits` counts each held session at its
    held current, once, at its own circuit."""
    boards: dict[str, BoardLoad] = {}
    configured = model.config.circuits
    above = chains(configured)
    under: dict[str, list[Eligible]] = {c.name: [] for c in configured}
    for entry in eligible:
        for name in above.get(entry[2].circuit, ()):
            under[name].append(entry)
    held_drawn = {c.name: [0.0, 0.0, 0.0] for c in configured}
    for ch, session, _, _ in pinned:
        if session.measured_a is None:
            continue  # nothing known: its draw stays in the reading (counted twice, safe)
        for name in above.get(ch.config.circuit, ()):
            for p in session.car_phases or ch.site_phases:
                held_drawn[name][p] += session.measured_a[p]
    for circuit in configured:
        role = circuit.metered_as
        if role is None:
            continue
        sample = samples.get(circuit.name)
        reading = _observe(model, circuit, sample, now)
        view = model.boards[circuit.name]
        if reading is None or sample is None:
            view.held_non_ev = NO_ESTIMATE
            view.hold = False
            view.measured_a = None
            room = [limit - circuit.margin(model.site) for limit in model.circuit_limits(circuit)]
            allowed = circuit.fallback() or (0.0, 0.0, 0.0)
            view.other_a = _per_phase([max(0.0, room[p] - allowed[p]) for p in Phase])
            boards[circuit.name] = BoardLoad(view.other_a, lost=True, hold=False)
            continue
        view.measured_a = reading
        if role == "total":
            other, view.held_non_ev = estimate_non_ev(
                reading,
                charger_draws(under[circuit.name], sample.at),
                view.held_non_ev,
                model.tuning.follow_tolerance_a,
            )
            drawn = held_drawn[circuit.name]
            other = _per_phase([max(0.0, other[p] - drawn[p]) for p in Phase])
        else:
            other = reading
        view.other_a = other
        boards[circuit.name] = BoardLoad(other, lost=False, hold=view.hold)
    return boards


def board_reading_matters(model: SiteModel, circuit: str, sample: SampleLike | None) -> bool:
    """Whether a new sample of ``circuit``'s meter should start a round at once: the first
    one, one above the board's limit - margin, or one that jumped (``Tuning.jump_a``)."""
    config = next((c for c in model.config.circuits if c.name == circuit), None)
    if config is None or sample is None:
        return False
    reading = sample.reading.site_currents_a(model.site.phases)
    view = model.boards.get(circuit)
    if reading is None or view is None or view.measured_a is None:
        return True
    limits = model.circuit_limits(config)
    margin = config.margin(model.site)
    last = view.measured_a
    return any(
        reading[p] > limits[p] - margin or abs(reading[p] - last[p]) >= model.tuning.jump_a
        for p in Phase
    )


class BoardEvents(Protocol):
    """Who starts a round when a board's meter reads (the load controller)."""

    def circuit_meter_event(self, circuit: str) -> None: ...


def board_listener(controller: BoardEvents, circuit: str) -> Callable[[object], None]:
    """A meter poller's sample listener telling ``controller`` about ``circuit``'s meter."""

    def heard(_sample: object) -> None:
        controller.circuit_meter_event(circuit)

    return heard


def holding_boards(boards: Mapping[str, BoardLoad]) -> set[str]:
    """The boards whose meter's last read failed (no raise under them)."""
    return {name for name, board in boards.items() if board.hold}


def circuits(
    model: SiteModel,
    pinned: Sequence[Pinned],
    forced: Sequence[Eligible],
    boards: Mapping[str, BoardLoad] | None = None,
) -> tuple[Circuit, ...]:
    """The configured circuits for the allocator, each with the load it does not decide.

    A session held outside the allocator counts at its own circuit, in full, at the higher of
    its new limit and the one in force (:func:`held_draw`); a session forced to its minimum at
    its minimum (or its limit in force if higher). The allocator's tree sum carries both to
    every circuit above, once: no board's meter reading stands in for them, since a reading
    holds only what such a car draws now, not what it may draw (a ``total`` meter's other load
    has their draw taken out, :func:`observe_boards`). A metered board's other load counts at
    the board, less what its sub-boards already count of it (a metered board above a metered
    board does not count the lower board's load twice)."""
    configured = model.config.circuits
    if not configured:
        return ()
    boards = boards or {}
    own = {c.name: [0.0, 0.0, 0.0] for c in configured}
    for ch, session, amps, _ in pinned:
        name = ch.config.circuit
        if name in own:
            most = held_draw(ch, session, amps)
            for p in session.car_phases or ch.site_phases:
                own[name][p] += most
    for ch, _, s in forced:
        name = ch.config.circuit
        if name in own:
            for p in s.phases:
                own[name][p] += max(s.min_a, s.offered_a)
    if boards:
        above = chains(configured)
        depth = {c.name: len(above[c.name]) for c in configured}
        other_under: dict[str, list[float]] = {}  # the boards' other load counted under each
        for c in sorted(configured, key=lambda c: -depth[c.name]):  # the deepest first
            below = [0.0, 0.0, 0.0]
            for k in configured:
                if k.parent == c.name:
                    for p in Phase:
                        below[p] += other_under[k.name][p]
            board = boards.get(c.name)
            counted = [0.0, 0.0, 0.0]
            if board is not None:
                for p in Phase:
                    counted[p] = (
                        board.other_a[p] if board.lost else max(0.0, board.other_a[p] - below[p])
                    )
                    own[c.name][p] += counted[p]
            other_under[c.name] = [counted[p] + below[p] for p in Phase]
    return tuple(
        Circuit(
            name=c.name,
            limit_a=model.circuit_limits(c),
            margin_a=c.margin(model.site),
            parent=c.parent,
            fixed_a=_per_phase(own[c.name]),
            fallback=c.name in boards and boards[c.name].lost,
        )
        for c in configured
    )
