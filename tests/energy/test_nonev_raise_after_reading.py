"""The non-EV estimate from a reading older than a raise (``edgegw.energy.nonev``, ``since_a``).

A car raised after the meter measured may still be at its lower limit in that reading, even
when its own MeterValues since show it at the new one: counting it at the new limit as what it
provably draws made the building load look smaller by the raise (others were then given that
current: the main fuse over its limit in the closed loop with meters answering 0.1 s after
measuring). The phase is not settled for that reading, so a held estimate within the bounds
stays (no car paused for the ambiguity).
"""

from __future__ import annotations

from edgegw.energy.allocator import Phase
from edgegw.energy.nonev import NO_ESTIMATE, ChargerDraw, estimate_non_ev

ALL = frozenset(Phase)
TOL = 1.0
BUILDING = 20.0


def raised(since: float | None) -> ChargerDraw:
    """A car at its 16 A limit that says so, maybe raised from ``since`` after the reading."""
    return ChargerDraw(
        phases=ALL, offered_a=16.0, measured_a=(16.0, 16.0, 16.0), settled=True, since_a=since
    )


def test_a_reading_older_than_a_raise_may_show_the_car_at_its_lower_limit() -> None:
    grid = (BUILDING + 6.0,) * 3  # the meter measured before the car took the raise
    estimate, kept = estimate_non_ev(grid, [raised(6.0)], NO_ESTIMATE, TOL)
    assert estimate == (BUILDING,) * 3  # was 10 A: the raise taken as building load gone
    assert kept == (BUILDING,) * 3


def test_a_held_estimate_within_the_bounds_is_kept() -> None:
    # The reading shows the car at 16 A already: the bounds are [20, 30], the held 20 stays.
    estimate, _ = estimate_non_ev((BUILDING + 16.0,) * 3, [raised(6.0)], (BUILDING,) * 3, TOL)
    assert estimate == (BUILDING,) * 3


def test_building_load_that_rose_beyond_the_bounds_is_taken() -> None:
    grid = (BUILDING + 30.0 + 16.0,) * 3
    estimate, _ = estimate_non_ev(grid, [raised(6.0)], (BUILDING,) * 3, TOL)
    assert estimate == (BUILDING + 30.0 + 10.0,) * 3  # the upper bound: the car at 6 A


def test_a_reading_newer_than_the_raise_changes_nothing() -> None:
    grid = (BUILDING + 16.0,) * 3
    estimate, _ = estimate_non_ev(grid, [raised(None)], NO_ESTIMATE, TOL)
    assert estimate == (BUILDING,) * 3
