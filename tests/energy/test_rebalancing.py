"""Rebalancing (issue 22, item 4), one round at a time through the site model and the planner:
a car drawing less than it is offered gives its unused share to the others as soon as the
charger has taken its cut, and a car that goes down to one phase on its own is counted on
that phase only (the others get the phases it left). The allocator's own rules are tested in
``test_allocator.py``; these show them end to end, under a board."""

from __future__ import annotations

from tests.energy.test_board_meters import PARAMS, Park


def board_park(chargers: list[dict[str, object]], limit: float) -> Park:
    park = Park(
        circuits=[{"name": "row", "limit_a": limit, "margin_a": 2}],
        chargers=[{**c, "circuit": "row"} for c in chargers],
    )
    for i, charger in enumerate(chargers):
        park.plug(str(charger["id"]), i + 1)
    return park


def test_a_car_drawing_less_than_offered_gives_its_share_to_the_others_in_one_round() -> None:
    park = board_park([{"id": "A", "max_current_a": 32}, {"id": "B", "max_current_a": 32}], 50)
    park.settle()
    assert park.limits() == {"A": 24.0, "B": 24.0}
    park.now += PARAMS.reclaim_after_s  # both have charged long enough to be judged
    park.car_max["A"] = 5.0  # A's battery is nearly full: it draws 5 A of its 24 A
    park.follow()
    first = park.round()  # the round that sees it
    decided = {a.charger_id: a for a in first.result.allocations}
    assert decided["A"].limit_a == 8.0 and decided["A"].reason.value == "reclaimed"  # 5 + 3
    # B's raise waits until A's charger has taken the cut (make before break).
    assert decided["B"].reason.value == "waiting_for_cuts"
    park.ack_all()
    park.round()  # the next round, with A's cut in force: B has its share
    assert park.limits() == {"A": 8.0, "B": 32.0}


def test_a_car_that_goes_to_one_phase_on_its_own_is_counted_on_that_phase_only() -> None:
    park = board_park(
        [{"id": "A", "max_current_a": 32}, {"id": "B", "max_current_a": 32, "phases": "L2"}], 32
    )
    park.settle()
    assert park.limits() == {"A": 15.0, "B": 15.0}  # both on L2: 30 A between them
    park.one_phase.add("A")  # A's car switches to one phase (its L1)
    park.follow()
    park.round()  # the round that sees it: A no longer counts on L2
    park.ack_all()
    park.round()
    assert park.limits() == {"A": 30.0, "B": 30.0}
    (session,) = park.model.chargers["A"].sessions.values()
    assert session.car_phases == frozenset({0})
