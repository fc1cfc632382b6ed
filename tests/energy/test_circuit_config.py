"""Config check of the boards' own meters: every bad combination refused, naming its key, and
a reload that changes the circuits applied live unless a board's meter changed."""

from __future__ import annotations

from typing import Any

import pytest

from edgegw.config import ConfigError, parse_config
from edgegw.energy.meters import MeterConfigError, MeterService
from edgegw.reload import plan_reload
from tests.energy.test_board_meters import Park


def config(
    circuits: list[dict[str, Any]],
    meters: list[dict[str, Any]] | None = None,
    chargers: list[dict[str, Any]] | None = None,
    site: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "site": {"limit_a": 250, "margin_a": 5, **(site or {})},
        "buses": {"main": {"transport": "tcp", "host": "127.0.0.1"}},
        "meters": [{"name": "grid", "profile": "eastron-sdm630"}]
        + (
            meters
            if meters is not None
            else [{"name": "m1", "profile": "eastron-sdm630", "unit_id": 2, "role": "circuit"}]
        ),
        "circuits": circuits,
        "chargers": chargers or [{"id": "CP1", "circuit": "level-1"}],
    }


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_config(data)
    return raised.value.problems


def test_a_board_with_its_own_meter_is_valid() -> None:
    parsed = parse_config(
        config(
            [
                {
                    "name": "level-1",
                    "limit_a": 100,
                    "meter": "m1",
                    "meter_role": "non_ev",
                    "fallback_ev_a": [40, 40, 30],
                }
            ]
        )
    )
    (circuit,) = parsed.circuits
    assert circuit.metered_as == "non_ev"
    assert circuit.fallback() == (40.0, 40.0, 30.0)
    total = parse_config(config([{"name": "level-1", "limit_a": 100, "meter": "m1"}]))
    assert total.circuits[0].metered_as == "total"  # the default


def test_a_circuit_naming_a_meter_that_does_not_exist_is_refused() -> None:
    found = problems(config([{"name": "level-1", "limit_a": 100, "meter": "m9"}]))
    assert any(
        p.startswith("circuits[0].meter: no [[meters]] entry named 'm9'") and "m1" in p
        for p in found
    ), found


def test_a_circuit_naming_the_site_meter_or_a_monitor_is_refused() -> None:
    found = problems(config([{"name": "level-1", "limit_a": 100, "meter": "grid"}]))
    assert any(p.startswith("circuits[0].meter: meter 'grid' has role = 'site'") for p in found), (
        found
    )
    monitor = [{"name": "m1", "profile": "eastron-sdm630", "unit_id": 2, "role": "monitor"}]
    found = problems(config([{"name": "level-1", "limit_a": 100, "meter": "m1"}], monitor))
    assert any("role = 'monitor'; a board's meter needs role = 'circuit'" in p for p in found)


def test_two_boards_sharing_one_meter_are_refused() -> None:
    found = problems(
        config(
            [
                {"name": "level-1", "limit_a": 100, "meter": "m1"},
                {"name": "level-2", "limit_a": 100, "meter": "m1"},
            ]
        )
    )
    assert any(
        p.startswith("circuits[1].meter: meter 'm1' already measures circuits[0]") for p in found
    ), found


def test_a_circuit_meter_no_board_names_is_refused() -> None:
    found = problems(config([{"name": "level-1", "limit_a": 100}]))
    assert any(
        p.startswith("meters[1].role: meter 'm1' has role = 'circuit' but no [[circuits]]")
        for p in found
    ), found


@pytest.mark.parametrize(("key", "value"), [("meter_role", "total"), ("fallback_ev_a", 20)])
def test_meter_settings_without_a_meter_are_refused(key: str, value: object) -> None:
    found = problems(config([{"name": "level-1", "limit_a": 100, key: value}], meters=[]))
    assert any(
        p.startswith("circuits[0]:") and f"{key} is set but the circuit has no meter" in p
        for p in found
    ), found


def test_a_board_fallback_budget_above_its_limit_minus_margin_is_refused() -> None:
    found = problems(
        config([{"name": "level-1", "limit_a": 100, "meter": "m1", "fallback_ev_a": 96}])
    )
    assert any(
        p.startswith("circuits[0].fallback_ev_a: 96 A on L1 is above its limit_a - margin_a (95")
        for p in found
    ), found
    found = problems(
        config(
            [
                {
                    "name": "level-1",
                    "limit_a": 100,
                    "margin_a": 2,
                    "meter": "m1",
                    "fallback_ev_a": [10, 99, 10],
                }
            ]
        )
    )
    assert any("99 A on L2 is above its limit_a - margin_a (98" in p for p in found), found


def test_a_negative_board_fallback_budget_is_refused() -> None:
    found = problems(
        config([{"name": "level-1", "limit_a": 100, "meter": "m1", "fallback_ev_a": -1}])
    )
    assert any(p.startswith("circuits[0]") and "fallback_ev_a on L1" in p for p in found), found


