"""The non-EV estimate while a cut is on its way (``edgegw.energy.nonev``, ``cut_to_a``).

A charger obeys a cut when it takes the call, before its answer reaches the gateway (and a
meter's answer may be on its way meanwhile): a reading can show the car at its new limit while
its old one is still the limit in force. Counting the car at the old limit as what it
provably draws made the building load look smaller by the cut (the allocator then handed that
current to others: the main fuse over its limit in the closed loop with meters answering
0.1 s after measuring). Counting it at the new limit as settled would make a reading taken
before the charger obeyed count its old draw as building load (cars paused for nothing).
"""

from __future__ import annotations

from edgegw.energy.allocator import Phase
from edgegw.energy.nonev import NO_ESTIMATE, ChargerDraw, estimate_non_ev

ALL = frozenset(Phase)
TOL = 1.0
BUILDING = 20.0


def car(cut_to: float | None) -> ChargerDraw:
    """A car that measured 16 A at its 16 A limit in force, maybe with a cut to 6 A sent."""
    return ChargerDraw(
        phases=ALL, offered_a=16.0, measured_a=(16.0, 16.0, 16.0), settled=True, cut_to_a=cut_to
    )


def test_a_reading_that_already_shows_the_cut_is_not_taken_for_less_building_load() -> None:
    held = (BUILDING,) * 3
    grid = (BUILDING + 6.0,) * 3  # the car obeyed the cut, its answer not heard yet
    estimate, kept = estimate_non_ev(grid, [car(6.0)], held, TOL)
    assert estimate == (BUILDING,) * 3  # was 10 A: the cut counted as building load gone
    assert kept == held
    # Without a held estimate: the upper bound, the car counted at its new limit.
    estimate, _ = estimate_non_ev(grid, [car(6.0)], NO_ESTIMATE, TOL)
    assert estimate == (BUILDING,) * 3


def test_a_reading_from_before_the_car_obeyed_keeps_the_held_estimate() -> None:
    held = (BUILDING,) * 3
    grid = (BUILDING + 16.0,) * 3  # the charger has not taken the call yet
    estimate, _ = estimate_non_ev(grid, [car(6.0)], held, TOL)
    assert estimate == (BUILDING,) * 3  # not 30 A: its old draw is not building load


def test_building_load_that_rose_beyond_the_bounds_is_taken() -> None:
    # The bounds still hold: a held estimate below grid - (what the car may draw) is dropped.
    grid = (BUILDING + 30.0 + 16.0,) * 3
    estimate, _ = estimate_non_ev(grid, [car(6.0)], (BUILDING,) * 3, TOL)
    assert estimate == (BUILDING + 30.0 + 10.0,) * 3  # the upper bound: the car at 6 A


def test_a_raise_on_its_way_changes_nothing() -> None:
    grid = (BUILDING + 16.0,) * 3
    before, _ = estimate_non_ev(grid, [car(None)], NO_ESTIMATE, TOL)
    after, _ = estimate_non_ev(grid, [car(32.0)], NO_ESTIMATE, TOL)
    assert before == after == (BUILDING,) * 3


def test_a_pause_on_its_way_counts_the_car_at_nothing() -> None:
    grid = (BUILDING,) * 3  # the charger paused the car already
    estimate, _ = estimate_non_ev(grid, [car(0.0)], NO_ESTIMATE, TOL)
    assert estimate == (BUILDING,) * 3


def test_a_reading_older_than_a_raise_may_show_the_car_at_its_lower_limit() -> None:
    # Raised from 6 A to 16 A after the meter measured; its MeterValues since show 16 A.
    raised = ChargerDraw(
        phases=ALL, offered_a=16.0, measured_a=(16.0, 16.0, 16.0), settled=True, since_a=6.0
    )
    grid = (BUILDING + 6.0,) * 3
    estimate, _ = estimate_non_ev(grid, [raised], NO_ESTIMATE, TOL)
    assert estimate == (BUILDING,) * 3  # was 10 A: the raise taken as building load gone
    # A held estimate within the bounds is kept (the phase is not settled for this reading).
    estimate, _ = estimate_non_ev((BUILDING + 16.0,) * 3, [raised], (BUILDING,) * 3, TOL)
    assert estimate == (BUILDING,) * 3
