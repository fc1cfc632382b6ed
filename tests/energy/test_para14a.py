"""§14a EnWG minimum power for dimmed chargers (edgegw.energy.para14a)."""

from __future__ import annotations

import itertools

import pytest

from edgegw.energy import para14a


def test_one_charger_keeps_4_2_kw() -> None:
    assert para14a.minimum_power_kw(1) == pytest.approx(4.2)
    # 4200 W / (3 x 230 V) = 6.0869… A, rounded up to an OCPP limit's 0.1 A step:
    # never less than the minimum
    assert para14a.limit_a(1) == 6.1
    assert para14a.limit_a(1, phases=1) == 18.3


def test_two_chargers_the_published_example() -> None:
    # BK6-22-300 example quoted in Tinkerforge/esp32-firmware #407: 7.56 kW for two
    assert para14a.minimum_power_kw(2) == pytest.approx(7.56)


@pytest.mark.parametrize(
    ("n", "factor"),
    [
        (2, 0.8),
        (3, 0.75),
        (4, 0.7),
        (5, 0.65),
        (6, 0.6),
        (7, 0.55),
        (8, 0.5),
        (9, 0.45),
        (40, 0.45),
    ],
)
def test_the_simultaneity_factor_table(n: int, factor: float) -> None:
    assert para14a.simultaneity_factor(n) == factor
    assert para14a.minimum_power_kw(n) == pytest.approx(4.2 + (n - 1) * factor * 4.2)


def test_the_minimum_grows_with_every_charger() -> None:
    powers = [para14a.minimum_power_kw(n) for n in range(1, 60)]
    assert all(b > a for a, b in itertools.pairwise(powers))


def test_the_limit_never_grants_less_than_the_minimum() -> None:
    for n in range(1, 50):
        amps = para14a.limit_a(n)
        assert para14a.granted_kw(amps) >= para14a.minimum_power_kw(n) - 1e-9
        assert para14a.granted_kw(amps - 0.1) < para14a.minimum_power_kw(n)


def test_the_limit_per_phase_follows_the_chargers_wiring() -> None:
    three = para14a.limit_a(1)
    assert para14a.phase_limits_a(1, [(0, 1, 2)]) == (three, three, three)
    # one single-phase charger on L2 takes the whole 4.2 kW on L2 (18.3 A)
    assert para14a.phase_limits_a(1, [(1,)]) == (0.0, 18.3, 0.0)
    # a three-phase and a single-phase one on L1: either alone can take the minimum
    # (7.56 kW / 230 V = 32.9 A on L1, and 0.1 A for rounding two cars' shares down there)
    mixed = para14a.phase_limits_a(2, [(0, 1, 2), (0,)])
    assert mixed == (33.0, 11.0, 11.0)
    for amps, kw in ((mixed[0], 7.56), (3 * mixed[1], 7.56)):
        assert amps * 230 / 1000 >= kw
    with pytest.raises(ValueError):
        para14a.phase_limits_a(1, [(3,)])


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError):
        para14a.minimum_power_kw(0)
    with pytest.raises(ValueError):
        para14a.limit_a(2, phases=2)
    with pytest.raises(ValueError):
        para14a.limit_a(2, voltage_v=0)
