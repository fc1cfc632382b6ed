"""Sessions the allocator does not decide, under a sub-board of a board whose meter measures
its chargers (``meter_role = "total"``): a session held at a fixed current (a charger without
smart charging, one ignoring its limit, offline, or held by a caretaker or cloud limit) and a
session forced to its minimum (a charger that cannot pause) count once, in full, at every
board above them, wherever they sit in the tree.

The meter above measures only what the held car draws now; counting that reading and
subtracting the sub-board's count of the held current would hand the difference to other cars,
and the board's fuse would carry it when the held car ramps up.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.energy.test_board_meters import Park

BOARD_A = {"name": "A", "limit_a": 60, "margin_a": 0, "meter": "mA"}


def sub_board(metered: bool) -> dict[str, Any]:
    board: dict[str, Any] = {"name": "B", "limit_a": 60, "margin_a": 0, "parent": "A"}
    if metered:
        board["meter"] = "mB"
    return board


def held_park(charger_circuit: str, *, metered_b: bool = False) -> Park:
    """A: 60 A, 20 A of building load; an Easee (no smart charging: held at its 32 A) whose
    car draws 2 A for now; a smart charger directly under A."""
    park = Park(
        circuits=[BOARD_A, sub_board(metered_b)],
        chargers=[
            {"id": "dumb", "circuit": charger_circuit, "max_current_a": 32, "model": "easee"},
            {"id": "smart", "circuit": "A", "max_current_a": 32},
        ],
    )
    park.own = {"A": (20.0, 20.0, 20.0)}
    park.car_max = {"dumb": 2.0}
    park.plug("dumb", 1)
    park.plug("smart", 2)
    return park


@pytest.mark.parametrize(
    ("where", "metered_b"),
    [("A", False), ("B", False), ("B", True)],
    ids=["directly-under-A", "under-unmetered-B", "under-metered-B"],
)
def test_a_held_session_counts_at_its_held_current_at_every_board_above(
    where: str, metered_b: bool
) -> None:
    park = held_park(where, metered_b=metered_b)
    park.settle()
    smart = park.limits()["smart"] or 0.0
    # the building's 20 A + the Easee's car ramping to its 32 A + the smart car at its limit
    assert 20.0 + 32.0 + smart <= 60 + 1e-6, park.limits()
    assert smart == pytest.approx(8.0), park.limits()  # and the rest is not wasted


def forced_park(charger_circuit: str, *, metered_b: bool = False) -> Park:
    """A: 60 A, 50 A of building load; an ABB Terra AC (cannot pause: rejects 0 A) and a VIP
    charger directly under A: 10 A left, the VIP takes it, the ABB is held at its 6 A."""
    park = Park(
        circuits=[BOARD_A, sub_board(metered_b)],
        chargers=[
            {"id": "abb", "circuit": charger_circuit, "max_current_a": 32, "model": "abb-terra-ac"},
            {"id": "vip", "circuit": "A", "max_current_a": 32, "priority": "vip"},
        ],
    )
    park.own = {"A": (50.0, 50.0, 50.0)}
    park.plug("abb", 1)
    park.plug("vip", 2)
    return park


@pytest.mark.parametrize(
    ("where", "metered_b"),
    [("A", False), ("B", False), ("B", True)],
    ids=["directly-under-A", "under-unmetered-B", "under-metered-B"],
)
def test_a_forced_minimum_counts_once_at_every_board_above(where: str, metered_b: bool) -> None:
    park = forced_park(where, metered_b=metered_b)
    park.settle(8)
    limits = park.limits()
    assert (limits["abb"] or 0.0) >= 6.0 - 1e-6, limits  # held at its minimum, not paused
    assert 50.0 + sum(v or 0.0 for v in limits.values()) <= 60 + 1e-6, limits
    # 4 A left beside the ABB's 6 A: below the VIP's 6 A minimum, so it is paused
    assert limits["vip"] == 0.0, limits
