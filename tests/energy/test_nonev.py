"""The non-EV load estimate (``edgegw.energy.nonev``): what it guarantees, directly.

Safety-critical: an estimate too low lets the chargers take current the building is using.
The properties below are the ones the module states; each can fail (an estimate that held a
stale value out of its bounds, subtracted a car's unmeasured limit, went negative...).
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from edgegw.energy.allocator import PerPhase, Phase
from edgegw.energy.nonev import NO_ESTIMATE, ChargerDraw, draw_bounds, estimate_non_ev

L1, L2, L3 = Phase.L1, Phase.L2, Phase.L3
ALL = frozenset(Phase)
TOL = 1.0
EPS = 1e-6


def draw(
    offered: float,
    measured: PerPhase | None = None,
    *,
    settled: bool = True,
    phases: frozenset[Phase] = ALL,
) -> ChargerDraw:
    return ChargerDraw(phases=phases, offered_a=offered, measured_a=measured, settled=settled)


# ------------------------------------------------------------------ examples


def test_no_sessions_the_grid_is_all_building_load() -> None:
    estimate, held = estimate_non_ev((10.0, 12.0, 3.0), [], NO_ESTIMATE, TOL)
    assert estimate == (10.0, 12.0, 3.0)
    assert held == (10.0, 12.0, 3.0)


def test_a_car_that_measured_is_subtracted() -> None:
    estimate, _ = estimate_non_ev(
        (30.0, 30.0, 30.0), [draw(16, (10.0, 10.0, 10.0))], NO_ESTIMATE, TOL
    )
    assert estimate == (20.0, 20.0, 20.0)


def test_a_car_measured_above_its_limit_counts_at_its_limit() -> None:
    # Its excess is load the gateway does not control: it stays in the building load.
    estimate, _ = estimate_non_ev(
        (30.0, 30.0, 30.0), [draw(10, (14.0, 14.0, 14.0))], NO_ESTIMATE, TOL
    )
    assert estimate == (20.0, 20.0, 20.0)


def test_a_car_following_its_limit_counts_at_its_limit() -> None:
    # 15.5 A against 16 A: within the tolerance, it follows its limit.
    estimate, _ = estimate_non_ev(
        (30.0, 30.0, 30.0), [draw(16, (15.5, 15.5, 15.5))], NO_ESTIMATE, TOL
    )
    assert estimate == (14.0, 14.0, 14.0)


def test_a_car_that_never_measured_is_building_load() -> None:
    estimate, _ = estimate_non_ev(
        (30.0, 30.0, 30.0), [draw(16, None, settled=False)], NO_ESTIMATE, TOL
    )
    assert estimate == (30.0, 30.0, 30.0)  # the upper bound: the safe one


def test_only_the_phases_a_car_draws_on() -> None:
    one_phase = draw(16, (10.0, 0.0, 0.0), phases=frozenset({L1}))
    estimate, _ = estimate_non_ev((30.0, 30.0, 30.0), [one_phase], NO_ESTIMATE, TOL)
    assert estimate == (20.0, 30.0, 30.0)


def test_a_ramping_car_keeps_the_held_estimate_within_the_bounds() -> None:
    # Raised from 6 A to 16 A, it has not measured since: the grid rose by its ramp-up. The
    # estimate held from before the raise (4 A) stays: the car's ramp is not building load.
    ramping = draw(16, (6.0, 6.0, 6.0), settled=False)
    estimate, held = estimate_non_ev((14.0, 14.0, 14.0), [ramping], (4.0, 4.0, 4.0), TOL)
    assert estimate == (4.0, 4.0, 4.0)
    assert held == (4.0, 4.0, 4.0)


def test_a_held_estimate_out_of_the_bounds_gives_way_to_the_upper_bound() -> None:
    # The grid jumped by more than the car could possibly have ramped: the building changed.
    ramping = draw(16, (6.0, 6.0, 6.0), settled=False)
    estimate, held = estimate_non_ev((40.0, 14.0, 14.0), [ramping], (4.0, 4.0, 4.0), TOL)
    assert estimate == (34.0, 4.0, 4.0)
    assert held == (34.0, 4.0, 4.0)


def test_a_cut_acknowledged_after_the_reading_keeps_the_held_estimate() -> None:
    # Cut from 16 A to 6 A after the meter read: the reading still has the car at 16 A. Counted
    # at 6 A, its 10 A would look like building load (and pause cars that then look like
    # building load too, round after round).
    cut = ChargerDraw(
        phases=ALL, offered_a=6, measured_a=(16.0, 16.0, 16.0), settled=False, before_a=16
    )
    estimate, held = estimate_non_ev((20.0, 20.0, 20.0), [cut], (4.0, 4.0, 4.0), TOL)
    assert estimate == (4.0, 4.0, 4.0)
    assert held == (4.0, 4.0, 4.0)
    # Without the limit before (a reading newer than the cut), the car is at most at 6 A.
    newer = ChargerDraw(phases=ALL, offered_a=6, measured_a=(16.0, 16.0, 16.0), settled=False)
    estimate, _ = estimate_non_ev((20.0, 20.0, 20.0), [newer], (4.0, 4.0, 4.0), TOL)
    assert estimate == (14.0, 14.0, 14.0)


def test_a_settled_phase_never_keeps_a_held_estimate() -> None:
    estimate, held = estimate_non_ev(
        (30.0, 30.0, 30.0), [draw(16, (10.0, 10.0, 10.0))], (5.0, 5.0, 5.0), TOL
    )
    assert estimate == (20.0, 20.0, 20.0)
    assert held == (20.0, 20.0, 20.0)


def test_export_is_never_counted_as_room() -> None:
    estimate, held = estimate_non_ev(
        (-10.0, 2.0, 0.0), [draw(16, (6.0, 6.0, 6.0))], NO_ESTIMATE, TOL
    )
    assert estimate == (0.0, 0.0, 0.0)
    assert held == (-16.0, -4.0, -6.0)  # kept as computed: the bounds compare with it


# ------------------------------------------------------------------ properties

amps = st.floats(min_value=0.0, max_value=80.0, allow_nan=False)
grid_amps = st.floats(min_value=-50.0, max_value=400.0, allow_nan=False)
phase_sets = st.sets(st.sampled_from(list(Phase)), min_size=1).map(frozenset)
per_phase = st.tuples(amps, amps, amps)
draws = st.builds(
    ChargerDraw,
    phases=phase_sets,
    offered_a=amps,
    measured_a=st.none() | per_phase,
    settled=st.booleans(),
    before_a=st.none() | amps,
)
held_values = st.tuples(*(st.none() | grid_amps for _ in range(3)))


@settings(max_examples=400)
@given(st.tuples(grid_amps, grid_amps, grid_amps), st.lists(draws, max_size=8), held_values)
def test_properties(
    grid: PerPhase,
    sessions: list[ChargerDraw],
    held: tuple[float | None, float | None, float | None],
) -> None:
    estimate, kept = estimate_non_ev(grid, sessions, held, TOL)
    bounds = draw_bounds(sessions, TOL)
    for p in Phase:
        lower = grid[p] - bounds.possible_a[p]
        upper = grid[p] - bounds.known_a[p]
        # Never negative, and finite.
        assert estimate[p] >= 0 and math.isfinite(estimate[p])
        # Never below the metered load minus what the chargers can be drawing.
        assert estimate[p] >= max(0.0, lower) - EPS
        # Never above the metered load minus what they provably draw.
        assert estimate[p] <= max(0.0, upper) + EPS
        # What is held for the next round is what was used (before the clamp at 0).
        kept_p = kept[p]
        assert kept_p is not None and max(0.0, kept_p) == estimate[p]
        # A phase without a ramping session, or without a held estimate, gets the upper bound.
        if p not in bounds.unsettled or held[p] is None:
            assert estimate[p] == max(0.0, upper)


@given(st.lists(draws, max_size=8))
def test_bounds_known_never_above_possible(sessions: list[ChargerDraw]) -> None:
    bounds = draw_bounds(sessions, TOL)
    for p in Phase:
        assert 0.0 <= bounds.known_a[p] <= bounds.possible_a[p] + EPS
        # Possible is every session on the phase at its limit in force, or at the one before
        # when the reading predates the change and that one was higher.
        assert math.isclose(
            bounds.possible_a[p],
            math.fsum(max(s.offered_a, s.before_a or 0.0) for s in sessions if p in s.phases),
            abs_tol=EPS,
        )


@given(st.tuples(grid_amps, grid_amps, grid_amps), st.lists(draws, max_size=8), held_values)
def test_a_second_round_on_the_same_reading_changes_nothing(
    grid: PerPhase,
    sessions: list[ChargerDraw],
    held: tuple[float | None, float | None, float | None],
) -> None:
    first, kept = estimate_non_ev(grid, sessions, held, TOL)
    second, kept_again = estimate_non_ev(grid, sessions, kept, TOL)
    assert second == first
    assert kept_again == kept