def test_a_list_fallback_on_a_single_phase_site_is_refused() -> None:
    found = problems(
        config(
            [{"name": "level-1", "limit_a": 60, "meter": "m1", "fallback_ev_a": [10, 10, 10]}],
            chargers=[{"id": "CP1", "circuit": "level-1", "phases": "L1"}],
            site={"phases": 1, "limit_a": 63},
        )
    )
    assert any(p.startswith("circuits[0].fallback_ev_a: a single-phase site") for p in found), found


def test_an_unknown_meter_role_is_refused() -> None:
    found = problems(
        config([{"name": "level-1", "limit_a": 100, "meter": "m1", "meter_role": "grid"}])
    )
    assert any(p.startswith("circuits[0].meter_role") for p in found), found


# ------------------------------------------------------------------ reload


def test_circuit_limits_and_new_boards_reload_live() -> None:
    running = parse_config(config([{"name": "level-1", "limit_a": 100, "meter": "m1"}]))
    new = parse_config(
        config(
            [
                {"name": "level-1", "limit_a": 80, "meter": "m1", "fallback_ev_a": 30},
                {"name": "level-2", "limit_a": 60},
            ],
            chargers=[{"id": "CP1", "circuit": "level-2"}],
        )
    )
    plan = plan_reload(running, new)
    assert plan.applicable, plan.needs_restart
    assert plan.changed == ["CP1"]  # moved to another board: live
    assert plan.circuits == [
        "circuit level-1: fallback_ev_a, limit_a changed",
        "circuit level-2 added",
    ]
    assert plan.message() == (
        "applied: updated CP1; circuit level-1: fallback_ev_a, limit_a changed; "
        "circuit level-2 added"
    )
    back = plan_reload(new, running)
    assert back.applicable and "circuit level-2 removed" in back.circuits


def test_a_boards_meter_changed_needs_a_restart() -> None:
    running = parse_config(config([{"name": "level-1", "limit_a": 100, "meter": "m1"}]))
    for circuit in (
        {"name": "level-1", "limit_a": 100, "meter": "m1", "meter_role": "non_ev"},
        {"name": "level-1", "limit_a": 100},
    ):
        new_data = config([circuit])
        if "meter" not in circuit:
            new_data["meters"] = new_data["meters"][:1]
        plan = plan_reload(running, parse_config(new_data))
        assert not plan.applicable
        assert any("circuit level-1: its meter changed" in p for p in plan.needs_restart)


# ------------------------------------------------------------------ the meters


def test_the_meter_service_hands_each_board_its_meter() -> None:
    parsed = parse_config(
        config(
            [
                {"name": "level-1", "limit_a": 100, "meter": "m1"},
                {"name": "level-2", "limit_a": 100},
            ]
        )
    )
    service = MeterService(parsed)
    assert service.site_meter is not None and service.site_meter.name == "grid"
    assert {name: p.name for name, p in service.circuit_meters.items()} == {"level-1": "m1"}
    assert service.circuit_samples() == {"level-1": None}  # not read yet


def test_a_board_meter_without_phase_currents_is_refused() -> None:
    single = [{"name": "m1", "profile": "eastron-sdm120", "unit_id": 2, "role": "circuit"}]
    parsed = parse_config(config([{"name": "level-1", "limit_a": 100, "meter": "m1"}], single))
    with pytest.raises(MeterConfigError, match=r"meters\[1\]\.profile: 'eastron-sdm120' has no "):
        MeterService(parsed)


# ------------------------------------------------------------------ live


def test_a_reloaded_board_limit_and_a_new_board_apply_at_the_next_round() -> None:
    park = Park(
        circuits=[{"name": "L1", "limit_a": 50, "margin_a": 2}],
        chargers=[{"id": f"C{i}", "circuit": "L1", "max_current_a": 32} for i in (1, 2, 3)],
    )
    for i in (1, 2, 3):
        park.plug(f"C{i}", i)
    park.settle()
    assert park.limits() == {"C1": 16.0, "C2": 16.0, "C3": 16.0}
    data = {
        "site": {"limit_a": 250, "margin_a": 5, "ramp_a_per_s": 100},
        "buses": {"main": {"transport": "tcp", "host": "127.0.0.1"}},
        "meters": [{"name": "grid", "profile": "eastron-sdm630"}],
        "circuits": [
            {"name": "L1", "limit_a": 32, "margin_a": 2},
            {"name": "L9", "limit_a": 16, "margin_a": 1},
        ],
        "chargers": [
            {"id": "C1", "circuit": "L1", "max_current_a": 32},
            {"id": "C2", "circuit": "L1", "max_current_a": 32},
            {"id": "C3", "circuit": "L9", "max_current_a": 32},
        ],
    }
    new = parse_config(data)
    assert plan_reload(park.model.config, new).applicable
    park.model.use_config(new)
    park.circuits = data["circuits"]
    park.round()  # cuts at once, no restart
    assert park.limits() == {"C1": 15.0, "C2": 15.0, "C3": 15.0}
