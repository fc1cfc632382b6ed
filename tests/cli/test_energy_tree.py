"""``edgegw energy state``'s circuit tree shows a board meter's age, the board's other load and
a meter hold (D's CircuitState fields), as the controller reports them."""

from __future__ import annotations

from typing import Any

from edgegw.cli.energy import _render_tree


def _board(**extra: Any) -> dict[str, Any]:
    return {
        "name": "level-1",
        "parent": None,
        "limit_a": [100.0, 100.0, 100.0],
        "margin_a": 2.0,
        "used_a": [60.0, 60.0, 60.0],
        "headroom_a": [38.0, 38.0, 38.0],
        "chargers": [],
        **extra,
    }


def test_a_board_meter_reads_with_its_age_and_the_other_load() -> None:
    lines = _render_tree(
        {
            "circuits": [
                _board(
                    meter="ok",
                    measured_a=[40.0, 41.0, 39.0],
                    meter_age_s=1.6,
                    other_a=[12.0, 13.0, 11.0],
                )
            ],
            "chargers": [],
        }
    )
    assert (
        "  board meter 40.0 / 41.0 / 39.0 A, read 2 s ago; other load 12.0 / 13.0 / 11.0 A" in lines
    )


def test_a_board_meter_on_hold_is_said() -> None:
    lines = _render_tree(
        {"circuits": [_board(meter="ok", meter_hold=True, measured_a=None)], "chargers": []}
    )
    assert (
        "  board meter's last read failed: no charger under it is raised until it reads again"
        in lines
    )
