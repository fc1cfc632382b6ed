"""The building load that is not the chargers', from a grid meter that measures both.

Pure arithmetic, no clock and no I/O; the load controller keeps the held estimate between
rounds and hands it back in. Safety-critical: an estimate too low lets the chargers overload
the site, so what it guarantees is stated and property-tested (``tests/energy/test_nonev.py``):

* it is never negative;
* on every phase it lies within ``[grid - possible, grid - known]`` clamped at 0, where
  ``possible`` is what the chargers' sessions may be drawing (their limits in force, or the
  highest limit in force since the grid reading was taken when that is higher: a cut
  acknowledged after the meter read is not in the reading yet) and
  ``known`` what they provably draw (what they last measured, capped at their limits and at
  the lowest limit in force since the reading was taken): it is never below the metered
  load minus what the chargers can be drawing;
* a phase on which every session has measured since its limit last changed gets the upper
  bound (the safe one), and so does any phase without a held estimate or whose held estimate
  left the bounds (the building load provably changed);
* only a phase with a session still ramping to a new limit (or raised since the reading was
  taken) may keep the held estimate.

A lost meter gives no grid reading at all: the controller then allocates the fallback budget
and calls none of this (the held estimate is dropped).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edgegw.energy.allocator import PerPhase, Phase
from edgegw.energy.inforce import EPS

HeldEstimate = tuple[float | None, float | None, float | None]
"""The estimate kept per phase (None: none yet)."""

NO_ESTIMATE: HeldEstimate = (None, None, None)


@dataclass(frozen=True, slots=True)
class ChargerDraw:
    """What one controlled session contributes to the grid reading."""

    phases: frozenset[Phase]
    """The site phases it draws on."""
    offered_a: float
    """Its limit in force (A per phase)."""
    measured_a: PerPhase | None
    """What it last measured, per site phase (None: nothing yet)."""
    settled: bool
    """It measured after its limit in force last changed."""
    before_a: float | None = None
    """The highest of the limits in force before that one since the grid reading was taken (the
    reading may still carry the draw at it); None: the reading is newer than the change."""
    since_a: float | None = None
    """The lowest of the limits in force before that one since the grid reading was taken: the
    reading may show the car at it (a raise taken after the meter measured), so it is what the
    session provably draws at most in that reading, and its phases are not settled; None: the
    reading is newer than the change."""


@dataclass(frozen=True, slots=True)
class NonEvBounds:
    """Per phase, what the chargers provably draw and what they may draw."""

    known_a: PerPhase
    possible_a: PerPhase
    unsettled: frozenset[Phase]
    """Phases with a session that has not measured since its limit changed."""


def draw_bounds(draws: Iterable[ChargerDraw], follow_tolerance_a: float) -> NonEvBounds:
    """Add up the sessions: ``known`` counts what a session measured (capped at its limit);
    one that measured at its limit (within ``follow_tolerance_a``) after the limit took effect
    follows it and counts at its limit; ``possible`` counts every session at its limit, or at
    ``before_a`` if that is higher (a limit in force since the reading was taken)."""
    known = [0.0, 0.0, 0.0]
    possible = [0.0, 0.0, 0.0]
    unsettled: set[Phase] = set()
    for draw in draws:
        offered = draw.offered_a
        measured = draw.measured_a
        following = (
            draw.settled and measured is not None and max(measured) >= offered - follow_tolerance_a
        )
        most = max(offered, draw.before_a or 0.0)  # what it may draw in the reading
        # What it surely draws in the reading: not above a lower limit in force since the
        # reading was taken (a raise the meter did not see yet).
        least = offered if draw.since_a is None else min(offered, draw.since_a)
        lower = least < offered - EPS  # the reading may show it below its limit in force
        for p in draw.phases:
            possible[p] += most
            if following:
                known[p] += least
            elif measured is not None:
                known[p] += min(measured[p], least)
            if lower or not draw.settled:
                unsettled.add(p)
    return NonEvBounds(
        (known[0], known[1], known[2]),
        (possible[0], possible[1], possible[2]),
        frozenset(unsettled),
    )


def estimate_non_ev(
    grid: PerPhase,
    draws: Iterable[ChargerDraw],
    held: Sequence[float | None],
    follow_tolerance_a: float,
) -> tuple[PerPhase, HeldEstimate]:
    """The non-EV load per phase, and the held estimate for the next round.

    A charger's MeterValues come every few seconds to a minute, the grid meter every second,
    so the cars' own draw is known only roughly: ``grid - possible <= non-EV <= grid - known``.
    The upper bound is the safe one, but right after a raise it counts the car's ramp-up as
    building load and would take the raise back at once, again and again until the next
    MeterValues. So the estimate from the last moment every session on the phase had
    measured since its limit last changed is *held* while it stays within the bounds, and the
    upper bound is used (and held from now on) as soon as it does not, or when there is none.
    """
    bounds = draw_bounds(draws, follow_tolerance_a)
    estimate = [0.0, 0.0, 0.0]
    kept = list(held)
    for p in Phase:
        upper = grid[p] - bounds.known_a[p]
        lower = grid[p] - bounds.possible_a[p]
        before = held[p]
        if p in bounds.unsettled and before is not None and lower - EPS <= before <= upper + EPS:
            estimate[p] = before
        else:
            estimate[p] = upper
            kept[p] = upper
    return (
        (max(0.0, estimate[0]), max(0.0, estimate[1]), max(0.0, estimate[2])),
        (kept[0], kept[1], kept[2]),
    )
